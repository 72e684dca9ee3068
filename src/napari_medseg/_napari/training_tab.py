"""The base of the tabs that train a model (Train, Correct): what they share, written once.

Both run the core :func:`~napari_medseg.training.job.train_job`; a subclass only turns its
layers and controls into the job's arguments (:meth:`TrainingTab.training_job` in its
``prepare``) and the job's result into layers.  The base gives them:

* the live curve of the loss and the held-back Dice
  (:class:`~napari_medseg._napari.training_curve.TrainingCurve`), made at the first run and
  cleared at each;
* progress in words a person reads, from typed events only (:class:`~napari_medseg.events.
  Stage`, ``Progress.fold_in``, :class:`~napari_medseg.events.PlanReady`), never from a
  message's words: "step 40 of 300, loss 0.213, 1:10 left (0:20 of it segmenting the scan)"
  - the time left includes the segmenting after the training steps, as the plan estimates it;
* Cancel keeps the best validated weights when they are worth keeping
  (:func:`~napari_medseg.training.job.save_cancelled`), whether the run started from scratch,
  continued a model or fine-tunes one;
* a saved model is announced (:func:`~napari_medseg._napari.model_events.announce_model`):
  every model list shows it, and :meth:`TrainingTab.model_saved` says what it means here;
* learning controls left to the plan say "planned" instead of a 0 (:func:`show_planned`).
"""

from __future__ import annotations

from collections.abc import Generator, Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar

from magicgui.widgets.bases import ValueWidget
from qtpy.QtCore import QObject, QSignalBlocker, QTimer
from qtpy.QtWidgets import QAbstractSpinBox, QDoubleSpinBox, QLineEdit, QSpinBox

import napari
from napari_medseg._napari.job_panel import format_clock
from napari_medseg._napari.job_widget import JobWidget
from napari_medseg._napari.jobs import gui_friendly_threads
from napari_medseg._napari.model_events import announce_model, follow_models
from napari_medseg._napari.notify import report
from napari_medseg._napari.options_form import option_controls
from napari_medseg.errors import MedsegError
from napari_medseg.events import Event, Log, PlanReady, Progress, Stage
from napari_medseg.options import option_fields

if TYPE_CHECKING:
    from napari_medseg._napari.training_curve import TrainingCurve
    from napari_medseg.training.job import SaveTarget
    from napari_medseg.training.trainer import Trainer

#: What a learning control left to the plan shows.
PLANNED = "planned"
#: The stages whose progress events are training steps (plotted on the curve).
TRAINING = (Stage.TRAIN, Stage.FINETUNE)


def show_planned(controls: Mapping[str, ValueWidget]) -> None:
    """Learning controls whose value means "planned" (a steps count or learning rate of 0,
    an empty patch) show the word instead."""
    from napari_medseg.training.plan import LearnOptions

    fields = {f.name: f for f in option_fields(LearnOptions)}
    for name, control in controls.items():
        field, native = fields[name], control.native
        planned = field.option.none_as
        if isinstance(native, QLineEdit) and field.default is None:
            native.setPlaceholderText(PLANNED)
        elif not isinstance(native, QAbstractSpinBox) or planned is None:
            continue
        elif isinstance(native, QSpinBox | QDoubleSpinBox):
            if native.minimum() == planned:
                native.setSpecialValueText(PLANNED)
        else:  # superqt's large-int spin box has no special text: blank it, show a hint
            _BlankWhenPlanned(native, int(planned))


class _BlankWhenPlanned(QObject):
    """Shows a superqt large-int spin box's ``planned`` value as an empty line with the hint
    "planned" (it has no special value text); its value stays as it is."""

    def __init__(self, spin: QAbstractSpinBox, planned: int) -> None:
        super().__init__(spin)
        edit = spin.lineEdit()
        assert edit is not None  # a spin box always has its line edit
        self.spin, self.edit, self.planned = spin, edit, planned
        edit.setPlaceholderText(PLANNED)
        edit.textChanged.connect(self._changed)
        self.blank()

    def _changed(self, _text: str) -> None:
        QTimer.singleShot(0, self.blank)  # never inside the line edit's own signal

    def blank(self) -> None:
        edit = self.edit
        if edit.text() == str(self.planned) and self.spin.value() == self.planned:
            blocker = QSignalBlocker(edit)
            edit.setText("")
            blocker.unblock()


class TrainingTab(JobWidget):
    """A tab that runs the core train job; see the module docstring."""

    #: What the held-back voxels are ("annotation", "corrections"), in the status.
    held_back: ClassVar[str] = "annotation"

    def __init__(self, viewer: napari.viewer.Viewer) -> None:
        super().__init__(viewer)
        self.curve: TrainingCurve | None = None
        self.trainer: Trainer | None = None
        self.save_target: SaveTarget | None = None
        self.plan_ready: PlanReady | None = None
        follow_models(self)

    def learning_controls(self, *, skip: Sequence[str]) -> dict[str, ValueWidget]:
        """The controls of :class:`~napari_medseg.training.plan.LearnOptions` but ``skip``,
        those left to the plan saying so."""
        from napari_medseg.training.plan import LearnOptions

        controls = option_controls(LearnOptions, skip=skip)
        show_planned(controls)
        return controls

    def refresh_models(self) -> None:
        """Re-read the model list, if the tab has one (after any tab saved a model)."""

    # ---------------------------------------------------------------- running
    def training_job(self, volumes: Sequence[Any], options: Any, *, start_from: str | Path | None,
                     save: SaveTarget, class_names: dict[int, str] | None = None
                     ) -> Generator[Event, None, Any]:
        """The core train job for :class:`~napari_medseg._napari.job_widget.JobStart`; the
        curve is cleared, and the trainer kept for a Cancel."""
        self.trainer, self.save_target, self.plan_ready = None, save, None
        if self.curve is None:
            from napari_medseg._napari.training_curve import TrainingCurve

            self.curve = TrainingCurve()
            self.add_below(self.curve)
        self.curve.clear()
        return self._job(list(volumes), options, start_from, save, class_names)

    def _job(self, volumes: list[Any], options: Any, start_from: str | Path | None,
             save: SaveTarget, class_names: dict[int, str] | None
             ) -> Generator[Event, None, Any]:
        from napari_medseg.training.job import train_job

        def keep(trainer: Trainer) -> None:
            self.trainer = trainer

        with gui_friendly_threads():
            return (yield from train_job(volumes, options, start_from=start_from, save=save,
                                         class_names=class_names, on_trainer=keep))

    def on_log(self, event: Log) -> None:
        if isinstance(event, PlanReady):
            self.plan_ready = event
            self.show_plan(event)

    def show_plan(self, plan: PlanReady) -> None:
        """The plan is known (default: in the status line until the first step)."""
        self.status.value = self.panel.running_text(f"plan: {plan.summary}")

    def on_progress(self, event: Progress) -> None:
        if event.stage in TRAINING and self.curve is not None:
            if event.fold_in and self.curve.fold_in is None:
                self.curve.mark_fold_in(event.done)
            self.curve.add(event.done, event.metrics)
        self.progress.value = int(100 * event.fraction)
        after = self.segmenting_after(event.stage) if event.eta_s is not None else 0.0
        left = None if event.eta_s is None else event.eta_s + after
        text = self.panel.running_text(self.progress_text(event), left)
        self.status.value = text + (f" ({format_clock(after)} of it segmenting the scan)"
                                    if after >= 1 else "")

    def progress_text(self, event: Progress) -> str:
        """What the job does now, in a person's words."""
        if event.stage in TRAINING:
            loss = event.metrics.get("loss")
            return f"step {event.done} of {event.total}" + (
                f", loss {loss:.3f}" if loss is not None else "")
        if event.stage == Stage.MEASURE:
            return f"measuring the network on the held-back {self.held_back}"
        if event.stage == Stage.SEGMENT:
            return "segmenting the scan" + (f": {event.message}" if event.message else "")
        return event.message or f"{event.stage} {event.done} of {event.total}"

    def segmenting_after(self, stage: str) -> float:
        """Seconds of segmenting still to come after ``stage`` (the plan's estimate: the
        held-back check, then the mask, as long as each other)."""
        planned = self.plan_ready.segment_s if self.plan_ready is not None else 0.0
        if stage in TRAINING:
            return planned
        return planned / 2 if stage == Stage.MEASURE else 0.0

    # ---------------------------------------------------------------- the end
    def on_finished(self) -> None:
        if self.curve is not None:
            self.curve.redraw(force=True)
        if self.runner.cancelled:
            self.keep_best()

    def keep_best(self) -> Path | None:
        """After a Cancel: save the best validated weights when they are worth keeping."""
        trainer, save = self.trainer, self.save_target
        if trainer is None or save is None:
            return None  # cancelled while planning: nothing was trained
        from napari_medseg.training.job import save_cancelled
        from napari_medseg.training.trainer import MIN_HELD_BACK_DICE

        try:
            path = save_cancelled(trainer, save)
        except MedsegError as exc:
            report(exc)
            return None
        if path is None:
            bar = ("beat the starting model" if trainer.mode == "finetune"
                   else f"reached a Dice of {MIN_HELD_BACK_DICE:.2f}")
            self.status.value = (f"cancelled: no weights {bar} on the held-back "
                                 f"{self.held_back} yet; nothing saved")
            return None
        self.model_saved(path)
        self.status.value = f"cancelled; the best validated weights were kept as {path.name}"
        return path

    def model_saved(self, path: Path) -> None:
        """A new version was saved (a finished run or a Cancel): every model list shows it;
        a subclass also records what it means for the tab."""
        announce_model(path)
