"""The Correct tab: correct a prediction with napari's Labels tools, then fine-tune its model.

Bind it to a prediction Labels layer and its scan and press *Track corrections*: the
:class:`CorrectionTracker` records the voxels a person edits and the slices they mark reviewed
(journaled as they happen, so a crash loses nothing; the journal's place is the core rule
:func:`~napari_medseg.training.journal.journal_path_for`).  An outline overlay shows the
labeled region without hiding what was painted.  *Fine-tune* runs the same core job as the
Train tab (:func:`~napari_medseg.training.job.train_job`) from the model that made the labels:
it holds back a corrected slice, keeps the model when the fine-tune does not beat it there
(nothing is saved: a new version never equals its parent), and otherwise saves
``<model>-ft-vN`` and adds the re-segmented scan as a new layer - one prediction, made by the
job.  Cancel keeps the best validated weights when they beat the parent.

The model defaults to the one that made the chosen labels (Segment records it); model,
budget and device are remembered between sessions.  Ctrl+Shift+R marks the current slice
reviewed, Ctrl+Shift+F fine-tunes, Ctrl+Shift+X cancels, also while painting.
"""

from __future__ import annotations

from collections.abc import Generator
from pathlib import Path
from typing import Any

import numpy as np
from magicgui.widgets import ComboBox, Container, PushButton, SpinBox

import napari
from napari_medseg._napari import shortcuts
from napari_medseg._napari.corrections import CorrectionTracker
from napari_medseg._napari.job_widget import JobStart, JobWidget
from napari_medseg._napari.jobs import gui_friendly_threads
from napari_medseg._napari.layers import (
    MODALITY_KEY,
    MODEL_KEY,
    add_layer_data,
    label_layer_data,
    labels_from_layer,
    scan_from_layer,
    unique_layer_name,
)
from napari_medseg._napari.model_choice import device_choices, model_choices, model_for
from napari_medseg._napari.notify import report, warn
from napari_medseg._napari.options_form import option_controls, options_from_controls
from napari_medseg.errors import MedsegError
from napari_medseg.events import Event, Log, PlanReady, Progress, Stage
from napari_medseg.geometry.interpolation import interpolate_between_slices
from napari_medseg.inference import user_models_dir
from napari_medseg.training.journal import (
    JournalSummary,
    RestoreChoice,
    ScanIdentity,
    journal_path_for,
    open_journal,
)

#: How often edits changed by undo/redo are journaled (ms); paint events are journaled at once.
SYNC_INTERVAL_MS = 3000
#: LearnOptions fields a fine-tune does not choose (the model decides) or that have a control.
FIXED = ("architecture", "dims", "widths", "context_slices", "normalization", "window",
         "modality", "percentiles", "features", "spacing", "budget_s", "device", "threads",
         "seed", "validate_every", "patience", "fold_in", "combine")
#: The controls whose values are remembered between sessions (settings keys).
REMEMBERED = ("model", "budget", "device", "steps", "learning_rate", "freeze")


class FinetuneWidget(JobWidget):
    """Record corrections on a Labels layer and fine-tune a model on them."""

    section = "finetune"
    run_text = "Fine-tune"
    run_tooltip = "Learn from the corrected voxels, then re-segment the scan (background)"
    idle_text = ("Track corrections, correct the labels (or mark slices reviewed), then press "
                 "Fine-tune")
    shortcut = shortcuts.FINETUNE
    busy_text = "fine-tuning"

    def __init__(self, viewer: napari.viewer.Viewer) -> None:
        super().__init__(viewer)
        self.tracker: CorrectionTracker | None = None
        self.trainer: Any = None
        self.result: Any = None
        self.new_checkpoint: Path | None = None
        self.journal_file: Path | None = None
        self.curve: Any = None
        self._save: Any = None

        self.labels = self.layer_choice(
            napari.layers.Labels, label="labels",
            tooltip="The prediction you correct with napari's Labels tools")
        self.image = self.layer_choice(napari.layers.Image, label="scan",
                                       tooltip="The scan the labels belong to")
        self.model = ComboBox(label="model", choices=self._model_choices,
                              tooltip="The model to fine-tune (usually the one that segmented)")
        self.budget = SpinBox(label="budget (s)", value=120, min=10, max=36000, step=10,
                              tooltip="Time for the fine-tune and the re-segmentation")
        self.device = ComboBox(label="device", choices=device_choices(),
                               tooltip="auto = GPU when there is one, else CPU")
        self.form = Container(widgets=[self.labels, self.image, self.model, self.budget,
                                       self.device])
        self.track_button = PushButton(text="Track corrections",
                                       tooltip="Start recording edits on the labels layer")
        self.review_button = PushButton(
            text=shortcuts.hint("Slice reviewed", shortcuts.MARK_REVIEWED),
            tooltip=shortcuts.hint("The current slice is correct as shown",
                                   shortcuts.MARK_REVIEWED))
        self.review_all_button = PushButton(text="All reviewed",
                                            tooltip="Every voxel of the labels is correct")
        rows = Container(widgets=[self.track_button, self.review_button,
                                  self.review_all_button], labels=False)
        self.add_controls(self.form, rows)
        from napari_medseg.training.plan import LearnOptions

        self.learn_controls = option_controls(LearnOptions, skip=FIXED)
        self.steps = self.learn_controls["steps"]
        self.learning_rate = self.learn_controls["learning_rate"]
        self.freeze = self.learn_controls["freeze_encoder"]
        self.interp_from = SpinBox(label="from slice", value=0, min=0, max=100_000,
                                   tooltip="First corrected slice (array axis 0)")
        self.interp_to = SpinBox(label="to slice", value=0, min=0, max=100_000,
                                 tooltip="Last corrected slice (array axis 0)")
        self.interp_button = PushButton(text="Interpolate",
                                        tooltip="Fill the slices between two corrected slices "
                                                "by shape-based interpolation (undoable)")
        self.add_advanced(Container(widgets=[self.interp_from, self.interp_to,
                                             self.interp_button]),
                          title="Interpolate between slices",
                          tooltip="Shape-based interpolation between two corrected slices")
        self.add_advanced(Container(widgets=list(self.learn_controls.values())),
                          tooltip="Steps, batch, patch, learning rate, encoder freezing")
        self.finetune_button = self.run_button
        self.track_button.clicked.connect(self.track)
        self.review_button.clicked.connect(self.mark_current_slice)
        self.review_all_button.clicked.connect(self.mark_all)
        self.interp_button.clicked.connect(self.interpolate)
        from qtpy.QtCore import QTimer

        self._sync_timer = QTimer(self)
        self._sync_timer.setInterval(SYNC_INTERVAL_MS)
        self._sync_timer.timeout.connect(self._sync)
        self.remember(*REMEMBERED)
        self.labels.changed.connect(self._default_model)
        self.image.changed.connect(self._default_model)
        self.bind_key(shortcuts.MARK_REVIEWED, self.mark_current_slice)
        self.reset_choices()
        self._default_model()

    # ---------------------------------------------------------------- choices
    def _model_choices(self, _widget: Any = None) -> list[tuple[str, str]]:
        return model_choices(with_file=False)

    def refresh_models(self) -> None:
        """Re-read the model list (after a run saved a new version)."""
        self.model.reset_choices()

    def _default_model(self, *_: Any) -> None:
        """The model that made the chosen labels (Segment records it), else one trained for
        the scan's modality (the chosen one stays while it fits)."""
        labels, image = self.labels.value, self.image.value
        choices = [v for _, v in self.model.choices] if self.model.choices and isinstance(
            self.model.choices[0], tuple) else list(self.model.choices)
        if labels is not None and labels.metadata.get(MODEL_KEY) in choices:
            self.model.value = labels.metadata[MODEL_KEY]
        elif image is not None:
            source = model_for(image.metadata.get(MODALITY_KEY, "unknown"),
                               current=str(self.model.value or ""),
                               scan=lambda: scan_from_layer(image))
            if source in choices:
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
        """Record into the journal of this scan and label layer (the scan's identity, not its
        file name, picks it); an earlier one is offered once: restore, discard or later."""
        image = self.image.value
        layer = tracker.layer
        try:
            if image is not None and tuple(image.data.shape) == tuple(layer.data.shape):
                scan = scan_from_layer(image)
                identity = ScanIdentity.of_scan(scan)
                scan_name = scan.name or image.name
            else:  # no scan (or another grid): the labels as they are now identify it
                identity = ScanIdentity.of_labels(np.asarray(layer.data))
                scan_name = layer.name
            path = journal_path_for(identity, layer.name, scan_name=scan_name)
            journal, choice = open_journal(
                path, tuple(layer.data.shape), identity=identity, scan=scan_name,
                labels=layer.name, decide=self.ask_restore)
            state = tracker.attach_journal(journal)
        except (MedsegError, OSError) as exc:
            report(exc, context="corrections journal (edits are not autosaved)")
            return
        self.journal_file = path
        if choice is RestoreChoice.RESTORE and state is not None:
            warn(f"restored {journal.summary().describe()} on {layer.name!r}")
        elif choice is RestoreChoice.LATER:
            warn("the earlier corrections were kept for later (napari-medseg journals lists "
                 "them); this session's corrections are journaled anew")

    def ask_restore(self, summary: JournalSummary) -> RestoreChoice:
        """Ask once what to do with an earlier journal of this scan and label layer."""
        from qtpy.QtWidgets import QMessageBox

        box = QMessageBox(self)
        box.setWindowTitle("Earlier corrections of this scan")
        box.setIcon(QMessageBox.Icon.Question)
        box.setText(f"{summary.labels or 'These labels'} on {summary.scan or 'this scan'} "
                    f"has {summary.describe()}.")
        box.setInformativeText("Restore them onto the labels, discard them, or keep them for "
                               "later and start over?")
        restore = box.addButton("Restore", QMessageBox.ButtonRole.AcceptRole)
        discard = box.addButton("Discard", QMessageBox.ButtonRole.DestructiveRole)
        later = box.addButton("Keep for later", QMessageBox.ButtonRole.RejectRole)
        box.setDefaultButton(restore)
        box.setEscapeButton(later)
        box.exec()
        clicked = box.clickedButton()
        if clicked is discard:
            return RestoreChoice.DISCARD
        if clicked is later:
            return RestoreChoice.LATER
        return RestoreChoice.RESTORE

    def _sync(self) -> None:
        if self.tracker is not None:
            self.tracker.sync()
            self.tracker.record_provenance()

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
        """Start fine-tuning (the Fine-tune button and its key)."""
        self.run()

    def prepare(self) -> JobStart | None:
        from napari_medseg.training import LabeledVolume
        from napari_medseg.training.job import SaveTarget
        from napari_medseg.training.plan import LearnOptions

        tracker = self.tracker or self.track()
        image = self.image.value
        if tracker is None or image is None:
            warn("choose the labels layer and its scan")
            return None
        scan = scan_from_layer(image)
        tracker.record_provenance()
        labels = labels_from_layer(tracker.layer)
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
        options = options_from_controls(LearnOptions, self.learn_controls,
                                        budget_s=float(self.budget.value),
                                        device=self.device.value)
        model = Path(source).name.removesuffix(".safetensors")
        self._save = SaveTarget(folder=user_models_dir(), name=f"{model}-ft")
        self.trainer = None
        if self.curve is None:
            from napari_medseg._napari.training_curve import TrainingCurve

            self.curve = TrainingCurve()
            self.add_below(self.curve)
        self.curve.clear()
        return JobStart(self._job(source, volume, options, self._save),
                        text=f"Fine-tuning {model} on {tracker.layer.name}",
                        on_done=lambda result: self._show(result, image.name))

    def _job(self, source: str, volume: Any, options: Any, save: Any
             ) -> Generator[Event, None, Any]:
        from napari_medseg.training.job import train_job

        def keep(trainer: Any) -> None:
            self.trainer = trainer

        with gui_friendly_threads():
            return (yield from train_job([volume], options, start_from=source, save=save,
                                         on_trainer=keep))

    def on_log(self, event: Log) -> None:
        if isinstance(event, PlanReady):
            self.status.value = self.panel.running_text(f"plan: {event.summary}")

    def on_progress(self, event: Progress) -> None:
        if event.stage == Stage.FINETUNE and self.curve is not None:
            if event.fold_in and self.curve.fold_in is None:
                self.curve.mark_fold_in(event.done)
            self.curve.add(event.done, event.metrics)
        loss = event.metrics.get("loss")
        detail = (f"step {event.done} of {event.total}" + (
            f", loss {loss:.3f}" if loss is not None else "")) if event.stage == Stage.FINETUNE \
            else (event.message or event.stage)
        self.progress.value = int(100 * event.fraction)
        self.status.value = self.panel.running_text(detail, event.eta_s)

    def _show(self, result: Any, scan_name: str) -> None:
        self.result = result
        train = result.train
        before, after = train.initial_val_dice, train.best_val_dice
        measured = (f"held-back corrections: Dice {before:.3f} -> {after:.3f}"
                    if np.isfinite(before) and np.isfinite(after) else "")
        if result.kept_parent or result.model_path is None:
            self.present(outcome=result.summary())
            return
        self.new_checkpoint = result.model_path
        self._refresh_models_everywhere()
        name = result.model_path.stem
        data = label_layer_data(result.mask, name=unique_layer_name(
            self.viewer, f"{scan_name} [{name}]"), metadata={MODEL_KEY: str(result.model_path)})
        outcome = f"saved {name}" + (f"; {measured}" if measured else "")
        self.present(lambda: add_layer_data(self.viewer, data), outcome=outcome)

    def _refresh_models_everywhere(self) -> None:
        for dock in self.viewer.window.dock_widgets.values():
            refresh = getattr(dock, "refresh_models", None)
            if refresh is not None:
                refresh()
        self.model.reset_choices()

    def on_finished(self) -> None:
        if self.curve is not None:
            self.curve.redraw(force=True)
        if not (self.runner.cancelled and self.trainer is not None and self._save is not None):
            return
        from napari_medseg.training.job import save_cancelled

        try:
            path = save_cancelled(self.trainer, self._save)
        except MedsegError as exc:
            report(exc)
            return
        if path is None:
            self.status.value = ("cancelled: no weights beat the starting model on the "
                                 "held-back corrections yet; nothing saved")
            return
        self.new_checkpoint = path
        self._refresh_models_everywhere()
        self.status.value = f"cancelled; the best validated weights were kept as {path.name}"
