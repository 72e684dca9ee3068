"""The Train tab: learn a model of any zoo architecture from a few annotated slices, in the
background, then segment the whole scan with it.

A person opens a scan, adds a Labels layer and paints the structure on a few slices.  The tab
turns the scan layer(s) (several co-registered modalities = channels), the Labels layer and
*which voxels are annotated* (the "annotated" choice:
:mod:`~napari_medseg._napari.annotated_volume`) into
:class:`~napari_medseg.training.LabeledVolume` and
:class:`~napari_medseg.training.plan.LearnOptions`, runs the core
:func:`~napari_medseg.training.job.train_job` (plan measured on this machine, training with a
held-back slice, a verdict, the scan's mask, a saved version) and adds the mask as a new layer.

The line under the controls says what is annotated and follows the painting as it happens
(:class:`~napari_medseg._napari.layer_edits.LayerEdits`).  After the first model, Run
*continues* from the last version (warm start) and "New model" starts from scratch: a person
never loses a model by pressing the main button, and Cancel keeps the best validated weights
(:class:`~napari_medseg._napari.training_tab.TrainingTab`).  Every version is saved in the
models folder and listed in the Segment tab.  "Next slice" jumps to the slice the model is
least sure about.  The live curve shows the loss and the held-back Dice.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from magicgui.widgets import ComboBox, Container, PushButton, SpinBox, create_widget

import napari
from napari_medseg._napari import shortcuts
from napari_medseg._napari.annotated_volume import (
    ANNOTATED,
    annotated_volume,
    describe,
    slice_axis,
)
from napari_medseg._napari.job_widget import JobStart, describe_channel_rows
from napari_medseg._napari.layer_edits import LatestOnly, LayerEdits
from napari_medseg._napari.layers import (
    MODEL_KEY,
    add_layer_data,
    label_layer_data,
    unique_layer_name,
)
from napari_medseg._napari.model_choice import device_choices
from napari_medseg._napari.notify import warn
from napari_medseg._napari.options_form import options_from_controls
from napari_medseg._napari.training_tab import TrainingTab
from napari_medseg._napari.wrapping_label import WrappingLabel
from napari_medseg.events import PlanReady
from napari_medseg.inference.catalog import user_models_dir
from napari_medseg.models import model_names
from napari_medseg.scan import LabelMap

#: LearnOptions fields with their own control here (the rest go under Advanced).
OWN = ("architecture", "dims", "budget_s", "widths", "device", "threads", "seed", "modality",
       "window", "percentiles", "features", "spacing", "validate_every", "patience", "fold_in")
REMEMBERED = ("architecture", "dims", "budget", "widths", "device", "annotated")


def _safe(name: str) -> str:
    return "".join(c if c.isalnum() or c in "-_" else "-" for c in name).strip("-") or "model"


class TrainWidget(TrainingTab):
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
        self.edits = LayerEdits(self, self._describe_edits)  # the line follows the painting
        self._line = LatestOnly(self._show_line)
        self._lines = 0  # which description of the annotation is the newest

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
        self.what = WrappingLabel()
        self.add_controls(self.form, self.what)
        self.learn_controls = self.learning_controls(skip=OWN)
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
        self.plan = WrappingLabel()
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

    def _describe(self, *_: Any) -> None:
        """The line on what is annotated, at once (another layer or way of annotating)."""
        layer = self.labels.value
        self.edits.follow(layer)
        self._lines += 1  # a description still running in the background is older
        self.what.value = describe(layer, self.annotated.value,
                                   axis=slice_axis(self.viewer, layer))
        self._update_run_text()

    def _describe_edits(self) -> None:
        """The line again after edits, described in the background (a CT takes ~1 s)."""
        layer, mode, number = self.labels.value, self.annotated.value, self._lines
        axis = slice_axis(self.viewer, layer)
        self._line.submit(lambda: (number, describe(layer, mode, axis=axis)))

    def _show_line(self, numbered: tuple[int, str]) -> None:
        number, text = numbered
        if number == self._lines and shortcuts.alive(self):
            self.what.value = text

    def _update_run_text(self) -> None:
        continuing = self.last_model is not None and self.last_model.exists()
        self.run_button.text = shortcuts.hint("Continue" if continuing else "Train",
                                              shortcuts.TRAIN)
        self.new_button.visible = continuing

    # ---------------------------------------------------------------- run
    def prepare(self, *, fresh: bool = False) -> JobStart | None:
        from napari_medseg.training.job import SaveTarget
        from napari_medseg.training.plan import LearnOptions

        layers = list(self.images.value or [])
        layer = self.labels.value
        if not layers or layer is None:
            warn("choose the scan and the Labels layer you annotated")
            return None
        volume = annotated_volume(layers, layer, self.annotated.value,
                                  axis=slice_axis(self.viewer, layer))
        options = options_from_controls(
            LearnOptions, self.learn_controls, architecture=self.architecture.value,
            dims=self.dims.value, budget_s=float(self.budget.value), widths=self.widths.value,
            device=self.device.value)
        start = None if fresh or self.last_model is None or not self.last_model.exists() \
            else self.last_model
        architecture = "unet" if options.architecture == "auto" else options.architecture
        save = SaveTarget(folder=user_models_dir(), name=_safe(f"{layer.name}-{architecture}"))
        scan_name, labels_name = layers[0].name, layer.name
        job = self.training_job([volume], options, start_from=start, save=save,
                                class_names=volume.labels.class_names)
        self.plan.value = "planning: measuring a few steps on this machine..."
        self.next_button.enabled = False
        what = (f"Continuing {start.stem} on {labels_name}" if start is not None
                else f"Training on {labels_name}")
        return JobStart(job, text=what, on_done=lambda result: self._show(result, scan_name))

    def show_plan(self, plan: PlanReady) -> None:
        self.plan.value = plan.summary

    def model_saved(self, path: Path) -> None:
        self.last_model = path  # Run now continues from it
        self._update_run_text()
        super().model_saved(path)

    def _show(self, result: Any, scan_name: str) -> None:
        self.last_result = result
        if result.model_path is not None:
            self.model_saved(result.model_path)
        self.suggestions = list(result.suggestions)
        self.next_button.enabled = bool(self.suggestions)
        if self.suggestions:
            self.next_button.tooltip = f"Go to {self.suggestions[0].describe()}"
        if result.mask is None:
            self.present(outcome=result.summary())
            return
        name = (result.model_path.stem if result.model_path
                else "from your annotation" if result.annotation is not None else "model")
        mask: LabelMap = result.mask
        data = label_layer_data(mask, name=unique_layer_name(self.viewer, f"{scan_name} [{name}]"),
                                metadata={MODEL_KEY: str(result.model_path or "")})
        self.present(lambda: add_layer_data(self.viewer, data), outcome=result.summary())

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


def _default_budget() -> int:
    """120 s on a CPU, 30 s on a GPU (the issue's defaults)."""
    from napari_medseg.training.plan import DEFAULT_BUDGET_S

    try:
        import torch

        gpu = torch.cuda.is_available()
    except ImportError:  # pragma: no cover - torch is a dependency
        gpu = False
    return int(DEFAULT_BUDGET_S["gpu" if gpu else "cpu"])
