"""The newcomer's journey, driven through the docked widgets as a person would.

Shared by ``tests/napari/test_journey.py`` (checks each step) and
``benchmarks/bench_journey.py`` (times each step and the longest event-loop stall).  Every
step waits for its background job by spinning the Qt event loop, records a
:class:`StepRecord` and, when a folder is given, a full-window screenshot.

Steps: open the bundled abdominal CT through the reader in the main job's window, segment it
with the starter model the Segment tab suggests for it (``upper-abdomen-ct-organs``, learned
from another subject's CT), paint the liver on three slices of a
new Labels layer and train a model on them in the Train tab (it adds the whole-volume mask),
correct three slices of the organ prediction (the voxels where it disagrees with the bundled
organ reference are repainted through napari's Labels API, as a brush would), mark them
reviewed, fine-tune (the job re-segments the scan and adds the result), evaluate against that
reference file, register and fuse a second scan, save the labels and reopen them, and make the
spleen from three clicks in the Interactive tab.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
from qtpy.QtWidgets import QApplication

import napari
from napari_medseg._napari import warm_up
from napari_medseg._napari.dock import open_dock
from napari_medseg._napari.launch import open_viewer
from napari_medseg._napari.responsiveness import StallMeter

REPO = Path(__file__).resolve().parents[2]
SAMPLES = REPO / "sample_volumes"
SCAN = SAMPLES / "ct_abdomen.nii.gz"
REFERENCE = SAMPLES / "ct_abdomen_upper_organs.nrrd"  # the organs in the starter's classes
SECOND_SCAN = SAMPLES / "mr_abdomen.nii.gz"
ORGANS = SAMPLES / "ct_abdomen_organs.nii.gz"
CORRECTED_SLICES = (6, 14, 22)
PAINTED_SLICES = (5, 15, 25)
LIVER = 5
SPLEEN = 1
CLICKS = 3
PLUGIN = "napari-medseg"


@dataclass
class StepRecord:
    """What one step took: wall time and the longest gap between 10 ms timer ticks."""

    name: str
    seconds: float
    longest_stall_ms: float
    background: bool
    screenshot: Path | None = None
    canvas_std: float = 0.0
    culprit: list[str] = field(default_factory=list)  # GUI-thread stack in the longest stall
    work_stall_ms: float = 0.0  # the longest stall while the job worked
    show_stall_ms: float = 0.0  # ... while its result was added to the viewer


@dataclass
class Journey:
    """One napari window and the docked MedSeg widgets, stepped through the journey."""

    shots: Path | None = None
    steps: int = 60
    timeout_s: float = 600.0
    viewer: napari.Viewer | None = None  # a new one (benchmark) or napari's fixture viewer
    where: bool = False  # sample the GUI thread's stack in stalls (benchmark)
    records: list[StepRecord] = field(default_factory=list)

    def __post_init__(self) -> None:
        if self.shots is not None:
            self.shots.mkdir(parents=True, exist_ok=True)
        self._owns_viewer = self.viewer is None
        self.viewer = open_viewer([SCAN], show=True, viewer=self.viewer)
        self.viewer.window.resize(1500, 950)
        self.image = self.viewer.layers[0]
        self.settle()
        self.viewer.reset_view()  # fit the scan to the canvas at this window size
        self.settle()

    # ---------------------------------------------------------------- plumbing
    def dock(self, title: str) -> Any:
        """The widget of the MedSeg tab ``title`` (the tab is raised, as a person clicks it)."""
        return open_dock(self.viewer, title).tab(title)

    def settle(self, rounds: int = 10) -> None:
        app = QApplication.instance()
        for _ in range(rounds):
            app.processEvents()
            time.sleep(0.005)

    def wait_until(self, done: Callable[[], bool], what: str) -> None:
        app = QApplication.instance()
        deadline = time.perf_counter() + self.timeout_s
        while not done():
            if time.perf_counter() > deadline:
                msg = f"journey step timed out after {self.timeout_s:.0f} s: {what}"
                raise TimeoutError(msg)
            app.processEvents()
            time.sleep(0.002)

    def step(self, name: str, action: Callable[[], Callable[[], bool] | None],
             *, background: bool, runner: Any = None) -> StepRecord:
        """Run ``action``; if it returns a predicate, wait for it (the job's end).

        With the job's ``runner``, stalls while the job works and while its result is added
        to the viewer (napari's layer creation) are recorded apart.
        """
        meter = StallMeter(where=self.where)
        meter.start()
        start = time.perf_counter()
        finished = action()
        if finished is not None:
            self.wait_until(finished, name)
        seconds = time.perf_counter() - start
        meter.stop()
        if runner is not None and runner.showing_since is not None:
            meter.split_at(runner.showing_since)
        self.settle()
        record = StepRecord(name=name, seconds=seconds, longest_stall_ms=meter.longest_ms,
                            background=background, culprit=meter.culprit,
                            work_stall_ms=meter.work_ms, show_stall_ms=meter.show_ms)
        canvas = self.viewer.screenshot(canvas_only=True, flash=False)
        record.canvas_std = float(canvas[..., :3].mean(axis=-1).std())
        if self.shots is not None:
            record.screenshot = self.shots / f"{len(self.records) + 1:02d}-{name}.png"
            self.viewer.screenshot(str(record.screenshot), canvas_only=False, flash=False)
        self.records.append(record)
        return record

    def close(self) -> None:
        if self._owns_viewer:  # napari's fixture closes its own viewers
            self.viewer.close()

    # ---------------------------------------------------------------- the journey
    def open_scan(self) -> StepRecord:
        # a person looks at the scan a few seconds before pressing Segment: the widgets' import
        # warm-up (warm_up.warm_up, started when they were docked) finishes then;
        # this step waits for it, and stalls it causes from here on are counted here
        return self.step("open", lambda: warm_up.finished.is_set, background=False)

    def segment(self) -> StepRecord:
        widget = self.dock("Segment")
        widget.reset_choices()
        widget.device.value = "cpu"
        self.suggested_model = widget.model.value

        def run() -> Callable[[], bool]:
            widget.segment()
            return lambda: not widget.runner.running

        record = self.step("segment", run, background=True, runner=widget.runner)
        self.prediction = self.viewer.layers[-1]
        return record

    def correct(self) -> StepRecord:
        self.trained.visible = False
        self.prediction.visible = True
        widget = self.dock("Correct and fine-tune")
        widget.reset_choices()
        widget.labels.value = self.prediction
        widget.image.value = self.image
        widget.model.value = self.suggested_model
        widget.device.value = "cpu"
        widget.steps.value = self.steps
        from napari_medseg.io import read_label_map

        self.reference = read_label_map(REFERENCE)

        def paint() -> None:
            widget.corrections.track()
            layer = self.prediction
            layer.selected_label = 2
            for z in CORRECTED_SLICES:
                self.viewer.dims.set_point(0, layer.data_to_world((z, 0, 0))[0])
                wrong = np.nonzero(np.asarray(layer.data[z]) != self.reference.array[z])
                values = self.reference.array[z][wrong]
                layer.data_setitem((np.full(wrong[0].shape, z), *wrong), values)
                widget.corrections.mark_current_slice()

        return self.step("correct", paint, background=False)

    def train(self) -> StepRecord:
        """Paint the liver on three slices of a new Labels layer and train on them."""
        from napari_medseg.io import read_label_map

        organs = read_label_map(ORGANS).array
        self.liver = organs == LIVER
        # as napari's New labels button makes it on the scan: its grid and units (mm)
        layer = self.viewer.add_labels(np.zeros(self.liver.shape, np.uint8), name="liver",
                                       scale=self.image.scale, translate=self.image.translate,
                                       affine=self.image.affine.affine_matrix,
                                       units=self.image.units)
        for z in PAINTED_SLICES:
            idx = np.nonzero(self.liver[z])
            layer.data_setitem((np.full(idx[0].shape, z), *idx), 1)
        self.painted = layer
        widget = self.dock("Train")
        widget.reset_choices()
        widget.images.value = [self.image]
        widget.labels.value = layer
        widget.device.value = "cpu"
        widget.learn_controls["steps"].value = 2 * self.steps

        def run() -> Callable[[], bool]:
            widget.run()
            return lambda: not widget.runner.running

        self.prediction.visible = False  # the liver alone over the scan, as a person looks
        record = self.step("train", run, background=True, runner=widget.runner)
        self.trained = self.viewer.layers[-1]
        self.trained.opacity = 0.6
        layer.visible = False
        return record

    def finetune(self) -> StepRecord:
        widget = self.dock("Correct and fine-tune")
        before = len(self.viewer.layers)

        def run() -> Callable[[], bool]:
            widget.finetune()
            return lambda: not widget.runner.running

        record = self.step("finetune", run, background=True, runner=widget.runner)
        self.resegmented = (self.viewer.layers[-1] if len(self.viewer.layers) > before
                            else self.prediction)
        return record

    def evaluate(self) -> StepRecord:
        self.reference_layer = self.viewer.open(str(REFERENCE), plugin=PLUGIN)[0]
        self.reference_layer.visible = False
        widget = self.dock("Evaluate")
        widget.reset_choices()
        widget.pred.value = self.resegmented
        widget.truth.value = self.reference_layer

        def run() -> Callable[[], bool]:
            widget.run()
            return lambda: not widget.runner.running and widget.evaluation is not None

        return self.step("evaluate", run, background=True, runner=widget.runner)

    def fuse(self) -> StepRecord:
        self.second = self.viewer.open(str(SECOND_SCAN), plugin=PLUGIN)[0]
        widget = self.dock("Fuse")
        widget.reset_choices()
        widget.fixed.value = self.image
        widget.moving.value = self.second
        widget.kind.value = "rigid"

        def run() -> Callable[[], bool]:
            widget.run()
            return lambda: not widget.runner.running

        record = self.step("fuse", run, background=True, runner=widget.runner)
        self.second.visible = False
        return record

    def save_and_reopen(self, folder: Path) -> StepRecord:
        self.saved = folder / "ct_abdomen_corrected.nrrd"

        def save() -> None:
            napari.save_layers(str(self.saved), [self.resegmented], plugin=PLUGIN)
            self.reopened = self.viewer.open(str(self.saved), plugin=PLUGIN)[0]

        self.dock("Segment")
        return self.step("save-reopen", save, background=False)

    def interactive(self) -> StepRecord:
        """Make the spleen from a few clicks in the Interactive tab and accept it (Enter)."""
        from scipy import ndimage

        from napari_medseg.io import read_label_map

        for layer in self.viewer.layers:
            layer.visible = layer is self.image
        self.viewer.window.resize(1280, 800)  # the user guide's pictures are at 1280x800
        self.settle()
        self.viewer.reset_view()
        self.spleen = read_label_map(ORGANS).array == SPLEEN
        widget = self.dock("Interactive")
        widget.reset_choices()
        widget.image.value = self.image
        widget.name.value = "spleen"
        widget.new_labels()
        widget.start()
        self.clicks: list[tuple[int, ...]] = []

        def idle() -> bool:
            return not widget.busy

        def click_and_accept() -> Callable[[], bool]:
            for _ in range(CLICKS):  # the click protocol: the deepest voxel of the error
                self.wait_until(idle, "interactive click")
                got = np.asarray(widget.layers.preview.data) > 0
                error = got != self.spleen
                dist = ndimage.distance_transform_edt(error)
                at = tuple(int(v) for v in np.unravel_index(int(np.argmax(dist)), error.shape))
                self.clicks.append(at)
                self.viewer.dims.set_point(0, self.image.data_to_world(at)[0])
                widget.click(self.image.data_to_world(at), positive=bool(self.spleen[at]))
            self.wait_until(idle, "interactive click")
            self.clicked = np.asarray(widget.layers.preview.data) > 0
            widget.accept()
            return lambda: idle() and len(widget.writer.written) == 1

        record = self.step("interactive", click_and_accept, background=True)
        self.objects = widget.target.value
        return record

    def run_all(self, folder: Path) -> list[StepRecord]:
        self.open_scan()
        self.segment()
        self.train()
        self.correct()
        self.finetune()
        self.evaluate()
        self.fuse()
        self.save_and_reopen(folder)
        self.interactive()
        return self.records
