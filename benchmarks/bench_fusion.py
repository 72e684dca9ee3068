"""Fusion benchmarks on real brains (CPU): registration time/accuracy and fusion time per method.

    python benchmarks/bench_fusion.py            # full: 1 mm brains, 256^3 fusion pair
    python benchmarks/bench_fusion.py --quick    # 2 mm brains, 128^3 pair (a minute)

Measures
1. rigid registration of colin27/ch2bet (moving) onto the ICBM152 2009a template (fixed) at
   1 mm: wall time, final Mattes MI, brain-mask Dice before (headers only) and after;
2. the known-answer case: ch2bet moved by a known rigid transform (3-5 degrees, 3-5 mm) and
   contrast-inverted inside the brain, registered back: target registration error over all
   brain voxels, in mm;
3. pixel-level fusion time (and peak traced memory, and quality metrics) per method on a
   256^3 float32 pair: ch2bet resampled to 256^3 and the template registered onto it.

Writes ``benchmarks/results/fusion_cpu.json`` (``fusion_cpu_quick.json`` with ``--quick``).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import time
import tracemalloc
from pathlib import Path

import numpy as np
import SimpleITK as sitk

from napari_medseg.fusion import (
    FUSION_METHODS,
    FusionOptions,
    Grid,
    RegistrationOptions,
    fuse,
    fusion_quality,
    register,
    resample_to,
    transform_points,
)
from napari_medseg.io.itk import scan_to_sitk, sitk_to_scan
from napari_medseg.scan import Geometry, Scan

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
from tests.data_root import SHARED_DATA  # noqa: E402 - the repository root must be importable first

DATA = SHARED_DATA
COLIN = DATA / "colin27" / "ch2bet.nii.gz"
TEMPLATE = DATA / "brain_template" / "mni_icbm152_t1_tal_nlin_sym_09a_converted.nii.gz"


def read(path: Path) -> Scan:
    return sitk_to_scan(sitk.ReadImage(str(path), sitk.sitkFloat32), modality="MR")


def isotropic(scan: Scan, spacing: float | None = None, shape: int | None = None) -> Scan:
    """Resample over the scan's own box to isotropic ``spacing`` or to ``shape``^3."""
    box = np.asarray(scan.shape) * np.asarray(scan.spacing)
    if shape is not None:
        new_spacing = tuple(box / shape)
        new_shape = (shape,) * scan.ndim
    else:
        assert spacing is not None
        new_spacing = (spacing,) * scan.ndim
        new_shape = tuple(max(1, round(b / spacing)) for b in box)
    if all(abs(a - b) < 1e-6 for a, b in zip(new_spacing, scan.spacing, strict=True)):
        return scan
    first = np.asarray(scan.spacing) / 2 - np.asarray(new_spacing) / 2  # keep the box
    origin = scan.geometry.index_to_world((first - 0.0) / np.asarray(scan.spacing))
    geometry = Geometry(
        spacing=new_spacing, origin=tuple(origin), direction=scan.geometry.direction
    )
    smoothed = scan
    factor = max(new_spacing) / max(scan.spacing)
    if factor > 1.01:
        image = sitk.SmoothingRecursiveGaussian(scan_to_sitk(scan), 0.5 * max(new_spacing))
        smoothed = sitk_to_scan(image, modality=scan.modality)
    return resample_to(smoothed, Grid(geometry=geometry, shape=new_shape), default_value=0.0)


def remap_contrast(array: np.ndarray) -> np.ndarray:
    inside = array > 0.05 * float(array.max())
    return np.where(inside, 1.2 * float(array.max()) - array, 0.0).astype(np.float32)


def brain_mask(array: np.ndarray, reference_max: float) -> np.ndarray:
    return array > 0.1 * reference_max


def dice(a: np.ndarray, b: np.ndarray) -> float:
    return float(2 * np.logical_and(a, b).sum() / max(1, a.sum() + b.sum()))


def bench_registration(spacing: float) -> tuple[dict, object]:
    fixed = isotropic(read(TEMPLATE), spacing)
    moving = isotropic(read(COLIN), spacing)
    fixed_mask = brain_mask(fixed.array, float(fixed.array.max()))
    thr_max = float(moving.array.max())
    before = resample_to(moving, fixed, default_value=0.0)
    t0 = time.perf_counter()
    result = register(fixed, moving, options=RegistrationOptions(kind="rigid"))
    elapsed = time.perf_counter() - t0
    out = {
        "fixed": f"{TEMPLATE.name} {fixed.shape} at {spacing} mm",
        "moving": f"{COLIN.name} {moving.shape} at {spacing} mm",
        "kind": "rigid",
        "time_s": round(elapsed, 2),
        "initial_metric": round(result.initial_metric, 4),
        "final_metric": round(result.final_metric, 4),
        "iterations": result.iterations,
        "dice_brain_before": round(dice(brain_mask(before.array, thr_max), fixed_mask), 4),
        "dice_brain_after": round(dice(brain_mask(result.resampled.array, thr_max), fixed_mask), 4),
    }
    # The same pair after a known misalignment of the moving brain (what registration is for).
    image = scan_to_sitk(moving)
    centre = image.TransformContinuousIndexToPhysicalPoint([(n - 1) / 2 for n in image.GetSize()])
    known = sitk.Euler3DTransform(centre, 0.06, -0.05, 0.08, (4.0, -3.0, 5.0))
    misaligned = resample_to(moving, moving, transform=known, default_value=0.0)
    before = resample_to(misaligned, fixed, default_value=0.0)
    t0 = time.perf_counter()
    result2 = register(fixed, misaligned, options=RegistrationOptions(kind="rigid"))
    out["misaligned_time_s"] = round(time.perf_counter() - t0, 2)
    out["misaligned_dice_before"] = round(dice(brain_mask(before.array, thr_max), fixed_mask), 4)
    out["misaligned_dice_after"] = round(
        dice(brain_mask(result2.resampled.array, thr_max), fixed_mask), 4
    )
    return out, result


def bench_tre(spacing: float) -> dict:
    fixed = isotropic(read(COLIN), spacing)
    image = scan_to_sitk(fixed)
    centre = image.TransformContinuousIndexToPhysicalPoint([(n - 1) / 2 for n in image.GetSize()])
    known = sitk.Euler3DTransform(centre, 0.06, -0.05, 0.08, (4.0, -3.0, 5.0))
    moved = resample_to(fixed, fixed, transform=known, default_value=0.0)
    moving = Scan(array=remap_contrast(moved.array), geometry=fixed.geometry)
    t0 = time.perf_counter()
    result = register(fixed, moving, options=RegistrationOptions(kind="rigid"))
    elapsed = time.perf_counter() - t0
    index = np.argwhere(brain_mask(fixed.array, float(fixed.array.max())))
    points = fixed.geometry.index_to_world(index)
    tre = np.linalg.norm(
        transform_points(result.transform, points) - transform_points(known.GetInverse(), points),
        axis=1,
    )
    return {
        "scan": f"{COLIN.name} {fixed.shape} at {spacing} mm, moving = rigidly moved + "
        "contrast-inverted copy",
        "time_s": round(elapsed, 2),
        "tre_mean_mm": round(float(tre.mean()), 3),
        "tre_max_mm": round(float(tre.max()), 3),
        "voxel_mm": spacing,
        "brain_voxels": len(index),
    }


def bench_fusion(size: int, transform) -> dict:
    fixed = isotropic(read(COLIN), shape=size)
    template = read(TEMPLATE)
    moving = resample_to(template, fixed, transform=transform, default_value=0.0)
    out: dict = {"shape": list(fixed.shape), "dtype": "float32", "methods": {}}
    for method in FUSION_METHODS:
        options = FusionOptions(method=method)
        tracemalloc.start()
        t0 = time.perf_counter()
        fused = fuse([fixed, moving], options=options)
        elapsed = time.perf_counter() - t0
        _, peak = tracemalloc.get_traced_memory()
        tracemalloc.stop()
        t0 = time.perf_counter()
        quality = fusion_quality([fixed, moving], fused)
        qtime = time.perf_counter() - t0
        out["methods"][method] = {
            "time_s": round(elapsed, 2),
            "peak_traced_mib": round(peak / 2**20, 1),
            "quality": {k: round(v, 4) for k, v in quality.as_dict().items()},
            "quality_time_s": round(qtime, 2),
        }
        print(method, out["methods"][method], flush=True)
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="2 mm registration, 128^3 fusion")
    parser.add_argument("--threads", type=int, default=2, help="ITK threads (default 2)")
    parser.add_argument("--out", type=Path, help="JSON output path")
    args = parser.parse_args()
    if not (COLIN.is_file() and TEMPLATE.is_file()):
        msg = f"shared data not found under {DATA}"
        raise SystemExit(msg)
    sitk.ProcessObject.SetGlobalDefaultNumberOfThreads(args.threads)
    spacing, size = (2.0, 128) if args.quick else (1.0, 256)
    results: dict = {
        "machine": {
            "platform": platform.platform(),
            "cpu_count": os.cpu_count(),
            "itk_threads": args.threads,
            "simpleitk": sitk.Version_VersionString(),
        },
        "quick": args.quick,
    }
    reg, reg_result = bench_registration(spacing)
    results["registration"] = reg
    print("registration", reg, flush=True)
    results["tre"] = bench_tre(spacing)
    print("tre", results["tre"], flush=True)
    results["fusion"] = bench_fusion(size, reg_result.transform)
    out = args.out or REPO / "benchmarks" / "results" / (
        "fusion_cpu_quick.json" if args.quick else "fusion_cpu.json"
    )
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(results, indent=2) + "\n")
    print(f"wrote {out}")


if __name__ == "__main__":
    main()
