"""Fine-tuning benchmarks: Dice against corrected slices, steps/s against MONAI, time to a
better segmentation.

    nice python benchmarks/bench_finetune.py            # full run (CPU: ~15-30 min)
    nice python benchmarks/bench_finetune.py --quick    # fewer steps
    python benchmarks/bench_finetune.py --only speed    # one part: slices | speed | latency

(1) ``slices``: the held-out brain slab of the starter model ``brain-tissue-t1`` (ICBM152
    axial slices 96..127, never used to train its first version; the present one was grown
    from that and fine-tuned on scans drawn from the whole template, so the slab is no longer
    held out from it; the results in ``benchmarks/results/`` are of the first version).
    A simulated person copies the reference tissue labels into K evenly spaced axial slices
    (K = 1, 3, 5, 10) and marks them reviewed; we fine-tune (a) the starter model and (b) the
    same architecture from scratch, and score mean GM/WM Dice on the untouched slices.
(2) ``speed``: optimiser steps/s of our loop (masked Dice+CE, sampler, augmentation off and
    on) against a plain MONAI loop (``RandCropByPosNegLabeld`` + ``DiceCELoss`` + AdamW) with
    the same model, patch, batch and threads, in one process.
(4) ``shift``: fine-tune under a domain shift, as the Correct tab runs it (``train_job`` from
    the starter, default 2-minute budget): (a) ``head-ct-tissue`` (trained on a head CT) on the
    bundled abdominal CT (``sample_volumes/ct_abdomen.nii.gz``; reference: the same threshold
    rule the starter learned, ``ct_abdomen_tissue.nrrd``), (b) ``brain-tissue-t1`` on a second
    contrast of its held-out slab (intensities inverted inside the brain, T2-like: a known
    transform, so the reference tissue map still holds).  A simulated person replaces the
    starter's labels by the reference on K = 5 evenly spaced axial slices and marks them
    reviewed; scored: mean Dice on the untouched slices before and after (the new network, and
    the mask the tab shows).
(3) ``latency``: wall time from "Fine-tune" (job start, K = 5 corrected slices) to the
    re-segmented 128^3 volume (ICBM152 at 1.4 mm, cropped), with Dice before/after on the
    untouched slices.  Note: that volume overlaps the starter's training data.

Writes ``benchmarks/results/finetune_<device>.json`` and ``docs/finetune_dice_vs_slices.png``.
"""

from __future__ import annotations

import argparse
import json
import platform
import sys
import time
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import numpy as np
import torch

from napari_medseg.events import Progress, run_to_end
from napari_medseg.geometry.grid import Grid
from napari_medseg.geometry.resample import resample_to
from napari_medseg.inference import PredictOptions, Predictor, find_checkpoint
from napari_medseg.io import read_scan
from napari_medseg.metrics import mean_dice
from napari_medseg.models import create_model, load_checkpoint
from napari_medseg.scan import Geometry, LabelMap, Scan
from napari_medseg.training import AugmentOptions, LabeledVolume, Trainer, TrainOptions

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
from tests.data_root import SHARED_DATA  # noqa: E402 - the repository root must be importable first

DATA = SHARED_DATA / "brain_template"
NAMES = {0: "background", 1: "grey matter", 2: "white matter"}
HELDOUT = (96, 128)


def brain() -> tuple[Scan, LabelMap]:
    t1 = read_scan(DATA / "mni_icbm152_t1_tal_nlin_sym_09a_converted.nii.gz")
    gm = read_scan(DATA / "mni_icbm152_gm_tal_nlin_sym_09a_converted.nii.gz").array
    wm = read_scan(DATA / "mni_icbm152_wm_tal_nlin_sym_09a_converted.nii.gz").array
    gm, wm = gm.astype(np.int32), wm.astype(np.int32)
    labels = np.argmax(np.stack([255 - gm - wm, gm, wm]), 0).astype(np.uint8)
    t1.modality = "MR"
    return t1, LabelMap(labels, t1.geometry, dict(NAMES))


def slab(scan: Scan, labels: LabelMap, a: int, b: int) -> tuple[Scan, LabelMap]:
    g = scan.geometry
    geometry = Geometry(g.spacing, tuple(g.index_to_world([a, 0, 0])), g.direction)
    return (Scan(scan.array[a:b], geometry, "MR"),
            LabelMap(labels.array[a:b], geometry, dict(NAMES)))


def corrected(scan: Scan, truth: LabelMap, start: np.ndarray, k: int
              ) -> tuple[LabeledVolume, np.ndarray]:
    """Truth copied into k evenly spaced axial slices, marked reviewed."""
    rows = np.linspace(0, scan.shape[0] - 1, k + 2)[1:-1].round().astype(int)
    reviewed = np.zeros(scan.shape, bool)
    reviewed[rows] = True
    labels = start.copy()
    labels[reviewed] = truth.array[reviewed]
    return LabeledVolume([scan], LabelMap(labels, scan.geometry,
                                          dict(truth.class_names or NAMES)),
                         labeled=reviewed), reviewed


def predict(model: torch.nn.Module, spec: Any, scan: Scan) -> np.ndarray:
    return Predictor([model], spec, device="cpu").predict(
        scan, PredictOptions(device="cpu")).labels.array


def part_slices(args: argparse.Namespace) -> dict[str, Any]:
    scan, truth = slab(*brain(), *HELDOUT)
    model, spec = load_checkpoint(find_checkpoint("brain-tissue-t1"))
    start = predict(model, spec, scan)
    rows: list[dict[str, Any]] = []
    baseline = mean_dice(start, truth.array, [1, 2])
    for k in args.ks:
        for origin in ("starter", "scratch"):
            volume, reviewed = corrected(scan, truth, start, k)
            options = TrainOptions(steps=args.steps, batch_size=2, patch_size=(48, 48, 48),
                                   learning_rate=args.lr if origin == "starter" else 1e-2,
                                   validate_every=max(10, args.steps // 5), device="cpu",
                                   seed=0, threads=args.threads)
            if origin == "starter":
                trainer = Trainer.from_checkpoint("brain-tissue-t1", [volume], options)
            else:
                trainer = Trainer.from_scratch(spec, [volume], options)
            t0 = time.perf_counter()
            result = run_to_end(trainer.job())
            seconds = time.perf_counter() - t0
            after = predict(result.model, result.spec, scan)
            untouched = ~reviewed
            row = {"k": k, "origin": origin, "steps": result.steps_done, "seconds": seconds,
                   "dice_untouched_before": mean_dice(start, truth.array, [1, 2],
                                                      mask=untouched)
                   if origin == "starter" else None,
                   "dice_untouched_after": mean_dice(after, truth.array, [1, 2], mask=untouched)}
            print(row)
            rows.append(row)
    plot(rows, baseline, ROOT / "docs" / "finetune_dice_vs_slices.png")
    return {"volume": "ICBM152 axial slab 96..127 (held out from brain-tissue-t1)",
            "starter_dice_whole_slab": baseline, "rows": rows}


def plot(rows: list[dict[str, Any]], baseline: float, path: Path) -> None:
    """A small line plot with Pillow (no matplotlib in the environment)."""
    from PIL import Image, ImageDraw

    w, h, m = 560, 360, 50
    image = Image.new("RGB", (w, h), "white")
    draw = ImageDraw.Draw(image)
    ks = sorted({r["k"] for r in rows})

    def xy(k: float, d: float) -> tuple[float, float]:
        x = m + (ks.index(k) if k in ks else 0) / max(1, len(ks) - 1) * (w - 2 * m)
        return x, h - m - d * (h - 2 * m)

    draw.line([(m, h - m), (w - m, h - m)], fill="black")
    draw.line([(m, m), (m, h - m)], fill="black")
    for d in (0.0, 0.25, 0.5, 0.75, 1.0):
        _, y = xy(ks[0], d)
        draw.text((8, y - 6), f"{d:.2f}", fill="black")
        draw.line([(m, y), (w - m, y)], fill=(225, 225, 225))
    for k in ks:
        x, _ = xy(k, 0)
        draw.text((x - 4, h - m + 6), str(k), fill="black")
    draw.text((w // 2 - 90, h - 22), "corrected axial slices (K)", fill="black")
    draw.text((m, 12), "Dice (GM, WM) on untouched slices, held-out brain slab", fill="black")
    _, yb = xy(ks[0], baseline)
    draw.line([(m, yb), (w - m, yb)], fill=(150, 150, 150))
    draw.text((w - m - 110, yb - 14), "starter, no fine-tune", fill=(120, 120, 120))
    for origin, colour in (("starter", (31, 119, 180)), ("scratch", (214, 39, 40))):
        points = [xy(r["k"], r["dice_untouched_after"]) for r in rows if r["origin"] == origin]
        if len(points) > 1:
            draw.line(points, fill=colour, width=2)
        for x, y in points:
            draw.ellipse([x - 3, y - 3, x + 3, y + 3], fill=colour)
        if points:
            draw.text((points[-1][0] - 60, points[-1][1] + 6), f"fine-tuned {origin}"
                      if origin == "starter" else "from scratch", fill=colour)
    path.parent.mkdir(parents=True, exist_ok=True)
    image.save(path)


def part_speed(args: argparse.Namespace) -> dict[str, Any]:
    """Steps/s of the three loops, interleaved over ``--rounds`` rounds (the machine is shared:
    each loop's best round is reported, with every round kept)."""
    from monai.losses import DiceCELoss
    from monai.transforms import RandCropByPosNegLabeld

    from napari_medseg.inference.preprocess import normalize

    scan, truth = brain()
    _, spec = load_checkpoint(find_checkpoint("brain-tissue-t1"))
    patch = (48, 48, 48)
    steps = args.speed_steps

    def ours(augment: AugmentOptions) -> float:
        torch.manual_seed(0)
        trainer = Trainer.from_scratch(spec, [LabeledVolume([scan], truth)], TrainOptions(
            steps=steps + 2, batch_size=2, patch_size=patch, validation_fraction=0.0,
            augment=augment, device="cpu", threads=args.threads))
        stamps = [time.perf_counter() for e in trainer.job()
                  if isinstance(e, Progress) and e.done > 0]
        return (len(stamps) - 3) / (stamps[-1] - stamps[2])  # 2 warm-up steps skipped

    grid = Grid(Geometry((2.0,) * 3, scan.geometry.origin, scan.geometry.direction),
                tuple(round(n / 2) for n in scan.shape))
    image = normalize(resample_to(scan, grid, interpolation="linear").array, spec.intensity[0])
    label = resample_to(truth, grid, interpolation="nearest").array
    data = {"image": image[None], "label": label[None].astype(np.int64)}

    def monai_plain() -> float:
        torch.manual_seed(0)
        model = create_model(spec.architecture, spatial_dims=3, in_channels=1, out_channels=3,
                             **spec.options)
        optimizer = torch.optim.AdamW(model.parameters(), lr=1e-3, weight_decay=1e-4)
        loss_fn = DiceCELoss(to_onehot_y=True, softmax=True, batch=True)
        crop = RandCropByPosNegLabeld(keys=["image", "label"], label_key="label",
                                      spatial_size=patch, pos=2, neg=1, num_samples=2)
        crop.set_random_state(0)
        model.train()
        times = []
        for _ in range(steps + 2):
            samples = crop(data)
            x = torch.stack([torch.as_tensor(s["image"]) for s in samples]).float()
            y = torch.stack([torch.as_tensor(s["label"]) for s in samples]).long()
            optimizer.zero_grad(set_to_none=True)
            loss_fn(model(x), y).backward()
            optimizer.step()
            times.append(time.perf_counter())
        return (len(times) - 3) / (times[-1] - times[2])

    runs: dict[str, list[float]] = {"ours_no_augment": [], "ours_augment": [],
                                    "monai_plain": []}
    for _ in range(args.rounds):
        runs["monai_plain"].append(monai_plain())
        runs["ours_no_augment"].append(ours(AugmentOptions.none()))
        runs["ours_augment"].append(ours(AugmentOptions()))
        print({k: [round(v, 3) for v in vs] for k, vs in runs.items()})
    results: dict[str, Any] = {"patch": list(patch), "batch": 2, "steps": steps,
                               "threads": torch.get_num_threads(), "rounds": runs}
    for key, values in runs.items():
        results[key] = max(values)
    results["ratio_ours_no_augment_vs_monai"] = results["ours_no_augment"] / results[
        "monai_plain"]
    return results


def part_latency(args: argparse.Namespace) -> dict[str, Any]:
    t1, labels = brain()
    g = t1.geometry
    grid = Grid(Geometry((1.4,) * 3, g.origin, g.direction),
                tuple(round(n / 1.4) for n in t1.shape))
    scan = resample_to(t1, grid, interpolation="linear")
    truth = resample_to(labels, grid, interpolation="nearest")
    starts = [(n - 128) // 2 for n in scan.shape]
    box = tuple(slice(s, s + 128) for s in starts)
    geometry = Geometry((1.4,) * 3, tuple(grid.geometry.index_to_world(starts)), g.direction)
    array = scan.array[box]
    if args.bias_field:
        # a smooth multiplicative intensity inhomogeneity (x0.6 .. x1.4 across the volume),
        # as coils give: the starter never saw one, so it makes mistakes to correct
        ramp = np.linspace(-1.0, 1.0, array.shape[2], dtype=np.float32)
        array = (array.astype(np.float32) * np.exp(0.35 * ramp)[None, None, :]).astype(
            np.float32)
    scan = Scan(array, geometry, "MR")
    truth = LabelMap(truth.array[box], geometry, dict(NAMES))
    model, spec = load_checkpoint(find_checkpoint("brain-tissue-t1"))
    start = predict(model, spec, scan)
    volume, reviewed = corrected(scan, truth, start, 5)
    t0 = time.perf_counter()
    trainer = Trainer.from_checkpoint("brain-tissue-t1", [volume], TrainOptions(
        steps=args.latency_steps, batch_size=2, patch_size=(48, 48, 48), learning_rate=args.lr,
        validate_every=10, device="cpu", threads=args.threads))
    result = run_to_end(trainer.job())
    t_train = time.perf_counter() - t0
    after = predict(result.model, result.spec, scan)
    total = time.perf_counter() - t0
    untouched = ~reviewed
    out = {"shape": list(scan.shape), "bias_field": bool(args.bias_field),
           "steps": result.steps_done, "train_s": t_train,
           "total_s": total,
           "dice_untouched_before": mean_dice(start, truth.array, [1, 2], mask=untouched),
           "dice_untouched_after": mean_dice(after, truth.array, [1, 2], mask=untouched)}
    print(out)
    return out


def _shift_cases() -> list[tuple[str, str, Scan, LabelMap]]:
    samples = ROOT / "sample_volumes"
    ct = read_scan(samples / "ct_abdomen.nii.gz", modality="CT")
    tissue = read_scan(samples / "ct_abdomen_tissue.nrrd").array.astype(np.uint8)
    cases = [("head CT starter on an abdominal CT", "head-ct-tissue", ct,
              LabelMap(tissue, ct.geometry, {0: "background", 1: "soft tissue", 2: "bone"}))]
    if DATA.is_dir():
        t1, labels = brain()
        scan, truth = slab(t1, labels, *HELDOUT)
        array = scan.array.astype(np.float32)
        inside = array > 0
        inverted = np.where(inside, array[inside].max() - array, 0).astype(np.float32)
        cases.append(("T1 starter on a T2-like contrast of its held-out slab",
                      "brain-tissue-t1", Scan(inverted, scan.geometry, "MR"), truth))
    return cases


def part_shift(args: argparse.Namespace) -> dict[str, Any]:
    from napari_medseg.training.job import train_job
    from napari_medseg.training.plan import LearnOptions

    rows = []
    for title, starter, scan, truth in _shift_cases():
        model, spec = load_checkpoint(find_checkpoint(starter))
        classes = sorted(c for c in truth.class_names if c)
        start = predict(model, spec, scan)
        volume, reviewed = corrected(scan, LabelMap(truth.array, scan.geometry,
                                                    dict(truth.class_names)), start, args.k)
        untouched = ~reviewed
        t0 = time.perf_counter()
        result = run_to_end(train_job([volume], LearnOptions(device="cpu"),
                                      start_from=starter), on_event=lambda e: print(
            e.message) if hasattr(e, "message") and type(e).__name__ == "Log" else None)
        seconds = time.perf_counter() - t0
        row: dict[str, Any] = {
            "case": title, "starter": starter, "shape": list(scan.shape), "k": args.k,
            "seconds": round(seconds, 1), "kept_parent": result.kept_parent,
            "summary": result.summary(), "plan": result.plan.summary(),
            "dice_untouched_before": mean_dice(start, truth.array, classes, mask=untouched)}
        if result.network is not None:
            row["dice_untouched_after_network"] = mean_dice(
                result.network.array, truth.array, classes, mask=untouched)
        if result.mask is not None:
            row["dice_untouched_after_mask"] = mean_dice(
                result.mask.array, truth.array, classes, mask=untouched)
        print({k: (round(v, 3) if isinstance(v, float) else v) for k, v in row.items()},
              flush=True)
        rows.append(row)
    return {"rows": rows}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="fewer steps")
    parser.add_argument("--only", choices=("slices", "speed", "latency", "shift"),
                        action="append")
    parser.add_argument("--k", type=int, default=5, help="shift: corrected slices")
    parser.add_argument("--threads", type=int, default=None, help="torch CPU threads")
    parser.add_argument("--lr", type=float, default=1e-3, help="fine-tune learning rate")
    parser.add_argument("--rounds", type=int, default=3, help="interleaved speed rounds")
    parser.add_argument("--bias-field", action="store_true",
                        help="latency: add an intensity inhomogeneity the starter never saw")
    args = parser.parse_args()
    args.steps = 30 if args.quick else 80
    args.speed_steps = 8 if args.quick else 20
    args.latency_steps = 20 if args.quick else 40
    args.ks = [1, 3, 5, 10]
    if args.threads:
        torch.set_num_threads(args.threads)
    parts = args.only or ["speed", "latency", "slices"]
    out: dict[str, Any] = {"date": datetime.now(timezone.utc).isoformat(timespec="seconds"),
                           "machine": platform.platform(), "cpu_threads": torch.get_num_threads(),
                           "quick": args.quick}
    for name in parts:
        out[name] = {"slices": part_slices, "speed": part_speed, "latency": part_latency,
                     "shift": part_shift}[name](
            args)
    folder = ROOT / "benchmarks" / "results"
    folder.mkdir(parents=True, exist_ok=True)
    suffix = "_quick" if args.quick else ""
    bias = "_bias" if args.bias_field else ""
    path = folder / f"finetune_cpu{suffix}{bias}_{'_'.join(parts)}.json"
    path.write_text(json.dumps(out, indent=2))
    print(f"wrote {path}")


if __name__ == "__main__":
    main()
