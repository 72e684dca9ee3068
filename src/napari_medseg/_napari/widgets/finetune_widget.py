"""The Correct / Fine-tune dock widget.

Bind it to a prediction Labels layer and its scan.  Correct with napari's Labels tools (the
:class:`CorrectionTracker` records the edited voxels), mark slices reviewed, press Fine-tune:
the core :class:`~napari_medseg.training.Trainer` learns from the labeled voxels only, in the
background, with a live loss curve.  The result is saved as a new checkpoint version (the
Segment widget lists it); Re-segment runs it and shows Dice/IoU before and after on the
labeled voxels.  Cancel keeps the best weights so far.

The model defaults to the one that made the chosen labels (Segment records it); model, steps,
learning rate, encoder freezing and device are remembered between sessions.  Ctrl+Shift+R
marks the current slice reviewed, Ctrl+Shift+F fine-tunes, Ctrl+Shift+X cancels, also while
the canvas has focus (painting).
"""

from __future__ import annotations

import os
from collections.abc import Generator
from pathlib import Path
from typing import Any

import numpy as np
from magicgui.widgets import (
    CheckBox,
    ComboBox,
    Container,
    FloatSpinBox,
    PushButton,
    SpinBox,
    create_widget,
)
from qtpy.QtCore import QPointF, Qt, QTimer
from qtpy.QtGui import QColor, QPainter, QPen, QPolygonF
from qtpy.QtWidgets import QVBoxLayout, QWidget

import napari
from napari_medseg._napari import shortcuts
from napari_medseg._napari.corrections import CorrectionTracker
from napari_medseg._napari.job_panel import JobPanel
from napari_medseg._napari.jobs import gui_friendly_threads
from napari_medseg._napari.layers import (
    MODALITY_KEY,
    SOURCE_KEY,
    geometry_from_layer_meta,
    label_layer_data,
    layer_meta,
    scan_from_layer,
    unique_layer_name,
)
from napari_medseg._napari.notify import report, warn
from napari_medseg._napari.sample_data import sample_dir
from napari_medseg._napari.settings import WidgetSettings
from napari_medseg._napari.widgets.segment_widget import MODEL_KEY, device_choices, model_for
from napari_medseg.errors import MedsegError
from napari_medseg.events import Event, Progress
from napari_medseg.inference import Predictor, list_checkpoints, user_models_dir
from napari_medseg.scan import LabelMap, strip_image_suffix
from napari_medseg.training.interpolation import interpolate_between_slices
from napari_medseg.training.journal import SUFFIX as JOURNAL_SUFFIX
from napari_medseg.training.journal import CorrectionJournal

#: How often edits changed by undo/redo are journaled (ms); paint events are journaled at once.
SYNC_INTERVAL_MS = 3000


def corrections_dir() -> Path:
    """Where journals go when the scan's own folder cannot be written."""
    return user_models_dir().parent / "corrections"


def journal_path(scan_source: str | None, labels_name: str) -> Path:
    """``<scan folder>/<scan>.<labels>.corrections.jsonl``; in :func:`corrections_dir` when
    that folder cannot be written or is the bundled samples folder (never the package)."""
    safe = "".join(c if c.isalnum() or c in "-_" else "_" for c in labels_name)
    if scan_source:
        source = Path(scan_source)
        folder = source.parent if source.is_file() else source
        if not os.access(folder, os.W_OK) or folder.resolve() == sample_dir().resolve():
            folder = corrections_dir()
        return folder / f"{strip_image_suffix(source.name)}.{safe}{JOURNAL_SUFFIX}"
    return corrections_dir() / f"{safe}{JOURNAL_SUFFIX}"

FROM_FILE = "checkpoint file..."

#: The controls whose values are remembered between sessions (settings keys).
REMEMBERED = ("model", "steps", "learning_rate", "freeze", "device")


class LossCurve(QWidget):
    """A small live plot of the training loss (and validation Dice, dashed)."""

    def __init__(self) -> None:
        super().__init__()
        self.loss: list[float] = []
        self.dice: list[tuple[int, float]] = []
        self.setMinimumHeight(80)

    def clear(self) -> None:
        self.loss.clear()
        self.dice.clear()
        self.update()

    def add(self, step: int, metrics: dict[str, float]) -> None:
        if "loss" in metrics:
            self.loss.append(float(metrics["loss"]))
        if "val_dice" in metrics and np.isfinite(metrics["val_dice"]):
            self.dice.append((step, float(metrics["val_dice"])))
        self.update()

    def paintEvent(self, _event: Any) -> None:
        painter = QPainter(self)
        painter.setRenderHint(QPainter.Antialiasing)
        w, h = self.width(), self.height()
        painter.setPen(QPen(QColor("#555555")))
        painter.drawRect(0, 0, w - 1, h - 1)
        if len(self.loss) > 1:
            top = max(self.loss) or 1.0
            n = len(self.loss)
            points = [QPointF(i / (n - 1) * (w - 4) + 2, h - 2 - v / top * (h - 4))
                      for i, v in enumerate(self.loss)]
            painter.setPen(QPen(QColor("#f0a030"), 1.5))
            painter.drawPolyline(QPolygonF(points))
            if self.dice:
                pen = QPen(QColor("#40c0f0"), 1.5)
                pen.setStyle(Qt.DashLine)
                painter.setPen(pen)
                dice_points = [QPointF(min(s, n - 1) / (n - 1) * (w - 4) + 2,
                                       h - 2 - d * (h - 4)) for s, d in self.dice]
                if len(dice_points) > 1:
                    painter.drawPolyline(QPolygonF(dice_points))
        painter.end()


class FinetuneWidget(QWidget):
    """Record corrections on a Labels layer and fine-tune a model on them."""

    def __init__(self, viewer: napari.viewer.Viewer) -> None:
        super().__init__()
        self.viewer = viewer
        self.tracker: CorrectionTracker | None = None
        self.trainer: Any = None
        self.result: Any = None
        self.new_checkpoint: Path | None = None
        self.comparison: Any = None

        self.labels = create_widget(annotation=napari.layers.Labels, label="labels")
        self.labels.tooltip = "The prediction you correct with napari's Labels tools"
        self.image = create_widget(annotation=napari.layers.Image, label="scan")
        self.image.tooltip = "The scan the labels belong to"
        self.model = ComboBox(label="model", choices=self._model_choices,
                              tooltip="The model to fine-tune (usually the one that segmented)")
        self.steps = SpinBox(label="steps", value=100, min=1, max=100_000,
                             tooltip="Optimiser steps (early stopping may end sooner)")
        self.learning_rate = FloatSpinBox(
            label="learning rate", value=1e-3, min=1e-6, max=1.0, step=1e-4,
            tooltip="Peak AdamW learning rate (warm-up, then cosine decay); lower it if the "
                    "loss jumps around")
        self.learning_rate.native.setDecimals(6)
        self.freeze = CheckBox(text="freeze encoder",
                               tooltip="Train the decoder only (faster; keeps what the "
                                       "encoder learned)")
        self.device = ComboBox(label="device", choices=device_choices(),
                               tooltip="auto = GPU when there is one, else CPU")
        self.form = Container(widgets=[self.labels, self.image, self.model, self.steps,
                                       self.learning_rate, self.freeze, self.device])
        self.track_button = PushButton(text="Track corrections",
                                       tooltip="Start recording edits on the labels layer")
        self.review_button = PushButton(
            text=shortcuts.hint("Mark slice reviewed", shortcuts.MARK_REVIEWED),
            tooltip=shortcuts.hint("The current slice is correct as shown",
                                   shortcuts.MARK_REVIEWED))
        self.review_all_button = PushButton(text="Mark all reviewed",
                                            tooltip="Every voxel of the labels is correct")
        self.resegment_button = PushButton(text="Re-segment", enabled=False,
                                           tooltip="Segment with the fine-tuned model")
        self.panel = JobPanel("Fine-tune", run_tooltip="Train on the labeled voxels (background)",
                              extra_buttons=[self.resegment_button],
                              shortcut=shortcuts.FINETUNE,
                              idle_text="Correct the labels (or mark slices reviewed), then "
                                        "press Fine-tune")
        self.runner = self.panel.runner
        self.finetune_button, self.cancel_button = self.panel.run_button, self.panel.cancel_button
        self.progress, self.status = self.panel.progress, self.panel.status
        self.interp_from = SpinBox(label="from slice", value=0, min=0, max=100_000,
                                   tooltip="First corrected slice (array axis 0)")
        self.interp_to = SpinBox(label="to slice", value=0, min=0, max=100_000,
                                 tooltip="Last corrected slice (array axis 0)")
        self.interp_button = PushButton(text="Interpolate",
                                        tooltip="Fill the slices between two corrected slices "
                                                "by shape-based interpolation (undoable)")
        self.curve = LossCurve()
        self._sync_timer = QTimer(self)
        self._sync_timer.setInterval(SYNC_INTERVAL_MS)
        self._sync_timer.timeout.connect(self._sync)
        row1 = Container(widgets=[self.track_button, self.review_all_button],
                         layout="horizontal", labels=False)
        row_review = Container(widgets=[self.review_button], labels=False)
        row_interp = Container(widgets=[self.interp_from, self.interp_to, self.interp_button],
                               layout="horizontal")
        layout = QVBoxLayout(self)
        for w in (self.form.native, row1.native, row_review.native, row_interp.native,
                  self.curve, self.panel.native):
            layout.addWidget(w)
        layout.addStretch(1)
        self.track_button.clicked.connect(self.track)
        self.review_button.clicked.connect(self.mark_current_slice)
        self.review_all_button.clicked.connect(self.mark_all)
        self.finetune_button.clicked.connect(self.finetune)
        self.resegment_button.clicked.connect(self.resegment)
        self.interp_button.clicked.connect(self.interpolate)
        self.settings = WidgetSettings("finetune")
        self.settings.bind({name: getattr(self, name) for name in REMEMBERED})
        self.labels.changed.connect(self._default_model)
        self.image.changed.connect(self._default_model)
        self._default_model()
        shortcuts.bind(viewer, shortcuts.FINETUNE, self.finetune)
        shortcuts.bind(viewer, shortcuts.MARK_REVIEWED, self.mark_current_slice)
        shortcuts.bind(viewer, shortcuts.CANCEL, self.panel.cancel, every=True)

    def reset_choices(self, *_: Any) -> None:
        """Refresh layer and model lists (napari calls this when layers change)."""
        self.form.reset_choices()

    def _model_choices(self, _widget: Any = None) -> list[tuple[str, str]]:
        return [(f"{e.name}{'' if e.builtin else ' (yours)'}", str(e.path))
                for e in list_checkpoints()]

    def _default_model(self) -> None:
        """The model that made the chosen labels (Segment records it), else one trained for
        the scan's modality (the chosen one stays while it fits)."""
        labels, image = self.labels.value, self.image.value
        if labels is not None and labels.metadata.get(MODEL_KEY) in self.model.choices:
            self.model.value = labels.metadata[MODEL_KEY]
        elif image is not None:
            source = model_for(image.metadata.get(MODALITY_KEY, "unknown"),
                               current=str(self.model.value or ""))
            if source in self.model.choices:
                self.model.value = source

    # ---------------------------------------------------------------- corrections
    def track(self) -> CorrectionTracker | None:
        layer = self.labels.value
        if layer is None:
            warn("choose the labels layer to correct")
            return None
        if self.tracker is None or self.tracker.layer is not layer:
            if self.tracker is not None:
                self.tracker.disconnect()
            self.tracker = CorrectionTracker(layer, on_change=self._show_counts)
            self._attach_journal(self.tracker)
            self.tracker.show_overlay(self.viewer)
            self._sync_timer.start()
        self._show_counts()
        return self.tracker

    def _attach_journal(self, tracker: CorrectionTracker) -> None:
        image = self.image.value
        source = image.metadata.get(SOURCE_KEY) if image is not None else None
        path = journal_path(source, tracker.layer.name)
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            journal = CorrectionJournal(path, tuple(tracker.layer.data.shape),
                                        scan=str(source or ""))
            state = tracker.attach_journal(journal)
        except (MedsegError, OSError) as exc:
            report(exc, context="corrections journal (edits are not autosaved)")
            return
        self.journal_file = path
        if state is not None:
            warn(f"restored corrections from {path}")

    def _sync(self) -> None:
        if self.tracker is not None:
            self.tracker.sync()

    def interpolate(self) -> None:
        """Shape-based interpolation between two slices along the first array axis."""
        tracker = self.tracker or self.track()
        if tracker is None:
            return
        layer = tracker.layer
        try:
            data = np.asarray(layer.data)
            filled = interpolate_between_slices(data, int(self.interp_from.value),
                                                int(self.interp_to.value), axis=0)
        except ValueError as exc:
            report(exc)
            return
        changed = np.nonzero(filled != data)
        if changed[0].size:
            layer.data_setitem(changed, filled[changed])  # undoable, tracked, journaled
        self.status.value = f"interpolated {changed[0].size} voxel(s); {tracker.summary()}"

    def _show_counts(self) -> None:
        if self.tracker is not None:
            self.status.value = self.tracker.summary()

    def mark_current_slice(self) -> None:
        tracker = self.tracker or self.track()
        if tracker is None:
            return
        layer = tracker.layer
        if layer.ndim != 3:
            tracker.mark_all_reviewed()
            return
        axis = self.viewer.dims.not_displayed[0] if self.viewer.dims.not_displayed else 0
        world = self.viewer.dims.point
        index = int(np.round(layer.world_to_data(world)[axis]))
        index = int(np.clip(index, 0, layer.data.shape[axis] - 1))
        tracker.mark_slice_reviewed(axis, index)

    def mark_all(self) -> None:
        tracker = self.tracker or self.track()
        if tracker is not None:
            tracker.mark_all_reviewed()

    # ---------------------------------------------------------------- fine-tune
    def finetune(self) -> None:
        from napari_medseg.training import LabeledVolume, TrainOptions

        if self.runner.running:
            warn("fine-tuning is already running; wait for it or press Cancel")
            return
        tracker = self.tracker or self.track()
        image = self.image.value
        if tracker is None or image is None:
            warn("choose the labels layer and its scan")
            return
        try:
            scan = scan_from_layer(image)
            geometry = geometry_from_layer_meta(layer_meta(tracker.layer), tracker.layer.ndim)
            labels = LabelMap(array=np.array(tracker.layer.data, copy=True), geometry=geometry)
            volume = LabeledVolume(scans=[scan], labels=labels, labeled=tracker.reviewed.copy(),
                                   edited=tracker.edited.copy())
            if not volume.labeled_mask().any():
                msg = ("no labeled voxel yet: correct some voxels or mark slices reviewed "
                       "before fine-tuning")
                raise MedsegError(msg)
            source = str(self.model.value or "")
            if not source:
                msg = "choose the model to fine-tune"
                raise MedsegError(msg)
            options = TrainOptions(steps=int(self.steps.value),
                                   learning_rate=float(self.learning_rate.value),
                                   freeze_encoder=bool(self.freeze.value),
                                   device=self.device.value)
        except (MedsegError, ValueError) as exc:
            report(exc)
            return
        self.source, self.volume, self.scan_name = source, volume, image.name
        self.trainer = None
        self.curve.clear()
        self.resegment_button.enabled = False
        model = Path(source).name.removesuffix(".safetensors")
        self.panel.start(self._job(source, volume, options), on_done=self._on_done,
                         context="fine-tune",
                         text=f"Fine-tuning {model} on {tracker.layer.name}",
                         on_progress=self._on_progress, on_finished=self._on_finished)

    def _job(self, source: str, volume: Any, options: Any) -> Generator[Event, None, Any]:
        """Load the model and its training data, fine-tune, save the new version: all in the
        worker (loading and saving took 0.25 s of the GUI thread when done there)."""
        from napari_medseg.training import Trainer, save_new_version

        yield Progress(stage="fine-tune", done=0, total=options.steps,
                       message="loading the model and the labeled voxels")
        with gui_friendly_threads():
            self.trainer = Trainer.from_checkpoint(source, [volume], options)
            result = yield from self.trainer.job()
        name = Path(source).name.removesuffix(".safetensors")
        return result, save_new_version(result, name=f"{name}-ft")

    def _on_progress(self, event: Progress) -> None:
        self.progress.value = int(100 * event.fraction)
        self.curve.add(event.done, event.metrics)
        loss = event.metrics.get("loss")
        detail = f"step {event.done}/{event.total}" + (
            f", loss {loss:.3f}" if loss is not None else "")
        self.status.value = self.panel.running_text(detail, event.eta_s)

    def _save(self, result: Any) -> None:
        from napari_medseg.training import save_new_version

        name = Path(self.source).name.removesuffix(".safetensors")
        self._saved(result, save_new_version(result, name=f"{name}-ft"))

    def _saved(self, result: Any, path: Path) -> None:
        """A new version is on disk: offer it everywhere a model is chosen."""
        self.result = result
        self.new_checkpoint = path
        self.resegment_button.enabled = True
        for dock in self.viewer.window.dock_widgets.values():
            refresh = getattr(dock, "refresh_models", None)
            if refresh is not None:
                refresh()
        self.model.reset_choices()

    def _on_done(self, output: tuple[Any, Path]) -> None:
        result, path = output
        self._saved(result, path)
        name = self.new_checkpoint.name  # type: ignore[union-attr]
        if result.best_step == 0 and result.steps_done > 0:
            self.panel.done(
                f"saved {name} with the starting weights: the held-back labeled voxels did "
                f"not improve in {result.steps_done} steps (correct more slices, or more steps)")
        else:
            self.panel.done(f"saved {name} (best at step {result.best_step}); press Re-segment")

    def cancel(self) -> None:
        self.panel.cancel()

    def _on_finished(self) -> None:
        self.resegment_button.enabled = self.new_checkpoint is not None
        if self.runner.cancelled and self.trainer is not None:
            result = self.trainer.last_good()
            if result.steps_done > 0:
                try:
                    self._save(result)
                except MedsegError as exc:
                    report(exc)
                    return
                self.status.value = (f"cancelled after {result.steps_done} step(s); best "
                                     f"weights kept as {self.new_checkpoint.name}")  # type: ignore[union-attr]
            else:
                self.status.value = "cancelled before the first step; nothing saved"

    # ---------------------------------------------------------------- re-segment
    def resegment(self) -> None:
        from napari_medseg.training.comparison import before_after

        if self.result is None or self.runner.running:
            return
        result, source, device = self.result, self.source, self.device.value

        def job() -> Generator[Event, None, Any]:
            yield Progress(stage="re-segment", done=0, total=2, message="segmenting")
            with gui_friendly_threads():
                # built here, not in the GUI thread: loading the parent checkpoint took 0.17 s
                # (a missing or damaged parent is reported by the panel like any job error)
                after = Predictor(result.model, result.spec, device=device)
                before = Predictor.load(source, device=device)
                prediction = after.predict(self.volume.scans)
                yield Progress(stage="re-segment", done=1, total=2, message="scoring")
                comparison = before_after(before, after, self.volume)
            return prediction, comparison

        self.resegment_button.enabled = False
        name = Path(self.new_checkpoint or "fine-tuned").name.removesuffix(".safetensors")
        self.panel.start(job(), on_done=self._add_resegmented, context="re-segment",
                         text=f"Re-segmenting {self.scan_name} with {name}",
                         on_finished=lambda: setattr(self.resegment_button, "enabled", True))

    def _add_resegmented(self, output: tuple[Any, Any]) -> None:
        prediction, comparison = output
        self.comparison = comparison
        data, kwargs, _ = label_layer_data(prediction.labels)
        name = self.new_checkpoint.name.removesuffix(".safetensors")  # type: ignore[union-attr]
        kwargs["name"] = unique_layer_name(self.viewer, f"{self.scan_name} [{name}]")
        kwargs["metadata"][MODEL_KEY] = str(self.new_checkpoint)
        self.panel.in_turns(lambda: self.viewer.add_labels(data, **kwargs),
                            lambda: self.panel.done(comparison.summary()))
