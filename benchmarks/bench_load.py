"""Memory over a long session: 20 segmentations in a row in one shown napari viewer.

The Segment widget (the same path a person clicks) segments the real scans of
``sample_volumes/`` one after another; after each run the process's resident memory (RSS)
is printed.  ``--mode remove`` deletes each result layer as a person tidying up would;
``--mode keep`` keeps them all (memory then grows by the layers kept, which is reported
next to it).  What matters is the growth from run 5 (caches warm) to the last run.

    xvfb-run -a python benchmarks/bench_load.py [--runs 20] [--mode remove|keep|both]
        [--model tiny|head-ct-tissue|PATH] [--json out.json]
"""

from __future__ import annotations

import argparse
import gc
import json
import tempfile
import time
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
SCANS = ("ct_abdomen.nii.gz", "mr_abdomen.nii.gz", "mr_brain_lesion.nrrd")


def _tiny_checkpoint(folder: Path) -> Path:
    """A seeded small 3D U-Net for CT (3 classes), like the test suite's."""
    import torch

    from napari_medseg.models import (
        CheckpointSpec,
        IntensityContract,
        create_model,
        save_checkpoint,
    )

    torch.manual_seed(0)
    model = create_model("unet", spatial_dims=3, in_channels=1, out_channels=3,
                         features=(4, 8, 16))
    spec = CheckpointSpec(
        architecture="unet", spatial_dims=3, in_channels=1, out_channels=3,
        options={"features": [4, 8, 16]}, patch_size=(32, 64, 64),
        class_names={0: "background", 1: "a", 2: "b"},
        intensity=[IntensityContract(modality="CT", normalization="ct_window",
                                     window=(-160, 240))])
    return save_checkpoint(model, spec, folder / "tiny.safetensors")


def _rss_mib() -> float:
    import psutil

    return psutil.Process().memory_info().rss / 1024**2


def _settle(app: Any, rounds: int = 30) -> None:
    for _ in range(rounds):
        app.processEvents()
        time.sleep(0.002)


def measure(mode: str, runs: int, model: str, viewer: Any, app: Any) -> dict[str, Any]:
    """Segment ``runs`` times; RSS after each (MiB) and the bytes of result layers kept."""
    import numpy as np

    from napari_medseg._napari.widgets.segment_widget import FROM_FILE, SegmentWidget

    layers = [viewer.open(str(REPO / "sample_volumes" / name), plugin="napari-medseg")[0]
              for name in SCANS]
    widget = SegmentWidget(viewer)
    viewer.window.add_dock_widget(widget, name=f"Segment ({mode})")
    if Path(model).suffix == ".safetensors":
        widget.model.value = FROM_FILE
        widget.model_file.value = Path(model)
    else:
        widget.model.value = model
    widget.device.value = "cpu"
    _settle(app)
    rss, kept_mib, seconds = [], 0.0, []
    for run in range(runs):
        widget.images.value = [layers[run % len(layers)]]
        before = set(map(id, viewer.layers))
        start = time.perf_counter()
        widget.segment()
        while widget.runner.running:
            app.processEvents()
            time.sleep(0.005)
        _settle(app)
        seconds.append(time.perf_counter() - start)
        added = [layer for layer in viewer.layers if id(layer) not in before]
        if not added:
            msg = f"run {run + 1} added no layer: {widget.status.value}"
            raise RuntimeError(msg)
        if mode == "remove":
            for layer in added:
                viewer.layers.remove(layer)
        else:
            kept_mib += sum(np.asarray(layer.data).nbytes for layer in added) / 1024**2
        del added
        gc.collect()
        _settle(app)
        rss.append(_rss_mib())
        print(f"  {mode} run {run + 1:2d}: RSS {rss[-1]:7.1f} MiB  ({seconds[-1]:.1f} s, "
              f"{len(viewer.layers)} layers)", flush=True)
    viewer.window.remove_dock_widget(widget)
    for layer in layers:
        viewer.layers.remove(layer)
    first = min(4, runs - 1)
    return {"mode": mode, "runs": runs, "rss_mib": [round(r, 1) for r in rss],
            "growth_run5_to_last_mib": round(rss[-1] - rss[first], 1),
            "kept_layers_mib": round(kept_mib, 1), "seconds_per_run": round(
                float(np.median(seconds)), 2)}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=20)
    parser.add_argument("--mode", choices=("remove", "keep", "both"), default="both")
    parser.add_argument("--model", default="tiny",
                        help="'tiny' (a small 3D U-Net), a starter model name, or a checkpoint")
    parser.add_argument("--json", type=Path, help="write the measurements here")
    args = parser.parse_args()

    from qtpy.QtWidgets import QApplication

    import napari

    with tempfile.TemporaryDirectory() as tmp:
        model = str(_tiny_checkpoint(Path(tmp))) if args.model == "tiny" else args.model
        viewer = napari.Viewer(show=True)
        app = QApplication.instance()
        print(f"start: RSS {_rss_mib():.1f} MiB; model {Path(model).name}")
        modes = ("remove", "keep") if args.mode == "both" else (args.mode,)
        results = [measure(mode, args.runs, model, viewer, app) for mode in modes]
        viewer.close()
    for r in results:
        print(f"{r['mode']}: RSS run 5 -> {r['runs']}: {r['rss_mib'][min(4, r['runs'] - 1)]} -> "
              f"{r['rss_mib'][-1]} MiB (growth {r['growth_run5_to_last_mib']} MiB; result "
              f"layers kept {r['kept_layers_mib']} MiB; {r['seconds_per_run']} s per run)")
    if args.json:
        args.json.write_text(json.dumps(results, indent=1))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
