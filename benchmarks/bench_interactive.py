"""Interactive segmentation with simulated clicks: the project's Session beside scikit-image's
random walker and SimpleITK's ConfidenceConnected given the same clicks.

Protocol (CVPR 2025 interactive 3D segmentation challenge; the same rule as
``../shared/tools/click_protocol.py``): start from an empty mask; at each step the error is
prediction != truth; take its largest 26-connected component; click at the maximum of that
component's Euclidean distance transform; positive where the truth is 1 there, negative
otherwise.  Reported per object and method: Dice after 1, 3, 5 and 10 clicks, NoC@85 and
NoC@90 (11 when never), median and 95th-percentile time per click; and the memory effect:
clicks to Dice 0.9 for a second object of the same kind after the first was accepted (on the
same scan, or another subject's scan) against a fresh session.

The engine learns nothing offline: no object below was used to fit weights, except the two
named ``tuning`` (the engine's few options were set on them); every other row is held out.

    python benchmarks/bench_interactive.py [--only NAME ...] [--methods project,random_walker]

Writes ``benchmarks/results/interactive_cpu.json`` (``--out``).
"""

from __future__ import annotations

import argparse
import json
import platform
import sys
import time
from collections.abc import Callable
from datetime import datetime, timezone
from pathlib import Path

import numpy as np
import SimpleITK as sitk
from scipy import ndimage

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
from tests.data_root import SHARED_DATA  # noqa: E402 - the repository root must be importable first

DATA = SHARED_DATA

# (name, scan, labels, value or rule, role)
CASES = [
    ("brain lesion (T1, 6.5 mm)", "mri_lesion/brain1_image.nrrd", "mri_lesion/brain1_label.nrrd",
     1, "lesion"),
    ("breast lesion (MR)", "mri_lesion/breast1_image.nrrd", "mri_lesion/breast1_label.nrrd", 1,
     "lesion"),
    ("CT liver", "ct_abdomen/example_ct_sm.nii.gz", "ct_abdomen/example_seg.nii.gz", 5, "organ"),
    ("CT spleen", "ct_abdomen/example_ct_sm.nii.gz", "ct_abdomen/example_seg.nii.gz", 1,
     "tuning"),
    ("CT kidney R", "ct_abdomen/example_ct_sm.nii.gz", "ct_abdomen/example_seg.nii.gz", 2,
     "organ"),
    ("CT kidney L", "ct_abdomen/example_ct_sm.nii.gz", "ct_abdomen/example_seg.nii.gz", 3,
     "organ"),
    ("CT stomach", "ct_abdomen/example_ct_sm.nii.gz", "ct_abdomen/example_seg.nii.gz", 6,
     "organ"),
    ("CT aorta", "ct_abdomen/example_ct_sm.nii.gz", "ct_abdomen/example_seg.nii.gz", 52,
     "organ"),
    ("CT liver (DICOM, 0.98 mm)", "dicom_series_ct",
     "dicom_series_ct_labels/example_seg_dicom.nii.gz", 5, "organ"),
    ("MR liver", "mr_abdomen/example_mr_sm.nii.gz", "mr_abdomen/example_seg_mr.nii.gz", 5,
     "organ"),
    ("MR kidney R", "mr_abdomen/example_mr_sm.nii.gz", "mr_abdomen/example_seg_mr.nii.gz", 2,
     "tuning"),
    ("template lateral ventricles",
     "brain_template/mni_icbm152_t1_tal_nlin_sym_09a_converted.nii.gz", "ventricles", 1,
     "brain"),
]
# second object of the same kind: (first case, second case)
MEMORY = [("CT kidney R", "CT kidney L"), ("CT liver", "CT liver (DICOM, 0.98 mm)")]


def dice(a: np.ndarray, b: np.ndarray) -> float:
    s = a.sum() + b.sum()
    return float(2 * (a & b).sum() / s) if s else 1.0


def next_click(pred: np.ndarray, gt: np.ndarray):
    err = pred != gt
    if not err.any():
        return None
    lab, _ = ndimage.label(err, structure=np.ones((3,) * gt.ndim))
    comp = lab == (int(np.argmax(np.bincount(lab.ravel())[1:])) + 1)
    box = ndimage.find_objects(comp.astype(np.uint8))[0]
    sl = tuple(slice(max(s.start - 1, 0), s.stop + 1) for s in box)
    dt = ndimage.distance_transform_edt(comp[sl])
    p = tuple(int(i + s.start) for i, s in zip(np.unravel_index(int(np.argmax(dt)), dt.shape),
                                               sl, strict=True))
    return p, bool(gt[p])


def load_case(scan_rel: str, labels_rel: str, value: int):
    from napari_medseg.io import read_label_map, read_scan

    scan = read_scan(DATA / scan_rel)
    if labels_rel == "ventricles":
        gt = ventricles(scan)
    elif "dicom" in labels_rel:  # exported with rows flipped (scripts/prepare_starter_data.py)
        gt = np.asarray(read_label_map(DATA / labels_rel).array)[:, ::-1, :] == value
        scan.modality = "CT"
    else:
        gt = np.asarray(read_label_map(DATA / labels_rel, like=scan).array) == value
    lab, n = ndimage.label(gt)
    if n > 1:  # the largest connected piece: one object
        gt = lab == (int(np.argmax(np.bincount(lab.ravel())[1:])) + 1)
    return scan, gt


def ventricles(scan) -> np.ndarray:
    """The template's lateral ventricles: CSF (not GM, not WM by the template's probability
    maps) inside the brain, the largest connected part in the central slab. A rule on the
    template's own tissue maps, not an expert delineation."""
    from napari_medseg.io import read_scan

    gm = read_scan(DATA / "brain_template/mni_icbm152_gm_tal_nlin_sym_09a_converted.nii.gz").array
    wm = read_scan(DATA / "brain_template/mni_icbm152_wm_tal_nlin_sym_09a_converted.nii.gz").array
    t1 = np.asarray(scan.array, np.float32)
    brain = ndimage.binary_fill_holes(ndimage.binary_closing((gm > 60) | (wm > 60), iterations=3))
    csf = brain & (gm < 60) & (wm < 60) & (t1 < np.percentile(t1[brain], 15))
    csf = ndimage.binary_opening(csf)
    lab, _ = ndimage.label(csf)
    sizes = np.bincount(lab.ravel())
    sizes[0] = 0
    return lab == int(np.argmax(sizes))


def project_method(scan, memory=None, kind=None) -> tuple[Callable, object]:
    from napari_medseg.interactive import Session

    session = Session(scan, memory=memory, kind=kind)
    return (lambda clicks: session.add_point(clicks[-1][0], positive=clicks[-1][1])), session


def random_walker_method(scan) -> Callable:
    from skimage.segmentation import random_walker as rw

    image = np.asarray(scan.array, np.float32)

    def seg(clicks):
        if not any(p for _, p in clicks):
            return np.zeros(image.shape, bool)
        pts = np.array([c for c, _ in clicks])
        r = np.array([24, 48, 48])[-image.ndim:]
        lo = np.maximum(pts.min(0) - r, 0)
        hi = np.minimum(pts.max(0) + r + 1, image.shape)
        sl = tuple(slice(int(a), int(b)) for a, b in zip(lo, hi, strict=True))
        crop = image[sl]
        crop = (crop - crop.mean()) / (crop.std() + 1e-6)
        seeds = np.zeros(crop.shape, np.int32)
        for ax in range(crop.ndim):
            idx = [slice(None)] * crop.ndim
            idx[ax] = 0
            seeds[tuple(idx)] = 2
            idx[ax] = -1
            seeds[tuple(idx)] = 2
        for c, p in clicks:
            seeds[tuple(slice(max(v - s.start - 1, 0), v - s.start + 2)
                        for v, s in zip(c, sl, strict=True))] = 1 if p else 2
        out = np.zeros(image.shape, bool)
        out[sl] = rw(crop, seeds, beta=130, mode="cg_j") == 1
        return out
    return seg


def confidence_connected_method(scan) -> Callable:
    image = np.asarray(scan.array, np.float32)
    img = sitk.GetImageFromArray(image)

    def seg(clicks):
        pos = [c for c, p in clicks if p]
        if not pos:
            return np.zeros(image.shape, bool)
        return sitk.GetArrayFromImage(sitk.ConfidenceConnected(
            img, seedList=[tuple(int(v) for v in p[::-1]) for p in pos], numberOfIterations=2,
            multiplier=2.0, initialNeighborhoodRadius=1, replaceValue=1)) > 0
    return seg


def run_clicks(seg: Callable, gt: np.ndarray, n_clicks: int = 10):
    pred = np.zeros(gt.shape, bool)
    clicks, dices, times = [], [], []
    for _ in range(n_clicks):
        c = next_click(pred, gt)
        if c is None:
            dices.append(1.0)
            continue
        clicks.append(c)
        t = time.perf_counter()
        pred = np.asarray(seg(clicks), bool)
        times.append(time.perf_counter() - t)
        dices.append(dice(pred, gt))
    return dices, times, pred


def noc(dices: list[float], target: float) -> int:
    return next((i + 1 for i, d in enumerate(dices) if d >= target), len(dices) + 1)


def summary(dices, times) -> dict:
    return {"dice": [round(d, 4) for d in dices],
            "dice_at": {k: round(dices[k - 1], 4) for k in (1, 3, 5, 10)},
            "noc85": noc(dices, 0.85), "noc90": noc(dices, 0.90),
            "median_ms": round(float(np.median(times)) * 1000, 1) if times else None,
            "p95_ms": round(float(np.percentile(times, 95)) * 1000, 1) if times else None}


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--only", nargs="*", default=None, help="case names containing these")
    ap.add_argument("--methods", default="project,random_walker,confidence_connected")
    ap.add_argument("--no-memory", action="store_true")
    ap.add_argument("--out", default=str(REPO / "benchmarks/results/interactive_cpu.json"))
    args = ap.parse_args()
    import torch

    torch.set_num_threads(2)
    methods = args.methods.split(",")
    rows = []
    cache = {}
    for name, scan_rel, labels_rel, value, role in CASES:
        if args.only and not any(o.lower() in name.lower() for o in args.only):
            continue
        scan, gt = load_case(scan_rel, labels_rel, value)
        cache[name] = (scan, gt)
        for method in methods:
            if method == "project":
                seg, _ = project_method(scan)
            elif method == "random_walker":
                seg = random_walker_method(scan)
            else:
                seg = confidence_connected_method(scan)
            dices, times, _ = run_clicks(seg, gt)
            row = {"object": name, "role": role, "voxels": int(gt.sum()), "method": method,
                   **summary(dices, times)}
            rows.append(row)
            print(f"{name:30s} {method:22s} Dice@1/3/5/10 "
                  + " ".join(f"{row['dice_at'][k]:.3f}" for k in (1, 3, 5, 10))
                  + f"  NoC85 {row['noc85']:2d} NoC90 {row['noc90']:2d}  "
                  f"median {row['median_ms']} ms p95 {row['p95_ms']} ms", flush=True)
    memory_rows = []
    if not args.no_memory and "project" in methods:
        for first, second in MEMORY:
            if first not in cache or second not in cache:
                continue
            scan1, gt1 = cache[first]
            scan2, gt2 = cache[second]
            seg1, session1 = project_method(scan1)
            run_clicks(seg1, gt1)
            session1.accept(first.split()[1] if len(first.split()) > 1 else "object")
            kind = session1.objects[-1].name
            fresh, _ = project_method(scan2, kind=kind)
            d_fresh, _, _ = run_clicks(fresh, gt2)
            taught, _ = project_method(scan2, memory=session1.memory, kind=kind)
            d_taught, _, _ = run_clicks(taught, gt2)
            memory_rows.append({"first": first, "second": second, "kind": kind,
                                "fresh_noc90": noc(d_fresh, 0.9),
                                "taught_noc90": noc(d_taught, 0.9),
                                "fresh_dice1": round(d_fresh[0], 4),
                                "taught_dice1": round(d_taught[0], 4)})
            print(f"memory {first} -> {second}: NoC90 fresh {noc(d_fresh, 0.9)} taught "
                  f"{noc(d_taught, 0.9)}; Dice@1 fresh {d_fresh[0]:.3f} taught {d_taught[0]:.3f}")
    report = {"when": datetime.now(tz=timezone.utc).isoformat(timespec="seconds"),
              "machine": f"{platform.processor() or platform.machine()}, torch threads 2",
              "rows": rows, "memory": memory_rows}
    held = [r for r in rows if r["method"] == "project" and r["role"] != "tuning"]
    if held:
        report["project_held_out_mean"] = {
            "dice5": round(float(np.mean([r["dice_at"][5] for r in held])), 4),
            "noc90": round(float(np.mean([r["noc90"] for r in held])), 2)}
        print("project, held-out objects: mean Dice@5 "
              f"{report['project_held_out_mean']['dice5']:.3f}, mean NoC90 "
              f"{report['project_held_out_mean']['noc90']:.1f}")
    if args.only is None:
        Path(args.out).write_text(json.dumps(report, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
