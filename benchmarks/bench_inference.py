"""Our sliding-window engine against MONAI's ``sliding_window_inference``, in one run.

Same model, same weights, same normalised real CT volume, same window, overlap, batch and
Gaussian blending; each engine runs in its own process so peak memory is its own.  Reports
voxels/s, peak resident memory added by the run, and the Dice agreement of the label maps.
Goal (issue 4, CPU): >= 1.3x MONAI's throughput, <= half its peak memory, Dice >= 0.999.

    python benchmarks/bench_inference.py [--quick] [--classes 8] [--device cpu]
    python benchmarks/bench_inference.py --in-plane 512   # a clinical 512x512 grid

``--in-plane 512`` resamples the real head CT (256x256x108, 0.96 mm pixels) linearly to
512x512 pixels per slice (0.48 mm), the matrix of a clinical CT, same 108 slices.  Peak memory
is counted from after each engine's imports and the model load, so it is the run's own.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
from tests.data_root import SHARED_DATA  # noqa: E402 - the repository root must be importable first

CT = SHARED_DATA / "ct_head" / "head_ct.nii.gz"

CHILD = r"""
import gc, json, resource, sys, time
import numpy as np, torch
engine, volume_path, weights_path, classes, window, batch, device = sys.argv[1:8]
classes, batch = int(classes), int(batch)
window = tuple(int(w) for w in window.split(","))
torch.manual_seed(0)
from napari_medseg.models import create_model, CheckpointSpec
volume = np.load(volume_path)
model = create_model("unet", spatial_dims=3, in_channels=1, out_channels=classes,
                     features=(8, 16, 32, 64))
model.load_state_dict(torch.load(weights_path, weights_only=True))
model.eval().to(device)
if engine == "monai":
    from monai.inferers import sliding_window_inference
else:
    from napari_medseg.inference import PredictOptions, Predictor
    from napari_medseg.scan import Geometry, Scan
gc.collect()
base = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
if device.startswith("cuda"):
    torch.cuda.reset_peak_memory_stats()
t = time.perf_counter()
if engine == "monai":
    with torch.inference_mode():
        x = torch.from_numpy(volume)[None, None].to(device)
        out = sliding_window_inference(x, window, batch, model, overlap=0.5, mode="gaussian",
                                       sigma_scale=0.125, sw_device=device, device="cpu")
        labels = out.argmax(1)[0].to(torch.uint8).numpy()
else:
    spec = CheckpointSpec(architecture="unet", spatial_dims=3, in_channels=1,
                          out_channels=classes, options={"features": [8, 16, 32, 64]})
    scan = Scan(volume, Geometry.identity(3))
    result = Predictor(model, spec, device=device).predict(
        scan, PredictOptions(tile=window, overlap=0.5, batch_size=batch, device=device))
    labels = result.labels.array
seconds = time.perf_counter() - t
peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
gpu_peak = torch.cuda.max_memory_allocated() if device.startswith("cuda") else 0
np.save(sys.argv[8], labels)
print(json.dumps({"seconds": seconds, "peak_extra_bytes": peak - base, "gpu_peak_bytes": gpu_peak}))
"""


def dice_agreement(a, b, classes: int) -> float:
    import numpy as np

    scores = []
    for k in range(classes):
        x, y = a == k, b == k
        total = int(x.sum() + y.sum())
        if total:
            scores.append(2 * int((x & y).sum()) / total)
    return float(np.mean(scores))


def main() -> None:
    import numpy as np
    import torch

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="a 64^3 crop and 48^3 windows")
    parser.add_argument("--classes", type=int, default=8)
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--window", type=int, default=96)
    parser.add_argument("--batch", type=int, default=1,
                        help="windows per batch for both (1: MONAI's default, our CPU plan)")
    parser.add_argument("--file", type=Path, default=CT)
    parser.add_argument("--in-plane", type=int, default=0,
                        help="resample each slice to this many pixels per side (e.g. 512)")
    args = parser.parse_args()

    from napari_medseg.inference.preprocess import normalize
    from napari_medseg.io import read_scan
    from napari_medseg.models import IntensityContract, create_model

    scan = read_scan(args.file)
    volume = normalize(scan.array, IntensityContract(modality="CT", normalization="ct_window",
                                                     window=(-160, 240)))
    window = args.window
    if args.in_plane:
        from scipy import ndimage

        zoom = (1.0, args.in_plane / volume.shape[1], args.in_plane / volume.shape[2])
        volume = ndimage.zoom(volume, zoom, order=1).astype(np.float32)
    if args.quick:
        volume, window = volume[:48, :96, :96].copy(), 48
    torch.manual_seed(0)
    model = create_model("unet", spatial_dims=3, in_channels=1, out_channels=args.classes,
                         features=(8, 16, 32, 64))
    results = {}
    with tempfile.TemporaryDirectory() as tmp:
        np.save(f"{tmp}/volume.npy", volume)
        torch.save(model.state_dict(), f"{tmp}/weights.pt")
        for engine in ("monai", "medseg"):
            out = subprocess.run(
                [sys.executable, "-c", CHILD, engine, f"{tmp}/volume.npy", f"{tmp}/weights.pt",
                 str(args.classes), f"{window},{window},{window}", str(args.batch), args.device,
                 f"{tmp}/{engine}.npy"],
                capture_output=True, text=True, check=True,
            ).stdout
            results[engine] = json.loads(out.strip().splitlines()[-1])
            results[engine]["labels"] = np.load(f"{tmp}/{engine}.npy")
    voxels = volume.size
    agreement = dice_agreement(results["medseg"]["labels"], results["monai"]["labels"],
                               args.classes)
    summary = {"file": args.file.name, "shape": list(volume.shape), "window": window,
               "classes": args.classes, "device": args.device, "dice_agreement": agreement}
    for engine in ("monai", "medseg"):
        r = results[engine]
        summary[engine] = {
            "seconds": r["seconds"],
            "voxels_per_s": voxels / r["seconds"],
            "peak_extra_mib": r["peak_extra_bytes"] / 2**20,
            "gpu_peak_mib": r["gpu_peak_bytes"] / 2**20,
        }
    summary["throughput_ratio"] = summary["medseg"]["voxels_per_s"] / summary["monai"][
        "voxels_per_s"]
    summary["memory_ratio"] = summary["medseg"]["peak_extra_mib"] / max(
        summary["monai"]["peak_extra_mib"], 1e-9)
    print(f"{args.file.name} {tuple(volume.shape)}, window {window}^3, {args.classes} classes, "
          f"{args.device}")
    for engine in ("monai", "medseg"):
        s = summary[engine]
        print(f"  {engine:7s} {s['seconds']:7.1f} s  {s['voxels_per_s'] / 1e6:6.2f} Mvox/s  "
              f"peak +{s['peak_extra_mib']:7.1f} MiB")
    print(f"  throughput ours/MONAI {summary['throughput_ratio']:.2f}x, "
          f"memory ours/MONAI {summary['memory_ratio']:.2f}, Dice agreement {agreement:.4f}")
    name = "inference_quick.json" if args.quick else f"inference_{args.device.split(':')[0]}.json"
    if args.in_plane:
        name = name.replace(".json", f"_{args.in_plane}.json")
    out_path = REPO / "benchmarks" / "results" / name
    out_path.write_text(json.dumps(summary, indent=1))
    print(f"wrote {out_path.relative_to(REPO)}")


if __name__ == "__main__":
    main()
