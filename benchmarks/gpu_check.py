"""One prepared check of every GPU path, in a few minutes: ``benchmarks/gpu_check.sh OUT``.

Each step runs in its own process with its own time limit, so one failure does not lose the
others; each writes ``OUT/<step>.json``; the parent writes ``OUT/report.json`` and
``OUT/summary.txt``.  Steps:

1. ``env``: device, driver, torch / CUDA versions, GPU memory (so numbers can be compared);
2. ``pytest_gpu``: ``pytest -m gpu``, then the core paths forced onto the device and compared
   with the CPU (``forced``: prediction agreement, a training step, the engine);
3. ``inference``: sliding-window inference of the zoo's 3D U-Net and a 2D U-Net on a
   512x512x300 CT-sized volume (the bundled CT tiled and resampled), ours with and without mixed
   precision beside MONAI's ``sliding_window_inference``: time, peak GPU memory, agreement;
4. ``train``: ``train_job`` from three painted liver slices with a 30 s budget: the plan,
   steps, held-back Dice, press-to-mask time;
5. ``interactive``: the interactive engine's time per click (median, p95) with the click
   protocol (the engine computes on the CPU; this says what a person on that machine gets);
6. ``torchrun``: ``train`` under ``torchrun --nproc_per_node 1`` (NCCL on a GPU) and the cohort
   predictor with ``--device``.

Without a GPU the same command runs a short CPU dry run of every step, so it cannot rot, and
says plainly that no GPU was found (``tests/test_gpu_check.py`` runs it).  It installs nothing.

    python benchmarks/gpu_check.py OUT [--dry] [--only STEP ...]
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
SAMPLES = REPO / "sample_volumes"
STEPS = {"env": 60, "pytest_gpu": 150, "inference": 180, "train": 90, "interactive": 60,
         "torchrun": 120}
DRY_STEPS = {"env": 60, "pytest_gpu": 120, "inference": 120, "train": 120, "interactive": 60,
             "torchrun": 150}


def _device(dry: bool) -> str:
    import torch

    return "cpu" if dry or not torch.cuda.is_available() else "cuda"


def _sync(device: str) -> None:
    import torch

    if device == "cuda":
        torch.cuda.synchronize()


def _peak_mib(device: str) -> float:
    import torch

    return torch.cuda.max_memory_allocated() / 2**20 if device == "cuda" else 0.0


def _reset_peak(device: str) -> None:
    import torch

    if device == "cuda":
        torch.cuda.empty_cache()
        torch.cuda.reset_peak_memory_stats()


# ---------------------------------------------------------------------------- steps
def step_env(dry: bool) -> dict[str, Any]:
    import torch

    info: dict[str, Any] = {"python": platform.python_version(), "torch": torch.__version__,
                            "cuda_available": torch.cuda.is_available(),
                            "torch_cuda": torch.version.cuda, "dry_run": dry}
    if torch.cuda.is_available():
        props = torch.cuda.get_device_properties(0)
        info.update(gpu=props.name, gpu_memory_gib=round(props.total_memory / 2**30, 1),
                    capability=f"{props.major}.{props.minor}",
                    cudnn=torch.backends.cudnn.version())
        try:
            info["driver"] = subprocess.run(
                ["nvidia-smi", "--query-gpu=driver_version", "--format=csv,noheader"],
                capture_output=True, text=True, timeout=20).stdout.strip()
        except (OSError, subprocess.SubprocessError):
            info["driver"] = "unknown (nvidia-smi not found)"
    return info


def step_pytest_gpu(dry: bool) -> dict[str, Any]:
    import numpy as np
    import torch

    args = [sys.executable, "-m", "pytest", "-q", "-m", "gpu", "-p", "no:cacheprovider",
            "tests"]
    if dry:  # collect the files that hold gpu tests: the marker and its tests still import
        args[-1:] = [str(p.relative_to(REPO)) for p in sorted((REPO / "tests").rglob("*.py"))
                     if "mark.gpu" in p.read_text(encoding="utf-8", errors="replace")]
        args.append("--collect-only")
    proc = subprocess.run(args, capture_output=True, text=True, cwd=REPO, timeout=110)
    tail = proc.stdout.strip().splitlines()[-1:] or [proc.stderr.strip()[-200:]]
    out: dict[str, Any] = {"pytest_gpu_exit": proc.returncode, "pytest_gpu": tail[0],
                           "ok": proc.returncode in (0, 5)}  # 5: no test collected
    # the core forced onto the device and compared with the CPU
    device = _device(dry)
    from napari_medseg.inference import PredictOptions, Predictor, find_checkpoint
    from napari_medseg.io import read_scan
    from napari_medseg.models import load_checkpoint

    scan = read_scan(SAMPLES / "ct_abdomen.nii.gz")
    model, spec = load_checkpoint(find_checkpoint("upper-abdomen-ct-organs"))
    labels = {}
    for dev in ("cpu", device):
        predictor = Predictor(model, spec, device=dev)
        labels[dev] = predictor.predict(scan, PredictOptions(device=dev)).labels.array
    out["forced_predict_agreement"] = float(np.mean(labels["cpu"] == labels[device]))
    net = torch.nn.Conv3d(1, 2, 3, padding=1).to(device)
    x = torch.randn(2, 1, 16, 16, 16, device=device)
    loss = net(x).square().mean()
    loss.backward()
    out["forced_backward_ok"] = bool(net.weight.grad is not None)
    out["forced_device"] = device
    return out


def _ct_volume(shape: tuple[int, int, int]) -> Any:
    """The bundled CT, normalised, resampled in-plane and tiled along z to ``shape``."""
    import numpy as np
    from scipy import ndimage

    from napari_medseg.io import read_scan

    ct = read_scan(SAMPLES / "ct_abdomen.nii.gz").array.astype(np.float32)
    ct = np.clip((ct + 160) / 400, 0, 1)
    zoom = (1.0, shape[1] / ct.shape[1], shape[2] / ct.shape[2])
    plane = ndimage.zoom(ct, zoom, order=1)
    reps = -(-shape[0] // plane.shape[0])
    return np.ascontiguousarray(np.concatenate([plane] * reps)[: shape[0]], dtype=np.float32)


def step_inference(dry: bool) -> dict[str, Any]:
    import numpy as np
    import torch
    from monai.inferers import sliding_window_inference

    from napari_medseg.inference import PredictOptions, Predictor
    from napari_medseg.models import CheckpointSpec, create_model
    from napari_medseg.scan import Geometry, Scan

    device = _device(dry)
    shape = (24, 64, 64) if dry else (300, 512, 512)
    window = 32 if dry else 128
    volume = _ct_volume(shape)
    out: dict[str, Any] = {"shape": list(shape), "window": window, "device": device}
    torch.manual_seed(0)
    features = [16, 32, 64, 128]
    model = create_model("unet", spatial_dims=3, in_channels=1, out_channels=4,
                         features=tuple(features)).eval().to(device)
    spec = CheckpointSpec(architecture="unet", spatial_dims=3, in_channels=1, out_channels=4,
                          options={"features": features})
    scan = Scan(volume, Geometry.identity(3))
    labels = {}
    for name, amp in (("ours_amp", True), ("ours_fp32", False)):
        _reset_peak(device)
        _sync(device)
        t = time.perf_counter()
        result = Predictor(model, spec, device=device).predict(
            scan, PredictOptions(tile=(window,) * 3, overlap=0.5, device=device, amp=amp))
        _sync(device)
        out[name] = {"seconds": round(time.perf_counter() - t, 3),
                     "gpu_peak_mib": round(_peak_mib(device), 1)}
        labels[name] = result.labels.array
    _reset_peak(device)
    t = time.perf_counter()
    with torch.inference_mode():
        x = torch.from_numpy(volume)[None, None].to(device)
        logits = sliding_window_inference(x, (window,) * 3, 1, model, overlap=0.5,
                                          mode="gaussian", sigma_scale=0.125, sw_device=device,
                                          device=device)
        labels["monai"] = logits.argmax(1)[0].to(torch.uint8).cpu().numpy()
        del x, logits
    _sync(device)
    out["monai_fp32"] = {"seconds": round(time.perf_counter() - t, 3),
                         "gpu_peak_mib": round(_peak_mib(device), 1)}
    for name in ("ours_amp", "ours_fp32"):
        out[f"{name}_agreement_with_monai"] = float(np.mean(labels[name] == labels["monai"]))
    out["speedup_ours_amp_vs_monai"] = round(out["monai_fp32"]["seconds"]
                                             / max(out["ours_amp"]["seconds"], 1e-9), 2)
    model2d = create_model("unet", spatial_dims=2, in_channels=1, out_channels=4,
                           features=tuple(features)).eval().to(device)
    spec2d = CheckpointSpec(architecture="unet", spatial_dims=2, in_channels=1, out_channels=4,
                            options={"features": features}, slice_axis=0)
    _reset_peak(device)
    t = time.perf_counter()
    Predictor(model2d, spec2d, device=device).predict(scan, PredictOptions(device=device))
    _sync(device)
    out["ours_2d_unet"] = {"seconds": round(time.perf_counter() - t, 3),
                           "gpu_peak_mib": round(_peak_mib(device), 1)}
    return out


def _liver_volume() -> Any:
    import numpy as np

    from napari_medseg.io import read_label_map, read_scan
    from napari_medseg.scan import LabelMap
    from napari_medseg.training import LabeledVolume

    scan = read_scan(SAMPLES / "ct_abdomen.nii.gz")
    organs = read_label_map(SAMPLES / "ct_abdomen_organs.nii.gz", like=scan).array
    labeled = np.zeros(scan.shape, bool)
    labeled[[5, 15, 25]] = True
    labels = np.where(labeled, organs == 5, 0).astype(np.uint8)
    return LabeledVolume([scan], LabelMap(labels, scan.geometry, {0: "background",
                                                                  1: "liver"}),
                         labeled=labeled), organs == 5


def step_train(dry: bool) -> dict[str, Any]:
    import numpy as np

    from napari_medseg.events import run_to_end
    from napari_medseg.training.job import train_job
    from napari_medseg.training.plan import LearnOptions

    device = _device(dry)
    volume, liver = _liver_volume()
    t = time.perf_counter()
    result = run_to_end(train_job([volume], LearnOptions(budget_s=15 if dry else 30,
                                                         device=device)))
    seconds = time.perf_counter() - t
    out: dict[str, Any] = {"device": device, "press_to_mask_s": round(seconds, 1),
                           "plan": result.plan.summary(), "steps": result.train.steps_done,
                           "learned": result.learned, "summary": result.summary()}
    if result.mask is not None:
        got = result.mask.array > 0
        unpainted = np.ones(got.shape, bool)
        unpainted[[5, 15, 25]] = False
        out["dice_unpainted"] = round(float(
            2 * (got & liver & unpainted).sum()
            / max((got & unpainted).sum() + (liver & unpainted).sum(), 1)), 3)
    return out


def step_interactive(dry: bool) -> dict[str, Any]:
    import numpy as np

    sys.path.insert(0, str(REPO / "benchmarks"))
    from bench_interactive import run_clicks
    from napari_medseg.interactive import Session
    from napari_medseg.io import read_label_map, read_scan

    scan = read_scan(SAMPLES / "ct_abdomen.nii.gz")
    organs = read_label_map(SAMPLES / "ct_abdomen_organs.nii.gz", like=scan).array
    out: dict[str, Any] = {"engine_device": "cpu"}
    times: list[float] = []
    for value, name in ((1, "spleen"), (2, "kidney"), (5, "liver")):
        session = Session(scan)
        dices, t, _ = run_clicks(lambda c, s=session: s.add_point(c[-1][0], positive=c[-1][1]),
                                 organs == value, 3 if dry else 10)
        times += t
        out[f"{name}_dice_per_click"] = [round(d, 3) for d in dices]
    out["median_ms"] = round(float(np.median(times)) * 1000, 1)
    out["p95_ms"] = round(float(np.percentile(times, 95)) * 1000, 1)
    return out


def step_torchrun(dry: bool) -> dict[str, Any]:
    device = _device(dry)
    out: dict[str, Any] = {"device": device}
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        volume, _ = _liver_volume()
        from napari_medseg.io import write_label_map, write_scan

        write_scan(volume.scans[0], work / "ct.nii.gz")
        labels = volume.labels.array.copy()
        labels[~volume.labeled_mask()] = 255
        from napari_medseg.scan import LabelMap

        write_label_map(LabelMap(labels, volume.grid.geometry), work / "sparse.nii.gz")
        cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone",
               "--nproc_per_node", "1", "-m", "napari_medseg", "train", "--model", "unet",
               "--images", str(work / "ct.nii.gz"), "--labels", str(work / "sparse.nii.gz"),
               "--ignore-value", "255", "--out", str(work / "ddp.safetensors"),
               "--steps", "4" if dry else "40", "--device", device, "--quiet"]
        t = time.perf_counter()
        proc = subprocess.run(cmd, capture_output=True, text=True, cwd=REPO, timeout=100)
        # exit 1 with "no model was saved": the distributed run went through and learned
        # too little in its few steps (a dry run's 4): the path works
        out["ok"] = proc.returncode == 0 or "no model was saved" in proc.stdout
        out["torchrun_train"] = {"exit": proc.returncode,
                                 "seconds": round(time.perf_counter() - t, 1),
                                 "tail": _said(proc)}
        (work / "cases").mkdir()
        (work / "cases" / "ct.nii.gz").write_bytes((work / "ct.nii.gz").read_bytes())
        cmd = [sys.executable, "-m", "napari_medseg", "predict", "--model",
               "upper-abdomen-ct-organs", "--input-list", str(work / "cases"), "--output-dir",
               str(work / "out"), "--device", device, "--quiet"]
        t = time.perf_counter()
        proc = subprocess.run(cmd, capture_output=True, text=True, cwd=REPO, timeout=100)
        out["ok"] = out["ok"] and proc.returncode == 0
        out["cohort_predict"] = {"exit": proc.returncode,
                                 "seconds": round(time.perf_counter() - t, 1),
                                 "tail": _said(proc)}
    return out


def _said(proc: subprocess.CompletedProcess[str]) -> str:
    """The lines of a command's output that say what happened (errors first)."""
    lines = (proc.stdout + proc.stderr).strip().splitlines()
    errors = [line for line in lines if "error" in line.lower() and "elastic" not in line]
    return "\n".join((errors or lines)[-4:])[-400:]


STEP_FUNCTIONS = {"env": step_env, "pytest_gpu": step_pytest_gpu, "inference": step_inference,
                  "train": step_train, "interactive": step_interactive,
                  "torchrun": step_torchrun}


# ---------------------------------------------------------------------------- driver
def run_step(name: str, out: Path, dry: bool) -> None:
    import torch

    torch.set_num_threads(max(1, min(8, os.cpu_count() or 1)))
    result = {"step": name, "ok": True}
    t = time.perf_counter()
    try:
        result.update(STEP_FUNCTIONS[name](dry))
    except Exception as exc:
        result.update(ok=False, error=f"{type(exc).__name__}: {exc}")
    result["seconds"] = round(time.perf_counter() - t, 1)
    (out / f"{name}.json").write_text(json.dumps(result, indent=1, default=str))


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("out", type=Path)
    parser.add_argument("--dry", action="store_true", help="a short CPU run of every step")
    parser.add_argument("--only", nargs="*", choices=list(STEPS))
    parser.add_argument("--step", choices=list(STEPS), help=argparse.SUPPRESS)
    args = parser.parse_args()
    args.out.mkdir(parents=True, exist_ok=True)
    if args.step:
        run_step(args.step, args.out, args.dry)
        return 0
    import torch

    dry = args.dry or not torch.cuda.is_available()
    limits = DRY_STEPS if dry else STEPS
    report: dict[str, Any] = {"gpu_found": torch.cuda.is_available(), "dry_run": dry,
                              "steps": {}}
    lines = ["napari-medseg GPU check"
             + ("" if torch.cuda.is_available() else ": no GPU was found; this is a CPU dry run "
                "of every step (numbers are not GPU numbers)")]
    for name in args.only or list(STEPS):
        cmd = [sys.executable, str(Path(__file__).resolve()), str(args.out), "--step", name]
        if dry:
            cmd.append("--dry")
        t = time.perf_counter()
        try:
            proc = subprocess.run(cmd, capture_output=True, text=True, cwd=REPO,
                                  timeout=limits[name])
            path = args.out / f"{name}.json"
            data = (json.loads(path.read_text()) if path.exists() else
                    {"ok": False, "error": f"exit {proc.returncode}: {proc.stderr[-500:]}"})
        except subprocess.TimeoutExpired:
            data = {"ok": False, "error": f"timed out after {limits[name]} s"}
        data["wall_s"] = round(time.perf_counter() - t, 1)
        report["steps"][name] = data
        brief = {k: v for k, v in data.items() if k not in ("step", "tail")}
        lines.append(f"{name}: {'ok' if data.get('ok') else 'FAILED'} "
                     f"({data['wall_s']} s) {json.dumps(brief, default=str)[:600]}")
    (args.out / "report.json").write_text(json.dumps(report, indent=1, default=str))
    (args.out / "summary.txt").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))
    return 0 if all(s.get("ok") for s in report["steps"].values()) else 1


if __name__ == "__main__":
    sys.exit(main())
