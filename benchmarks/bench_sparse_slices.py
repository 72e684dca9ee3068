"""Learning from a few annotated slices: Dice on every other slice, beside the baselines.

    nice python benchmarks/bench_sparse_slices.py                      # everything (2 cores: ~1 h)
    python benchmarks/bench_sparse_slices.py --cases lesion liver --ks 3
    python benchmarks/bench_sparse_slices.py --baselines-at 3 5        # MONAI + dense at these K

For each structure of a real scan in ``../shared/data`` a simulated person annotates K slices
(K = 1, 2, 3, 5, spread evenly inside the structure's extent along the first array axis, one
slice in from each end when the structure is long enough - the protocol of
``../shared/tools/sparse_slices.py``).  Scored, on every slice nobody annotated (whole volume
minus those K slices), per class:

* **ours**: :func:`napari_medseg.training.job.train_job` with the default options (what
  ``napari-medseg train`` and the Train tab run: planned for the 2-minute budget), its mask of
  the scan (the network combined with the annotation by the rule measured on the held-back
  slice) and its network alone;
* **interpolation**: shape-based interpolation between the same slices (no learning);
* **monai**: a plain MONAI loop of the same network (same architecture and widths, 2D on the
  annotated slices, ``RandCropByPosNegLabel`` + ``DiceCELoss``, AdamW, percentile intensities)
  for the same wall time as ours trained, predicted with ``sliding_window_inference``;
* **dense**: the network of ours trained with every slice labeled, same budget (the ceiling:
  its own labels, scored on the same slices - the combined mask would just be the labels).

The structures: the enhancing lesion of ``mri_lesion/brain1`` (T1, 6.5 mm slices), the small
breast lesion of ``mri_lesion/breast1`` (``--cases breast``; 143 voxels), the liver
and the right kidney of ``ct_abdomen`` (3 mm, two organs of very different size), the right
adrenal gland of the ``dicom_series_ct`` series (a small structure lying against the vena cava
and the liver: what a mask grown past the painted slices follows), grey and white matter of
the ICBM152 template at 2 mm (``brain_template``; one 3-class run).  Beside the Dice, each row
records what the mask holds past the first and last painted slice against the truth there
(``past_painted``).  Each run learns
from that scan alone and is scored on the same scan's other slices: this measures "annotate a
few slices, get the whole volume" (the 3D U-Net paper's setting), not generalisation to another
patient (``bench_finetune.py --only shift`` does that).

Writes ``benchmarks/results/sparse_slices_<device>.json`` and prints a table.
"""

from __future__ import annotations

import argparse
import json
import platform
import sys
import time
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import numpy as np
import torch

from napari_medseg.events import Log, run_to_end
from napari_medseg.geometry.grid import Grid
from napari_medseg.geometry.interpolation import interpolate_slices
from napari_medseg.geometry.resample import resample_to
from napari_medseg.io import read_scan
from napari_medseg.metrics import dice
from napari_medseg.models import create_model
from napari_medseg.scan import Geometry, LabelMap, Scan
from napari_medseg.training import LabeledVolume
from napari_medseg.training.job import train_job
from napari_medseg.training.plan import LearnOptions

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
from tests.data_root import SHARED_DATA  # noqa: E402 - the repository root must be importable first

DATA = SHARED_DATA
RESULTS = ROOT / "benchmarks" / "results"


@dataclass
class Case:
    scan: Scan
    truth: np.ndarray  # class values 0..n
    names: dict[int, str]
    source: str


def _labels(path: Path, values: dict[int, int]) -> np.ndarray:
    raw = read_scan(path).array
    out = np.zeros(raw.shape, np.uint8)
    for new, old in values.items():
        out[raw == old] = new
    return out


def load_case(name: str) -> Case:
    if name == "lesion":
        scan = read_scan(DATA / "mri_lesion" / "brain1_image.nrrd", modality="MR")
        truth = _labels(DATA / "mri_lesion" / "brain1_label.nrrd", {1: 1})
        return Case(scan, truth, {0: "background", 1: "lesion"}, "mri_lesion/brain1")
    if name == "breast":
        scan = read_scan(DATA / "mri_lesion" / "breast1_image.nrrd", modality="MR")
        truth = _labels(DATA / "mri_lesion" / "breast1_label.nrrd", {1: 1})
        return Case(scan, truth, {0: "background", 1: "lesion"}, "mri_lesion/breast1")
    if name in ("liver", "kidney"):
        scan = read_scan(DATA / "ct_abdomen" / "example_ct_sm.nii.gz", modality="CT")
        value = 5 if name == "liver" else 2
        truth = _labels(DATA / "ct_abdomen" / "example_seg.nii.gz", {1: value})
        label = "liver" if name == "liver" else "right kidney"
        return Case(scan, truth, {0: "background", 1: label}, f"ct_abdomen (value {value})")
    if name == "adrenal":
        # a small structure touching a vessel: the right adrenal gland (44 HU here) lies
        # against the inferior vena cava (90 HU) and the liver; the labels' file is flipped
        # against the series, so they are resampled onto the series' grid
        scan = read_scan(DATA / "dicom_series_ct", modality="CT")
        raw = read_scan(DATA / "dicom_series_ct_labels" / "example_seg_dicom.nii.gz")
        labels = resample_to(LabelMap(raw.array.astype(np.uint8), raw.geometry, {}),
                             Grid(scan.geometry, scan.shape), interpolation="nearest").array
        return Case(scan, (labels == 8).astype(np.uint8), {0: "background",
                                                            1: "right adrenal gland"},
                    "dicom_series_ct (value 8, beside the vena cava)")
    if name == "brain":
        folder = DATA / "brain_template"
        t1 = read_scan(folder / "mni_icbm152_t1_tal_nlin_sym_09a_converted.nii.gz",
                       modality="MR")
        gm = read_scan(folder / "mni_icbm152_gm_tal_nlin_sym_09a_converted.nii.gz").array
        wm = read_scan(folder / "mni_icbm152_wm_tal_nlin_sym_09a_converted.nii.gz").array
        gm, wm = gm.astype(np.int32), wm.astype(np.int32)
        tissue = np.argmax(np.stack([255 - gm - wm, gm, wm]), 0).astype(np.uint8)
        g = t1.geometry
        grid = Grid(Geometry((2.0,) * 3, g.origin, g.direction),
                    tuple(round(n / 2.0) for n in t1.shape))
        scan = resample_to(t1, grid, interpolation="linear")
        truth = resample_to(LabelMap(tissue, g, {}), grid, interpolation="nearest").array
        return Case(Scan(scan.array, scan.geometry, "MR"), truth.astype(np.uint8),
                    {0: "background", 1: "grey matter", 2: "white matter"},
                    "brain_template ICBM152 at 2 mm")
    msg = f"unknown case {name!r}"
    raise SystemExit(msg)


def pick_slices(truth: np.ndarray, k: int, axis: int = 0) -> list[int]:
    """K slices evenly inside the structure's extent (the shared protocol)."""
    present = np.where(np.moveaxis(truth > 0, axis, 0).any(axis=(1, 2)))[0]
    margin = 1 if len(present) > k + 2 else 0
    picks = np.linspace(present[0] + margin, present[-1] - margin, k).round().astype(int)
    return sorted({int(s) for s in picks})


def sparse_annotation(truth: np.ndarray, slices: list[int]) -> tuple[np.ndarray, np.ndarray]:
    sparse = np.zeros_like(truth)
    labeled = np.zeros(truth.shape, bool)
    sparse[slices] = truth[slices]
    labeled[slices] = True
    return sparse, labeled


def scores(pred: np.ndarray, truth: np.ndarray, rest: np.ndarray, classes: list[int]
           ) -> dict[str, float]:
    return {str(c): round(dice(pred, truth, c, mask=rest), 4) for c in classes}


def run_ours(case: Case, labels: np.ndarray, labeled: np.ndarray | None, budget: float | None
             ) -> dict[str, Any]:
    volume = LabeledVolume([case.scan], LabelMap(labels, case.scan.geometry, dict(case.names)),
                           labeled=labeled)
    options = LearnOptions() if budget is None else LearnOptions(budget_s=budget)
    t0 = time.perf_counter()
    logs: list[str] = []
    try:
        result = run_to_end(train_job([volume], options, class_names=dict(case.names)),
                            on_event=lambda e: logs.append(e.message) if isinstance(e, Log)
                            else None)
    except Exception as exc:  # a refused run is a result too
        return {"error": str(exc), "seconds": time.perf_counter() - t0}
    seconds = time.perf_counter() - t0
    assert result.mask is not None
    return {"mask": result.mask.array, "network": result.network.array
            if result.network is not None else None,
            "seconds": seconds, "train_s": result.train.seconds
            if hasattr(result.train, "seconds") else None,
            "plan": result.plan.summary(), "spec": result.spec,
            "patch": tuple(result.plan.train.patch_size or ()),
            "batch": result.plan.train.batch_size,
            "rule": result.rule.rule if result.rule else None,
            "rule_scores": {k: round(float(v), 4) for k, v in result.rule.scores.items()}
            if result.rule else {}, "summary": result.summary()}


def _percentile(image: np.ndarray) -> np.ndarray:
    lo, hi = np.percentile(image, (0.5, 99.5))
    return np.clip((image - lo) / max(hi - lo, 1e-6), 0, 1).astype(np.float32)


def run_monai(case: Case, sparse: np.ndarray, slices: list[int], spec: Any,
              patch: tuple[int, int], batch: int, seconds: float, n_classes: int
              ) -> dict[str, Any]:
    """A plain MONAI loop: the same network in 2D on the annotated slices, for ``seconds``."""
    from monai.inferers import sliding_window_inference
    from monai.losses import DiceCELoss
    from monai.transforms import RandCropByPosNegLabel, SpatialPad

    torch.manual_seed(0)
    image = _percentile(case.scan.array.astype(np.float32))
    model = create_model(spec.architecture, spatial_dims=2, in_channels=1,
                         out_channels=n_classes, **spec.options)
    optimizer = torch.optim.AdamW(model.parameters(), lr=1e-3, weight_decay=1e-4)
    loss_fn = DiceCELoss(to_onehot_y=True, softmax=True)
    pad = SpatialPad(spatial_size=patch)
    crop = RandCropByPosNegLabel(spatial_size=patch, pos=1, neg=1, num_samples=batch)
    crop.set_random_state(0)
    pairs = [(pad(image[s][None]), pad(sparse[s][None].astype(np.int64))) for s in slices]
    rng = np.random.default_rng(0)
    model.train()
    t0 = time.perf_counter()
    steps = 0
    while time.perf_counter() - t0 < seconds:
        img, lab = pairs[int(rng.integers(len(pairs)))]
        if lab.max() > 0:
            xs = crop(img, label=lab)
            ys = crop(lab, label=lab, randomize=False)
        else:
            xs, ys = [img] * batch, [lab] * batch
        x = torch.stack([torch.as_tensor(np.asarray(v)) for v in xs]).float()
        y = torch.stack([torch.as_tensor(np.asarray(v)) for v in ys]).long()
        optimizer.zero_grad(set_to_none=True)
        loss_fn(model(x), y).backward()
        optimizer.step()
        steps += 1
    model.eval()
    pred = np.zeros(sparse.shape, np.uint8)
    with torch.no_grad():
        for z in range(image.shape[0]):
            x = torch.as_tensor(image[z][None, None])
            logits = sliding_window_inference(x, patch, 8, model, overlap=0.25)
            pred[z] = logits.argmax(1)[0].numpy().astype(np.uint8)
    return {"mask": pred, "steps": steps, "seconds": time.perf_counter() - t0}


def past_painted(mask: np.ndarray, truth: np.ndarray, slices: list[int]) -> dict[str, Any]:
    """What the mask holds before the first and after the last painted slice, beside the
    truth there: voxels, slices reached, and Dice on those slices."""
    outside = np.ones(truth.shape[0], bool)
    outside[min(slices):max(slices) + 1] = False
    m, t = mask[outside] > 0, truth[outside] > 0
    reach = np.nonzero((mask > 0).any(axis=(1, 2)) & outside)[0].tolist()
    true_reach = np.nonzero((truth > 0).any(axis=(1, 2)) & outside)[0].tolist()
    total = int(m.sum() + t.sum())
    return {"mask_voxels": int(m.sum()), "truth_voxels": int(t.sum()),
            "mask_slices": reach, "truth_slices": true_reach,
            "dice": round(2.0 * float((m & t).sum()) / total, 4) if total else None}


def bench_case(name: str, ks: list[int], baselines_at: list[int], budget: float | None
               ) -> dict[str, Any]:
    case = load_case(name)
    classes = sorted(c for c in case.names if c)
    n_classes = max(case.names) + 1
    out: dict[str, Any] = {"source": case.source, "shape": list(case.scan.shape),
                           "spacing": list(case.scan.geometry.spacing),
                           "classes": {str(c): case.names[c] for c in classes},
                           "voxels": {str(c): int((case.truth == c).sum()) for c in classes},
                           "k": {}}
    dense_done: dict[str, Any] | None = None
    for k in ks:
        slices = pick_slices(case.truth, k)
        sparse, labeled = sparse_annotation(case.truth, slices)
        rest = np.ones(case.truth.shape, bool)
        rest[slices] = False
        row: dict[str, Any] = {"slices": slices}
        interp = interpolate_slices(sparse, slices, 0, spacing=case.scan.geometry.spacing)
        row["interpolation"] = scores(interp, case.truth, rest, classes)
        ours = run_ours(case, sparse, labeled, budget)
        if "error" in ours:
            row["ours"] = {"error": ours["error"], "seconds": round(ours["seconds"], 1)}
        else:
            row["ours"] = {"dice": scores(ours["mask"], case.truth, rest, classes),
                           "network_dice": scores(ours["network"], case.truth, rest, classes)
                           if ours["network"] is not None else None,
                           "voxels": {str(c): int((ours["mask"] == c).sum()) for c in classes},
                           "past_painted": past_painted(ours["mask"], case.truth, slices),
                           "seconds": round(ours["seconds"], 1), "plan": ours["plan"],
                           "rule": ours["rule"], "rule_scores": ours["rule_scores"],
                           "summary": ours["summary"]}
        if k in baselines_at and "error" not in ours:
            patch = tuple(ours["patch"][-2:])
            monai = run_monai(case, sparse, slices, ours["spec"], patch, ours["batch"],
                              ours["seconds"], n_classes)
            row["monai"] = {"dice": scores(monai["mask"], case.truth, rest, classes),
                            "steps": monai["steps"], "seconds": round(monai["seconds"], 1),
                            "network": ours["spec"].architecture, "patch": list(patch),
                            "batch": ours["batch"]}
            if dense_done is None:
                dense = run_ours(case, case.truth, None, budget)
                dense_done = ({"error": dense["error"]} if "error" in dense else
                              {"mask": dense["network"], "seconds": round(dense["seconds"], 1),
                               "plan": dense["plan"]})
            if "mask" in dense_done:
                row["dense"] = {"dice": scores(dense_done["mask"], case.truth, rest, classes),
                                "seconds": dense_done["seconds"], "plan": dense_done["plan"]}
            else:
                row["dense"] = {"error": dense_done["error"]}
        out["k"][str(k)] = row
        print(table_row(name, k, row, classes), flush=True)
    return out


def _fmt(block: dict[str, Any] | None, classes: list[int]) -> str:
    if not block:
        return "-"
    if "error" in block:
        return "refused"
    values = block.get("dice", block)
    return "/".join(f"{values[str(c)]:.3f}" for c in classes)


def table_row(name: str, k: int, row: dict[str, Any], classes: list[int]) -> str:
    ours = row.get("ours", {})
    secs = ours.get("seconds", float("nan"))
    net = ours.get("network_dice")
    return (f"{name:7s} K={k}: ours {_fmt(ours, classes)} (network {_fmt(net, classes)}, "
            f"{secs:.0f} s, rule {ours.get('rule')}) | interpolation "
            f"{_fmt(row['interpolation'], classes)} | monai {_fmt(row.get('monai'), classes)} | "
            f"dense {_fmt(row.get('dense'), classes)}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--cases", nargs="+",
                        default=["lesion", "liver", "kidney", "adrenal", "brain"])
    parser.add_argument("--ks", nargs="+", type=int, default=[1, 2, 3, 5])
    parser.add_argument("--baselines-at", nargs="*", type=int, default=[3])
    parser.add_argument("--budget", type=float, default=None,
                        help="training budget in seconds (default: the product's default)")
    parser.add_argument("--out", type=Path, default=None)
    parser.add_argument("--merge", action="store_true",
                        help="add these rows to the results file instead of replacing it")
    args = parser.parse_args()
    if not DATA.is_dir():
        msg = f"{DATA} is absent: these benchmarks need the shared scans"
        raise SystemExit(msg)
    device = "cuda" if torch.cuda.is_available() else "cpu"
    started = time.perf_counter()
    results: dict[str, Any] = {
        "when": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "machine": f"{platform.processor() or platform.machine()}, "
                   f"{torch.get_num_threads()} threads, {device}",
        "torch": torch.__version__, "cases": {}}
    for name in args.cases:
        results["cases"][name] = bench_case(name, args.ks, args.baselines_at, args.budget)
    results["total_s"] = round(time.perf_counter() - started, 1)
    path = args.out or RESULTS / f"sparse_slices_{device}.json"
    path.parent.mkdir(parents=True, exist_ok=True)
    if args.merge and path.exists():
        earlier = json.loads(path.read_text())
        for name, case in results["cases"].items():
            earlier["cases"].setdefault(name, case)["k"].update(case["k"])
        earlier.setdefault("merged", []).append(results["when"])
        results = earlier
    path.write_text(json.dumps(results, indent=1))
    print(f"wrote {path} ({results['total_s']:.0f} s)")


if __name__ == "__main__":
    main()
