"""The Train tab: learn a model of any zoo architecture from a few annotated slices, in the
background, then segment the whole scan with it.

A person opens a scan, adds a Labels layer and paints the structure on a few slices.  The tab
turns the scan layer(s) (several co-registered modalities = channels), the Labels layer and
*which voxels are annotated* into :class:`~napari_medseg.training.LabeledVolume` and
:class:`~napari_medseg.training.plan.LearnOptions`, runs the core
:func:`~napari_medseg.training.job.train_job` (plan measured on this machine, training with a
held-back slice, a verdict, the scan's mask, a saved version) and adds the mask as a new layer.
Which voxels are annotated:

* **slices holding labels** (the default): every slice across the viewer's slicing axis on
  which something is painted is annotated whole (its unpainted voxels are background);
* **reviewed / edited** (the Correct tab's tracking): the slices marked reviewed and the
  voxels edited on this layer;
* **every voxel**: a dense label map.

After the first model, Run *continues* from the last version (warm start) and "New model"
starts from scratch: a person never loses a model by pressing the main button.  Every version
is saved in the models folder and listed in the Segment tab.  "Next slice" jumps to the slice
the model is least sure about.  The live curve shows the loss and the held-back Dice.
"""

from __future__ import annotations

from collections.abc import Generator
from pathlib import Path
from typing import Any

import numpy as np
from magicgui.widgets import ComboBox, Container, Label, PushButton, SpinBox, create_widget

import napari
from napari_medseg._napari import shortcuts
from napari_medseg._napari.corrections import tracker_for
from napari_medseg._napari.job_widget import JobStart, JobWidget, describe_channel_rows
from napari_medseg._napari.jobs import gui_friendly_threads
from napari_medseg._napari.layers import (
    MODEL_KEY,
    add_layer_data,
    label_layer_data,
    labels_from_layer,
    scan_from_layer,
    unique_layer_name,
)
from napari_medseg._napari.model_choice import device_choices
from napari_medseg._napari.notify import warn
from napari_medseg._napari.options_form import option_controls, options_from_controls
from napari_medseg.errors import MedsegError
from napari_medseg.events import Event, Log, PlanReady, Progress, Stage
from napari_medseg.inference.catalog import user_models_dir
from napari_medseg.models import model_names
from napari_medseg.scan import LabelMap
from napari_medseg.training.annotation import describe_annotation, slices_holding_labels

#: How the annotated voxels are known (value, text).
ANNOTATED = (("slices holding labels", "slices"), ("reviewed / edited (Correct tab)", "tracked"),
             ("every voxel", "all"))
#: LearnOptions fields with their own control here (the rest go under Advanced).
OWN = ("architecture", "dims", "budget_s", "widths", "device", "threads", "seed", "modality",
       "window", "percentiles", "features", "spacing", "validate_every", "patience", "fold_in")
REMEMBERED = ("architecture", "dims", "budget", "widths", "device", "annotated")


def _name_the_one_class(labels: Any, mask: np.ndarray, name: str) -> None:
    """A freshly painted layer has no class names: its one painted value is called after the
    layer ("liver"), so that the model, its results and the status line say "liver", not
    "class 1"."""
    values = [int(v) for v in np.unique(np.asarray(labels.array)[mask]) if v > 0]
    current = str(labels.class_names.get(values[0], "")) if len(values) == 1 else "x"
    if not current or current.startswith("class "):
        labels.class_names = {0: labels.class_names.get(0, "background"),
                              **labels.class_names, values[0]: name}


def _safe(name: str) -> str:
    return "".join(c if c.isalnum() or c in "-_" else "-" for c in name).strip("-") or "model"


class TrainWidget(JobWidget):
    """Train a model on the annotated slices of a Labels layer and segment the scan."""

    section = "train"
    run_text = "Train"
    run_tooltip = "Learn from the annotated voxels, then segment the whole scan (background)"
    idle_text = ("Paint the structure on a few slices of a Labels layer, choose it here, then "
                 "press Train")
    shortcut = shortcuts.TRAIN
    busy_text = "a training run"

    def __init__(self, viewer: napari.viewer.Viewer) -> None:
        super().__init__(viewer)
        self.last_model: Path | None = None
        self.last_result: Any = None
        self.suggestions: list[Any] = []
        self.curve: Any = None

        self.images = create_widget(annotation=list[napari.layers.Image], label="scan(s)")
        self.images.tooltip = "Image layer(s) to learn from; several = co-registered channels"
        self.labels = self.layer_choice(
            napari.layers.Labels, label="annotation",
            tooltip="The Labels layer you painted (overlays are not offered)")
        self.annotated = ComboBox(label="annotated", choices=list(ANNOTATED), value="slices",
                                  tooltip="Which voxels of the Labels layer you annotated")
        self.architecture = ComboBox(
            label="network", choices=[("auto: 2.5D U-Net", "auto"),
                                      *((name, name) for name in model_names())],
            value="auto", tooltip="Any network of the zoo; auto plans a U-Net across the "
                                  "annotated slices")
        self.dims = ComboBox(label="dims", choices=[("auto", "auto"), ("2D / 2.5D", "2"),
                                                    ("3D", "3")], value="auto",
                             tooltip="2D networks see slices (2.5D: with neighbours), 3D ones "
                                     "patches of the volume")
        self.budget = SpinBox(label="budget (s)", value=_default_budget(), min=10, max=36000,
                              step=10, tooltip="Time for the whole run: train, then segment "
                                               "the scan (the plan fits the network to it)")
        self.widths = ComboBox(label="widths", choices=[("fast (fits the budget)", "fast"),
                                                        ("as published", "paper")],
                               value="fast", tooltip="Network widths: planned to the budget, "
                                                     "or the paper's (slow on a CPU)")
        self.device = ComboBox(label="device", choices=device_choices(),
                               tooltip="auto = GPU when there is one, else CPU")
        self.form = Container(widgets=[self.images, self.labels, self.annotated,
                                       self.architecture, self.budget])
        self.what = _wrapping_label()
        self.add_controls(self.form, self.what)
        from napari_medseg.training.plan import LearnOptions

        self.learn_controls = option_controls(LearnOptions, skip=OWN)
        self.add_advanced(Container(widgets=[self.dims, self.widths, self.device,
                                             *self.learn_controls.values()]),
                          tooltip="Dimensions, widths, device, steps, batch, patch, learning "
                                  "rate, context slices, combination with the annotation")
        self.new_button = PushButton(text="New model", visible=False,
                                     tooltip="Train a new model from scratch instead of "
                                             "continuing from the last version")
        self.next_button = PushButton(text="Next slice", enabled=False,
                                      tooltip="Go to the slice the model is least sure about: "
                                              "correct it and press Continue")
        self.add_buttons(self.new_button, self.next_button)
        self.plan = _wrapping_label()
        self.add_below(self.plan)
        self.new_button.clicked.connect(lambda: self.launch(lambda: self.prepare(fresh=True)))
        self.next_button.clicked.connect(self.go_to_next_slice)
        self.labels.changed.connect(self._describe)
        self.annotated.changed.connect(self._describe)
        self.images.changed.connect(lambda *_: describe_channel_rows(self.images))
        describe_channel_rows(self.images)
        self.remember(*REMEMBERED)
        self.reset_choices()

    # ---------------------------------------------------------------- choices
    def reset_choices(self, *_: Any) -> None:
        super().reset_choices()
        if not hasattr(self, "what"):  # the base refreshes the lists while building the tab
            return
        if not self.images.value:
            images = [layer for layer in self.viewer.layers
                      if isinstance(layer, napari.layers.Image)]
            if images:
                self.images.value = [images[0]]
        self._describe()

    def slice_axis(self) -> int:
        """The array axis the viewer slices across (where a person paints slices)."""
        hidden = list(self.viewer.dims.not_displayed)
        layer = self.labels.value
        if layer is None or layer.ndim != 3 or not hidden:
            return 0
        return int(hidden[0] - (self.viewer.dims.ndim - layer.ndim))

    def labeled_mask(self, layer: Any) -> np.ndarray:
        """The annotated voxels of ``layer`` as the "annotated" control says."""
        mode = self.annotated.value
        data = np.asarray(layer.data)
        if mode == "all":
            return np.ones(data.shape, dtype=bool)
        if mode == "tracked":
            tracker = tracker_for(layer)
            if tracker is None:
                msg = (f"{layer.name!r} is not tracked: press Track corrections in the Correct "
                       "tab first, or choose 'slices holding labels'")
                raise MedsegError(msg)
            return tracker.labeled()
        return slices_holding_labels(data, self.slice_axis())

    def _describe(self, *_: Any) -> None:
        layer = self.labels.value
        if layer is None:
            self.what.value = "No Labels layer yet: add one (the layer list's Labels button) " \
                              "and paint the structure on a few slices"
            return
        try:
            mask = self.labeled_mask(layer)
        except MedsegError as exc:
            self.what.value = str(exc)
            return
        layout = describe_annotation(mask, np.asarray(layer.data))
        self.what.value = layout.summary() if layout.labeled_voxels else (
            f"nothing painted on {layer.name!r} yet")
        self._update_run_text()

    def _update_run_text(self) -> None:
        continuing = self.last_model is not None and self.last_model.exists()
        self.run_button.text = shortcuts.hint("Continue" if continuing else "Train",
                                              shortcuts.TRAIN)
        self.new_button.visible = continuing

    def refresh_models(self) -> None:
        """Nothing to refresh: the tab lists architectures, not checkpoints."""

    # ---------------------------------------------------------------- run
    def prepare(self, *, fresh: bool = False) -> JobStart | None:
        from napari_medseg.training import LabeledVolume
        from napari_medseg.training.job import SaveTarget
        from napari_medseg.training.plan import LearnOptions

        layers = list(self.images.value or [])
        layer = self.labels.value
        if not layers or layer is None:
            warn("choose the scan and the Labels layer you annotated")
            return None
        scans = [scan_from_layer(image) for image in layers]
        labels = labels_from_layer(layer)
        mask = self.labeled_mask(layer)
        _name_the_one_class(labels, mask, layer.name)
        tracker = tracker_for(layer)
        if tracker is not None:
            tracker.record_provenance()
        edited = tracker.edited.copy() if tracker is not None else None
        volume = LabeledVolume(scans=scans, labels=labels, labeled=mask, edited=edited)
        if not volume.labeled_mask().any():
            msg = (f"nothing annotated on {layer.name!r}: paint the structure on a few slices "
                   "(or mark slices reviewed in the Correct tab)")
            raise MedsegError(msg)
        options = options_from_controls(
            LearnOptions, self.learn_controls, architecture=self.architecture.value,
            dims=self.dims.value, budget_s=float(self.budget.value), widths=self.widths.value,
            device=self.device.value)
        start = None if fresh or self.last_model is None or not self.last_model.exists() \
            else self.last_model
        architecture = "unet" if options.architecture == "auto" else options.architecture
        base = _safe(f"{layer.name}-{architecture}")
        save = SaveTarget(folder=user_models_dir(), name=base)
        scan_name, labels_name = layers[0].name, layer.name
        if self.curve is None:
            from napari_medseg._napari.training_curve import TrainingCurve

            self.curve = TrainingCurve()
            self.add_below(self.curve)
        self.curve.clear()
        self.plan.value = "planning: measuring a few steps on this machine..."
        self.next_button.enabled = False
        what = (f"Continuing {start.stem} on {labels_name}" if start is not None
                else f"Training on {labels_name}")
        return JobStart(self._job(volume, options, start, save, labels.class_names), text=what,
                        on_done=lambda result: self._show(result, scan_name))

    def _job(self, volume: Any, options: Any, start: Path | None, save: Any,
             names: dict[int, str]) -> Generator[Event, None, Any]:
        from napari_medseg.training.job import train_job

        with gui_friendly_threads():
            return (yield from train_job([volume], options, start_from=start, save=save,
                                         class_names=names))

    def on_log(self, event: Log) -> None:
        if isinstance(event, PlanReady):
            self.plan.value = event.summary

    def on_progress(self, event: Progress) -> None:
        if event.stage in (Stage.TRAIN, Stage.FINETUNE) and self.curve is not None:
            if event.fold_in and self.curve.fold_in is None:
                self.curve.mark_fold_in(event.done)
            self.curve.add(event.done, event.metrics)
        loss = event.metrics.get("loss")
        if event.stage in (Stage.TRAIN, Stage.FINETUNE):
            detail = f"step {event.done} of {event.total}" + (
                f", loss {loss:.3f}" if loss is not None else "")
        elif event.stage == Stage.MEASURE:
            detail = "measuring the network on the held-back slice"
        else:
            detail = event.message or f"{event.stage} {event.done}/{event.total}"
        self.progress.value = int(100 * event.fraction)
        self.status.value = self.panel.running_text(detail, event.eta_s)

    def on_finished(self) -> None:
        if self.curve is not None:
            self.curve.redraw(force=True)

    def _show(self, result: Any, scan_name: str) -> None:
        self.last_result = result
        if result.model_path is not None:
            self.last_model = result.model_path
        self._update_run_text()
        self.suggestions = list(result.suggestions)
        self.next_button.enabled = bool(self.suggestions)
        if self.suggestions:
            self.next_button.tooltip = f"Go to {self.suggestions[0].describe()}"
        self.refresh_other_tabs()
        if result.mask is None:
            self.present(outcome=result.summary())
            return
        name = (result.model_path.stem if result.model_path
                else "from your annotation" if result.annotation is not None else "model")
        mask: LabelMap = result.mask
        data = label_layer_data(mask, name=unique_layer_name(self.viewer, f"{scan_name} [{name}]"),
                                metadata={MODEL_KEY: str(result.model_path or "")})
        self.present(lambda: add_layer_data(self.viewer, data), outcome=result.summary())

    def refresh_other_tabs(self) -> None:
        """A new version is saved: the Segment and Correct tabs list it (the MedSeg dock
        passes ``refresh_models`` on to its tabs)."""
        for dock in self.viewer.window.dock_widgets.values():
            refresh = getattr(dock, "refresh_models", None)
            if refresh is not None:
                refresh()

    def go_to_next_slice(self) -> None:
        """Move the viewer to the first suggested slice."""
        if not self.suggestions or self.labels.value is None:
            return
        suggestion = self.suggestions[0]
        layer = self.labels.value
        centre = [n / 2 for n in layer.data.shape]
        centre[suggestion.axis] = suggestion.index
        world = layer.data_to_world(centre)
        axis = suggestion.axis + (self.viewer.dims.ndim - layer.ndim)
        point = list(self.viewer.dims.point)
        point[axis] = float(world[suggestion.axis])
        self.viewer.dims.point = tuple(point)
        self.status.value = f"now at {suggestion.describe()}: correct it, then press Continue"


def _wrapping_label() -> Label:
    """A label that wraps to the dock's width instead of widening the dock."""
    from qtpy.QtWidgets import QSizePolicy

    label = Label(value="")
    label.native.setWordWrap(True)
    label.native.setSizePolicy(QSizePolicy.Policy.Ignored, QSizePolicy.Policy.Preferred)
    return label


def _default_budget() -> int:
    """120 s on a CPU, 30 s on a GPU (the issue's defaults)."""
    from napari_medseg.training.plan import DEFAULT_BUDGET_S

    try:
        import torch

        gpu = torch.cuda.is_available()
    except ImportError:  # pragma: no cover - torch is a dependency
        gpu = False
    return int(DEFAULT_BUDGET_S["gpu" if gpu else "cpu"])
