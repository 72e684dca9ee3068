"""Every starter model on a scan of *another subject* than it learned from, beside a floor
that learns nothing, and the time to segment on this machine.

    python benchmarks/bench_starters.py                      # all starters, 2 threads
    python benchmarks/bench_starters.py --only brain --compare old=PATH   # also an old model

Scans held out (never seen in training) and their references:

* ``brain-tissue-t1`` (learned from the ICBM152 template: its tissue maps drawn as random
  scans, see ``scripts/prepare_starter_data.py --brain-synth``) on **Colin27** (one subject,
  27 averaged T1 scans): ``ch2bet`` (skull-stripped) and ``ch2`` (the same scan with its
  skull).  Colin27 has no tissue labels, so its reference is ours: brain = ``ch2bet > 0``
  (BET's mask, shipped), GM/WM/CSF = 3-class k-means of ``ch2bet``'s intensities inside it
  (an intensity protocol, like FSL FAST without its bias correction and spatial prior; not an
  expert delineation).  Floor: the ICBM152 tissue map copied onto Colin27 by world coordinates (both
  lie in MNI space), no registration.  Also ``brain1`` (contrast T1 with skull, 6.5 mm slices,
  another subject and scanner): no tissue reference; the share of its lesion mask inside the
  predicted brain and the predicted brain volume are reported.
* ``upper-abdomen-ct-organs`` (learned from the DICOM series alone: contrast CT, 0.98 mm) on
  the bundled ``ct_abdomen`` (another subject, non-contrast, 3 mm); with ``--fold
  ct_abdomen=PATH`` also the same recipe trained on ``ct_abdomen`` and scored on the DICOM
  series (``scripts/train_starter_models.sh`` makes that fold).  Reference: TotalSegmentator's
  labels shipped with the scans (model output, not manual).  Floor: a single atlas without
  learning, the other subject's labels copied slice by slice after matching each slice's body
  box and picking the most similar atlas slice (normalised cross-correlation of HU).
* ``head-ct-tissue`` on the bundled abdominal CT (another subject and body region) against the
  rule its labels were made with (soft tissue = body, bone = HU >= 226): the rule is its own
  floor (Dice 1.0), so this row says how well the network copies a threshold elsewhere.

Writes ``benchmarks/results/starters_cpu.json`` (``--out``).
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
from scipy import ndimage

from napari_medseg.events import run_to_end
from napari_medseg.geometry import Grid, grid_oriented, resample_to
from napari_medseg.inference.catalog import find_checkpoint
from napari_medseg.inference.options import PredictOptions
from napari_medseg.inference.segment import SegmentOptions, segment_job
from napari_medseg.io import read_label_map, read_scan
from napari_medseg.metrics.overlap import dice
from napari_medseg.models.checkpoint import read_header
from napari_medseg.scan import LabelMap, Scan

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
from tests.data_root import SHARED_DATA  # noqa: E402 - the repository root must be importable first

DATA = SHARED_DATA
sys.path.insert(0, str(ROOT / "scripts"))
from prepare_starter_data import (  # noqa: E402
    ORGAN_NAMES,
    ct_tissue_labels,
    icbm_tissue,
    organ_cases,
    read_icbm,
)


def segment(model: str | Path, scan: Scan) -> tuple[np.ndarray, float]:
    start = time.perf_counter()
    options = SegmentOptions(models=(str(model),), predict=PredictOptions(device="cpu"))
    prediction = run_to_end(segment_job(scan, options))
    return prediction.labels.array, time.perf_counter() - start


def r3(x: float) -> float:
    return round(float(x), 3)


# -- brain -------------------------------------------------------------------------------

def kmeans_1d(x: np.ndarray, k: int = 3, iterations: int = 50) -> np.ndarray:
    """Hard labels 0..k-1 (by increasing centre) of 1D k-means (Lloyd)."""
    x = x.astype(np.float64)
    centres = np.percentile(x, np.linspace(15, 85, k))
    for _ in range(iterations):
        labels = np.argmin(np.abs(x[:, None] - centres), axis=1)
        centres = np.array([x[labels == j].mean() for j in range(k)])
    return labels


def colin_reference(ch2bet: Scan) -> np.ndarray:
    """0 outside BET's brain mask, 1 GM, 2 WM, 3 CSF: 3-class k-means of ch2bet's intensities
    inside it (centres 54 / 85 / 109; its GM/WM boundary, 97, sits in the histogram's valley,
    where a Gaussian mixture's broad GM component would reach far into white matter)."""
    brain = ch2bet.array > 0
    tissue = kmeans_1d(ch2bet.array[brain])  # 0 CSF, 1 GM, 2 WM
    out = np.zeros(ch2bet.shape, np.uint8)
    out[brain] = np.array([3, 1, 2], np.uint8)[tissue]
    return out


def icbm_atlas() -> LabelMap:
    """The ICBM152 tissue map: 0 outside its brain mask (T1 > 0), 1 GM, 2 WM, 3 CSF."""
    t1, gm, wm = read_icbm()
    tissue = np.array([3, 1, 2], np.uint8)[icbm_tissue(gm, wm)]
    return LabelMap(array=np.where(t1.array > 0, tissue, 0).astype(np.uint8),
                    geometry=t1.geometry)


def tissue_scores(pred: np.ndarray, truth: np.ndarray, brain_values: tuple[int, ...]
                  ) -> dict[str, float]:
    brain = np.isin(pred, brain_values)
    return {"grey matter": r3(dice(pred, truth, 1)), "white matter": r3(dice(pred, truth, 2)),
            "brain mask": r3(dice(brain.astype(np.uint8), (truth > 0).astype(np.uint8), 1))}


def brain_classes(path: Path) -> tuple[int, ...]:
    """The values of a brain model's classes inside the brain (GM, WM and CSF if it has it)."""
    names = read_header(path)[1].class_names
    return tuple(v for v, n in names.items()
                 if n in ("grey matter", "white matter", "cerebrospinal fluid"))


def brain_rows(models: dict[str, Path]) -> list[dict[str, Any]]:
    ch2bet = read_scan(DATA / "colin27" / "ch2bet.nii.gz")
    ch2 = read_scan(DATA / "colin27" / "ch2.nii.gz")
    for s in (ch2bet, ch2):
        s.modality = "MR"
    truth = colin_reference(ch2bet)
    floor = resample_to(icbm_atlas(), ch2bet).array
    rows: list[dict[str, Any]] = []
    for scan_name, scan in (("Colin27 ch2bet (skull-stripped)", ch2bet),
                            ("Colin27 ch2 (with skull)", ch2)):
        rows.append({"starter": "brain-tissue-t1", "scan": scan_name, "method":
                     "floor: ICBM152 atlas copied, no registration",
                     **tissue_scores(floor, truth, (1, 2, 3))})
        for label, path in models.items():
            pred, seconds = segment(path, scan)
            rows.append({"starter": "brain-tissue-t1", "scan": scan_name, "method": label,
                         **tissue_scores(pred, truth, brain_classes(path)),
                         "segment_s": round(seconds, 1)})
    lesion_scan = read_scan(DATA / "mri_lesion" / "brain1_image.nrrd")
    lesion = read_label_map(DATA / "mri_lesion" / "brain1_label.nrrd", like=lesion_scan).array
    for label, path in models.items():
        pred, seconds = segment(path, lesion_scan)
        inside = np.isin(pred, brain_classes(path))
        voxel_ml = float(np.prod(lesion_scan.geometry.spacing)) / 1000
        rows.append({"starter": "brain-tissue-t1", "scan": "brain1 (contrast T1, skull, 6.5 mm)",
                     "method": label, "lesion inside brain": r3(inside[lesion > 0].mean()),
                     "brain ml": round(float(inside.sum()) * voxel_ml),
                     "segment_s": round(seconds, 1)})
    return rows


# -- abdominal organs ----------------------------------------------------------------------

def body_box(hu: np.ndarray) -> tuple[slice, slice]:
    body = ndimage.binary_opening(hu > -400, iterations=2)
    ys, xs = np.nonzero(body)
    return slice(ys.min(), ys.max() + 1), slice(xs.min(), xs.max() + 1)


def to_box(image: np.ndarray, box: tuple[slice, slice], size: tuple[int, int], order: int
           ) -> np.ndarray:
    crop = image[box]
    return ndimage.zoom(crop, (size[0] / crop.shape[0], size[1] / crop.shape[1]), order=order)


def atlas_floor(target: Scan, atlas: Scan, atlas_labels: np.ndarray) -> np.ndarray:
    """The atlas's labels copied slice by slice onto ``target`` (no learning); both are
    first flipped to RAS (``grid_oriented``, as a model with that orientation reads them),
    so that they face the same way."""
    def oriented(scan: Scan) -> Grid:
        return grid_oriented(Grid.of(scan), "RAS")

    hu_t = resample_to(target, oriented(target)).array
    hu_a = resample_to(atlas, oriented(atlas)).array
    lab_a = resample_to(LabelMap(array=atlas_labels, geometry=atlas.geometry),
                        oriented(atlas)).array
    size = (128, 128)
    atlas_slices = []
    for z in range(hu_a.shape[0]):
        box = body_box(hu_a[z])
        atlas_slices.append((to_box(np.clip(hu_a[z], -250, 450), box, size, 1),
                             to_box(lab_a[z], box, size, 0)))
    out = np.zeros(hu_t.shape, np.uint8)
    for z in range(hu_t.shape[0]):
        box = body_box(hu_t[z])
        view = to_box(np.clip(hu_t[z], -250, 450), box, size, 1)
        v = (view - view.mean()) / (view.std() + 1e-6)
        scores = [float(((a - a.mean()) / (a.std() + 1e-6) * v).mean()) for a, _ in atlas_slices]
        labels = atlas_slices[int(np.argmax(scores))][1]
        h, w = box[0].stop - box[0].start, box[1].stop - box[1].start
        out[z][box] = ndimage.zoom(labels, (h / size[0], w / size[1]), order=0)[:h, :w]
    on_target = LabelMap(array=out, geometry=oriented(target).geometry)
    return resample_to(on_target, Grid.of(target)).array


def organ_scores(pred: np.ndarray, truth: np.ndarray) -> dict[str, float | None]:
    return {name: (r3(dice(pred, truth, v)) if (truth == v).any() else None)
            for v, name in ORGAN_NAMES.items() if v}


def organ_rows(folds: dict[str, Path]) -> list[dict[str, Any]]:
    cases = organ_cases()
    rows: list[dict[str, Any]] = []
    for test, trained_on in (("ct_abdomen", "dicom_series_ct"), ("dicom_series_ct", "ct_abdomen")):
        scan, truth = cases[test]
        atlas_scan, atlas_labels = cases[trained_on]
        floor = atlas_floor(scan, atlas_scan, atlas_labels)
        rows.append({"starter": "upper-abdomen-ct-organs", "scan": test, "trained on": trained_on,
                     "method": f"floor: {trained_on} labels as an atlas, slice matching",
                     **organ_scores(floor, truth)})
        if trained_on in folds:
            pred, seconds = segment(folds[trained_on], scan)
            shipped = folds[trained_on].resolve() == find_checkpoint(
                "upper-abdomen-ct-organs").resolve()
            method = ("upper-abdomen-ct-organs (the starter)" if shipped
                      else f"same recipe trained on {trained_on}")
            rows.append({"starter": "upper-abdomen-ct-organs", "scan": test,
                         "trained on": trained_on, "method": method,
                         **organ_scores(pred, truth), "segment_s": round(seconds, 1)})
    return rows


# -- head CT -----------------------------------------------------------------------------

def head_ct_rows(model: Path) -> list[dict[str, Any]]:
    ct = read_scan(ROOT / "sample_volumes" / "ct_abdomen.nii.gz")
    truth = ct_tissue_labels(ct.array)
    pred, seconds = segment(model, ct)
    return [{"starter": "head-ct-tissue", "scan": "ct_abdomen (another subject, the abdomen)",
             "method": "head-ct-tissue vs its own rule (the rule is the floor: 1.0)",
             "soft tissue": r3(dice(pred, truth, 1)), "bone": r3(dice(pred, truth, 2)),
             "segment_s": round(seconds, 1)}]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--only", choices=("brain", "organs", "headct"), action="append")
    parser.add_argument("--compare", nargs="*", default=[], metavar="LABEL=PATH",
                        help="other brain checkpoints to score beside the starter")
    parser.add_argument("--fold", nargs="*", default=[], metavar="TRAINED_ON=PATH",
                        help="organ checkpoints by training scan: ct_abdomen=PATH (default: "
                             "dicom_series_ct = the starter)")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--out", type=Path, default=ROOT / "benchmarks" / "results" /
                        "starters_cpu.json")
    args = parser.parse_args()
    import torch

    torch.set_num_threads(args.threads)
    parts = args.only or ["brain", "organs", "headct"]
    rows: list[dict[str, Any]] = []
    if "brain" in parts:
        models = {"brain-tissue-t1": find_checkpoint("brain-tissue-t1"),
                  **{k: Path(v) for k, v in (c.split("=", 1) for c in args.compare)}}
        rows += brain_rows(models)
    if "organs" in parts:
        folds = {"dicom_series_ct": find_checkpoint("upper-abdomen-ct-organs"),
                 **{k: Path(v) for k, v in (f.split("=", 1) for f in args.fold)}}
        rows += organ_rows(folds)
    if "headct" in parts:
        rows += head_ct_rows(find_checkpoint("head-ct-tissue"))
    for row in rows:
        print(json.dumps(row))
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps({
        "date": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "machine": f"{platform.processor() or platform.machine()}, torch threads {args.threads}",
        "rows": rows}, indent=1) + "\n")


if __name__ == "__main__":
    main()
