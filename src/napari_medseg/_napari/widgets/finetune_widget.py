"""The Correct tab: correct a prediction with napari's Labels tools, then fine-tune its model.

Bind it to a prediction Labels layer and its scan and switch *Track corrections* on: the
tracking component (:mod:`~napari_medseg._napari.correction_tracking`) records the voxels a
person edits and the slices they mark reviewed, journaled as they happen, with an outline
overlay of the labeled region.  *Fine-tune* runs the same core job as the Train tab
(:func:`~napari_medseg.training.job.train_job`, through
:class:`~napari_medseg._napari.training_tab.TrainingTab`) from the model that made the
labels: it holds back a corrected slice, keeps the model when the fine-tune does not beat it
there (nothing is saved: a new version never equals its parent), and otherwise saves
``<model>-ft-vN`` and adds the re-segmented scan as a new layer - one prediction, made by the
job.  Cancel keeps the best validated weights when they beat the parent.

The model defaults to the one that made the chosen labels (Segment records it); model,
budget and device are remembered between sessions.  Ctrl+Shift+R marks the current slice
reviewed, Ctrl+Shift+F fine-tunes, Ctrl+Shift+X cancels, also while painting.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
from magicgui.widgets import ComboBox, Container, PushButton, SpinBox

import napari
from napari_medseg._napari import shortcuts
from napari_medseg._napari.correction_tracking import CorrectionTracking
from napari_medseg._napari.job_widget import JobStart
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
from napari_medseg._napari.options_form import options_from_controls
from napari_medseg._napari.training_tab import TrainingTab
from napari_medseg.errors import MedsegError
from napari_medseg.geometry.interpolation import interpolate_between_slices
from napari_medseg.inference import user_models_dir

#: LearnOptions fields a fine-tune does not choose (the model decides) or that have a control.
FIXED = ("architecture", "dims", "widths", "context_slices", "normalization", "window",
         "modality", "percentiles", "features", "spacing", "budget_s", "device", "threads",
         "seed", "validate_every", "patience", "fold_in", "combine")
#: The controls whose values are remembered between sessions (settings keys).
REMEMBERED = ("model", "budget", "device", "steps", "learning_rate", "freeze")


class FinetuneWidget(TrainingTab):
    """Record corrections on a Labels layer and fine-tune a model on them."""

    section = "finetune"
    run_text = "Fine-tune"
    run_tooltip = "Learn from the corrected voxels, then re-segment the scan (background)"
    idle_text = ("Track corrections, correct the labels (or mark slices reviewed), then press "
                 "Fine-tune")
    shortcut = shortcuts.FINETUNE
    busy_text = "fine-tuning"
    held_back = "corrections"

    def __init__(self, viewer: napari.viewer.Viewer) -> None:
        super().__init__(viewer)
        self.result: Any = None
        self.new_checkpoint: Path | None = None

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
        self.corrections = CorrectionTracking(viewer, labels=self.labels, image=self.image,
                                              say=self._say)
        self.add_controls(self.form, self.corrections)
        self.learn_controls = self.learning_controls(skip=FIXED)
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
        self.interp_button.clicked.connect(self.interpolate)
        self.remember(*REMEMBERED)
        self.labels.changed.connect(self._default_model)
        self.image.changed.connect(self._default_model)
        self.bind_key(shortcuts.MARK_REVIEWED, self.corrections.mark_current_slice)
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

    def _say(self, text: str) -> None:
        if not self.runner.running:  # the job's progress keeps the line while it runs
            self.status.value = text

    # ---------------------------------------------------------------- corrections
    def interpolate(self) -> None:
        """Shape-based interpolation between two slices along the first array axis."""
        tracker = self.corrections.active()
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

    # ---------------------------------------------------------------- fine-tune
    def finetune(self) -> None:
        """Start fine-tuning (the Fine-tune button and its key)."""
        self.run()

    def prepare(self) -> JobStart | None:
        from napari_medseg.training import LabeledVolume
        from napari_medseg.training.job import SaveTarget
        from napari_medseg.training.plan import LearnOptions

        tracker = self.corrections.active()
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
        save = SaveTarget(folder=user_models_dir(), name=f"{model}-ft")
        job = self.training_job([volume], options, start_from=source, save=save)
        return JobStart(job, text=f"Fine-tuning {model} on {tracker.layer.name}",
                        on_done=lambda result: self._show(result, image.name))

    def _show(self, result: Any, scan_name: str) -> None:
        self.result = result
        train = result.train
        before, after = train.initial_val_dice, train.best_val_dice
        measured = (f"held-back corrections: Dice {before:.3f} -> {after:.3f}"
                    if np.isfinite(before) and np.isfinite(after) else "")
        if result.kept_parent or result.model_path is None:
            self.present(outcome=result.summary())
            return
        self.model_saved(result.model_path)
        name = result.model_path.stem
        data = label_layer_data(result.mask, name=unique_layer_name(
            self.viewer, f"{scan_name} [{name}]"), metadata={MODEL_KEY: str(result.model_path)})
        outcome = f"saved {name}" + (f"; {measured}" if measured else "")
        self.present(lambda: add_layer_data(self.viewer, data), outcome=outcome)

    def model_saved(self, path: Path) -> None:
        self.new_checkpoint = path
        super().model_saved(path)
