"""Cohort throughput: ``napari-medseg predict --input-list`` with 1 and 2 CPU processes.

The same manifest of real scans (crops of the shared head and abdomen CTs, written as
``.nii.gz``), the same model (a seeded 3D U-Net, features 8-16-32, CT window), run end to end
as a person would: ``torchrun --standalone --nproc_per_node P -m napari_medseg predict ...``.
Torch threads per process = cores // P, so both runs use the whole machine.  Reports, per run,
the wall time of the command (start-up and model loading included), the processing time from
the merged summary (first case started to last case written), cases/min and voxels/s over
the processing time, and the ratio of 2 processes over 1.

    python benchmarks/bench_cohort.py [--cases 8] [--processes 1 2]
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import platform
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
from tests.data_root import SHARED_DATA  # noqa: E402 - the repository root must be importable first

DATA = SHARED_DATA


def build_cohort(folder: Path, n_cases: int) -> tuple[Path, Path, int]:
    """``n_cases`` crops of real CTs, their CSV manifest and a checkpoint: the two paths and
    the number of voxels in all."""
    import torch

    from napari_medseg.io import read_scan, write_scan
    from napari_medseg.models import CheckpointSpec, IntensityContract, create_model
    from napari_medseg.models.checkpoint import save_checkpoint
    from napari_medseg.scan import Scan

    head = read_scan(DATA / "ct_head" / "head_ct.nii.gz")  # 108 x 256 x 256
    abdomen = read_scan(DATA / "ct_abdomen" / "example_ct_sm.nii.gz")  # 30 x 101 x 122
    rows = ["case_id,input"]
    voxels = 0
    for k in range(n_cases):
        if k % 2 == 0:  # head: 48-slice slabs, 160 x 160 in-plane, walking through the head
            z, yx = (k // 2 * 20) % 60, 48 + (k // 2 * 16) % 48
            scan = Scan(head.array[z:z + 48, yx:yx + 160, yx:yx + 160].copy(), head.geometry,
                        "CT")
        else:  # the whole abdomen CT
            scan = abdomen
        name = f"case{k:02d}"
        voxels += scan.array.size
        write_scan(scan, folder / f"{name}.nii.gz")
        rows.append(f"{name},{name}.nii.gz")
    manifest = folder / "cohort.csv"
    manifest.write_text("\n".join(rows) + "\n")
    torch.manual_seed(0)
    model = create_model("unet", spatial_dims=3, in_channels=1, out_channels=3,
                         features=(8, 16, 32))
    spec = CheckpointSpec(architecture="unet", spatial_dims=3, in_channels=1, out_channels=3,
                          options={"features": [8, 16, 32]}, patch_size=(32, 64, 64),
                          intensity=[IntensityContract(modality="CT", normalization="ct_window",
                                                       window=(-160, 240))])
    checkpoint = folder / "model.safetensors"
    save_checkpoint(model, spec, checkpoint)
    return manifest, checkpoint, voxels


def run(processes: int, manifest: Path, checkpoint: Path, out: Path, cores: int) -> dict:
    command = [sys.executable, "-m", "torch.distributed.run", "--standalone",
               "--nproc_per_node", str(processes), "-m", "napari_medseg", "predict",
               "--model", str(checkpoint), "--input-list", str(manifest),
               "--output-dir", str(out), "--device", "cpu", "--quiet",
               "--threads", str(max(1, cores // processes))]
    start = time.perf_counter()
    done = subprocess.run(command, capture_output=True, text=True, check=False)
    wall = time.perf_counter() - start
    if done.returncode != 0:
        msg = f"{' '.join(command)} failed:\n{done.stderr[-3000:]}"
        raise SystemExit(msg)
    summary = json.loads((out / "summary.json").read_text())
    return {"processes": processes, "threads": max(1, cores // processes), "wall_s": wall,
            **summary["totals"]}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--cases", type=int, default=8)
    parser.add_argument("--processes", type=int, nargs="+", default=[1, 2])
    parser.add_argument("--out", type=Path,
                        default=REPO / "benchmarks" / "results" / "cohort_cpu.txt")
    args = parser.parse_args()
    if not DATA.is_dir():
        msg = f"{DATA} (the shared real scans) is not available"
        raise SystemExit(msg)
    from napari_medseg.distributed import available_cores

    cores = available_cores()
    load = os.getloadavg()[0] if hasattr(os, "getloadavg") else float("nan")
    results = []
    with tempfile.TemporaryDirectory() as tmp:
        manifest, checkpoint, voxels = build_cohort(Path(tmp), args.cases)
        for processes in args.processes:
            results.append(run(processes, manifest, checkpoint, Path(tmp) / f"out{processes}",
                               cores))
    base = results[0]
    lines = [
        f"cohort inference, {args.cases} real CT crops ({voxels / 1e6:.1f} Mvoxels in all), "
        f"3D U-Net 8-16-32, 64x64x32 windows, overlap 0.5, CPU",
        f"{platform.node()}: {cores} cores, load average {load:.1f} before the runs, "
        f"torch threads per process = cores // processes; "
        f"{datetime.datetime.now().isoformat(timespec='minutes')}",
        "",
        f"{'processes':>9} {'threads':>7} {'command s':>9} {'process s':>9} {'cases/min':>9} "
        f"{'Mvox/s':>7} {'ratio':>6}",
    ]
    for r in results:
        ratio = r["cases_per_min"] / base["cases_per_min"]
        lines.append(f"{r['processes']:>9} {r['threads']:>7} {r['wall_s']:>9.1f} "
                     f"{r['wall_seconds']:>9.1f} {r['cases_per_min']:>9.1f} "
                     f"{r['voxels_per_s'] / 1e6:>7.3f} {ratio:>5.2f}x")
    lines += ["", "command s: the whole torchrun command (start-up, model loading, summary); "
              "process s: first case started to last case written (merged summary); "
              "cases/min and Mvox/s over process s; ratio: cases/min over the first row."]
    text = "\n".join(lines) + "\n"
    print(text, end="")
    args.out.write_text(text)
    print(f"wrote {args.out.relative_to(REPO) if args.out.is_relative_to(REPO) else args.out}")


if __name__ == "__main__":
    main()
