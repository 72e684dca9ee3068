"""Longest Qt event-loop stall while the Segment widget runs a 3D model (goal: < 100 ms).

Opens a shown napari viewer (run under ``xvfb-run -a`` without a screen), loads a real CT,
presses Segment with a 3D U-Net checkpoint and records the gaps between 10 ms timer ticks
until the run ends, then separately while the result layers are added.

    xvfb-run -a python benchmarks/bench_segment_gui.py [--quick]
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
from tests.data_root import SHARED_DATA  # noqa: E402 - the repository root must be importable first

CT = SHARED_DATA / "ct_head" / "head_ct.nii.gz"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="the small abdominal CT sample")
    parser.add_argument("--file", type=Path, default=CT)
    args = parser.parse_args()

    import torch
    from qtpy.QtWidgets import QApplication

    import napari
    from napari_medseg._napari.responsiveness import StallMeter
    from napari_medseg._napari.widgets.segment_widget import FROM_FILE, SegmentWidget
    from napari_medseg.models import (
        CheckpointSpec,
        IntensityContract,
        create_model,
        save_checkpoint,
    )

    torch.manual_seed(0)
    features = (8, 16, 32, 64)
    model = create_model("unet", spatial_dims=3, in_channels=1, out_channels=8,
                         features=features)
    spec = CheckpointSpec(
        architecture="unet", spatial_dims=3, in_channels=1, out_channels=8,
        options={"features": list(features)}, patch_size=(96, 96, 96),
        intensity=[IntensityContract(modality="CT", normalization="ct_window",
                                     window=(-160, 240))])
    with tempfile.TemporaryDirectory() as tmp:
        checkpoint = save_checkpoint(model, spec, Path(tmp) / "bench.safetensors")
        viewer = napari.Viewer(show=True)
        if args.quick:
            image = viewer.open_sample("napari-medseg", "ct_abdomen")[0]
        else:
            image = viewer.open(str(args.file), plugin="napari-medseg")[0]
        widget = SegmentWidget(viewer)
        viewer.window.add_dock_widget(widget)
        widget.images.value = [image]
        widget.model.value = FROM_FILE
        widget.model_file.value = checkpoint
        widget.device.value = "cpu"
        app = QApplication.instance()
        for _ in range(20):
            app.processEvents()
        run_meter, add_meter = StallMeter(), StallMeter()
        run_meter.start()
        start = time.perf_counter()
        widget.segment()
        while widget.progress.value < 100 and widget.runner.running:
            app.processEvents()
            time.sleep(0.002)
            if widget.status.value.startswith("done"):
                break
        run_meter.stop()
        seconds = time.perf_counter() - start
        add_meter.start()
        while widget.runner.running:
            app.processEvents()
            time.sleep(0.002)
        for _ in range(50):
            app.processEvents()
            time.sleep(0.002)
        add_meter.stop()
        status = widget.status.value
        viewer.close()
    summary = {
        "file": "ct_abdomen sample" if args.quick else args.file.name,
        "shape": list(image.data.shape),
        "run_seconds": seconds,
        "longest_stall_ms_during_run": run_meter.longest_ms,
        "ticks_during_run": len(run_meter.gaps),
        "longest_stall_ms_adding_layers": add_meter.longest_ms,
        "status": status,
    }
    print(json.dumps(summary, indent=1))
    name = "segment_gui_quick.json" if args.quick else "segment_gui_cpu.json"
    (REPO / "benchmarks" / "results" / name).write_text(json.dumps(summary, indent=1))


if __name__ == "__main__":
    main()
