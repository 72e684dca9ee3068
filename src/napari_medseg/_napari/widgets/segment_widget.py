"""The Segment dock widget: pick scan layer(s) and a model, segment in the background.

Thin by design: it builds :class:`~napari_medseg.inference.PredictOptions` from its controls,
runs :meth:`Predictor.predict_job` through :class:`JobRunner` and turns the result into
layers.  Input layers are read once when Segment is pressed, so switching or editing layers
mid-run changes nothing; results never replace an existing layer.

The model defaults to the one trained for the selected scan's modality (a remembered model
is kept while it fits); model, device and the Advanced options are remembered between
sessions (:mod:`~napari_medseg._napari.settings`).  Ctrl+Shift+S segments, Ctrl+Shift+X
cancels, also while the canvas has focus.
"""

from __future__ import annotations

import functools
from collections.abc import Generator
from pathlib import Path
from typing import Any

import numpy as np
from magicgui.widgets import (
    CheckBox,
    ComboBox,
    Container,
    FileEdit,
    FloatSpinBox,
    LineEdit,
    SpinBox,
    create_widget,
)
from qtpy.QtWidgets import QVBoxLayout, QWidget
from superqt import QCollapsible

import napari
from napari_medseg._napari import shortcuts
from napari_medseg._napari.job_panel import JobPanel
from napari_medseg._napari.jobs import gui_friendly_threads
from napari_medseg._napari.label_records import segment_result_metadata
from napari_medseg._napari.layers import (
    MODALITY_KEY,
    geometry_kwargs,
    label_layer_data,
    scan_from_layer,
    unique_layer_name,
)
from napari_medseg._napari.notify import report, warn
from napari_medseg._napari.settings import WidgetSettings
from napari_medseg.errors import MedsegError
from napari_medseg.events import Event, Progress
from napari_medseg.inference import (
    PostprocessOptions,
    Prediction,
    PredictOptions,
    Predictor,
    list_checkpoints,
)
from napari_medseg.inference.catalog import CheckpointEntry, suggest_checkpoint
from napari_medseg.scan import Scan

FROM_FILE = "checkpoint file..."
#: Labels layer metadata: the checkpoint that made them (Fine-tune starts from it).
MODEL_KEY = "medseg_model"


def device_choices() -> list[str]:
    """``auto``, ``cpu`` and each CUDA device of this machine."""
    import torch

    choices = ["auto", "cpu"]
    if torch.cuda.is_available():
        choices += [f"cuda:{i}" for i in range(torch.cuda.device_count())]
    return choices


def model_for(modality: str, *, current: str = "") -> str | None:
    """The checkpoint (path) to choose for a scan of ``modality``: ``current`` while it was
    trained for that modality, else the first that was (starters first); ``None`` if none.

    Reads checkpoint headers only.
    """
    entries = list_checkpoints()
    chosen = [e for e in entries if str(e.path) == current]
    if chosen and suggest_checkpoint(modality, chosen) is not None:
        return current
    entry: CheckpointEntry | None = suggest_checkpoint(modality, entries)
    return str(entry.path) if entry is not None else None


#: The controls whose values are remembered between sessions (settings keys).
REMEMBERED = ("model", "model_file", "device", "tile", "overlap", "batch", "tta", "slice_axis",
              "probabilities", "largest", "fill_holes", "min_size")


class SegmentWidget(QWidget):
    """Segment the selected scan(s) with a checkpoint, without blocking the viewer."""

    def __init__(self, viewer: napari.viewer.Viewer) -> None:
        super().__init__()
        self.viewer = viewer
        self._predictors: dict[tuple[str, str], Predictor] = {}
        self.last_prediction: Prediction | None = None

        self.images = create_widget(annotation=list[napari.layers.Image], label="scan(s)")
        self.images.tooltip = "Image layer(s) to segment; several = the channels of the model"
        self.model = ComboBox(label="model", choices=self._model_choices,
                              tooltip="Starter models, your models folder, or a file")
        self.model_file = FileEdit(label="file", filter="*.safetensors", mode="r",
                                   tooltip="Checkpoint file (.safetensors)")
        self.model_file.line_edit.tooltip = "Path of a checkpoint file (.safetensors)"
        self.model_file.choose_btn.tooltip = "Browse for a checkpoint file"
        self.device = ComboBox(label="device", choices=device_choices(),
                               tooltip="auto = GPU when there is one, else CPU")
        self.main = Container(widgets=[self.images, self.model, self.model_file, self.device])

        self.tile = LineEdit(label="tile", value="",
                             tooltip="Window size in voxels, e.g. '96 96 96'; empty = model's")
        self.overlap = FloatSpinBox(label="overlap", value=0.5, min=0.0, max=0.9, step=0.05,
                                    tooltip="Fraction of a window shared with its neighbour")
        self.batch = SpinBox(label="batch", value=0, min=0, max=64,
                             tooltip="Windows per forward pass; 0 = planned from free memory "
                                     "(halved on out-of-memory)")
        self.tta = CheckBox(text="mirroring TTA", tooltip="Average over flipped inputs (slower)")
        self.slice_axis = ComboBox(label="2D slicing", choices=[("axial (0)", 0),
                                   ("coronal (1)", 1), ("sagittal (2)", 2)],
                                   tooltip="Axis along which a 2D model slices a 3D scan")
        self.probabilities = CheckBox(text="probability layer",
                                      tooltip="Also show the foreground probability")
        self.largest = CheckBox(text="largest component per class",
                                tooltip="Keep only the largest connected piece of each class")
        self.fill_holes = CheckBox(text="fill holes",
                                   tooltip="Fill cavities enclosed by a class, slice by slice")
        self.min_size = SpinBox(label="min size", value=0, min=0, max=10**7,
                                tooltip="Drop connected components smaller than this (voxels)")
        self.advanced = Container(widgets=[
            self.tile, self.overlap, self.batch, self.tta, self.slice_axis, self.probabilities,
            self.largest, self.fill_holes, self.min_size])
        fold = QCollapsible("Advanced")
        fold.toggleButton().setToolTip("Tiling, test-time augmentation and post-processing")
        fold.addWidget(self.advanced.native)

        self.panel = JobPanel("Segment", run_tooltip="Run the model (in the background)",
                              shortcut=shortcuts.SEGMENT,
                              idle_text="Choose the scan and a model, then press Segment")
        self.runner = self.panel.runner
        self.segment_button, self.cancel_button = self.panel.run_button, self.panel.cancel_button
        self.progress, self.status = self.panel.progress, self.panel.status

        layout = QVBoxLayout(self)
        layout.addWidget(self.main.native)
        layout.addWidget(fold)
        layout.addWidget(self.panel.native)
        layout.addStretch(1)

        self.segment_button.clicked.connect(self.segment)
        self.model.changed.connect(self._on_model)
        self.settings = WidgetSettings("segment")
        self.settings.bind({name: getattr(self, name) for name in REMEMBERED})
        self.images.changed.connect(self._describe_scan_rows)
        self.images.changed.connect(self._suggest_model)
        self._describe_scan_rows()
        self._on_model()
        shortcuts.bind(viewer, shortcuts.SEGMENT, self.segment)
        shortcuts.bind(viewer, shortcuts.CANCEL, self.panel.cancel, every=True)

    # ---------------------------------------------------------------- choices
    def reset_choices(self, *_: Any) -> None:
        """Refresh layer and model lists (napari calls this when layers change)."""
        self.main.reset_choices()
        if not self.images.value:
            images = [layer for layer in self.viewer.layers
                      if isinstance(layer, napari.layers.Image)]
            if images:
                self.images.value = [images[0]]
                self._suggest_model()

    def _describe_scan_rows(self, *_: Any) -> None:
        """The scan list grows a row (layer + remove button) per channel: tooltips for each."""
        plus = getattr(self.images, "btn_plus", None)
        if plus is not None:
            plus.tooltip = "Add a scan as another input channel (multi-channel models)"
        rows = [w for w in self.images if hasattr(w, "btn_minus")]
        for i, row in enumerate(rows):
            row.value_widget.tooltip = f"Image layer for input channel {i} of the model"
            row.btn_minus.tooltip = "Remove this scan from the input"

    def _model_choices(self, _widget: Any = None) -> list[tuple[str, str]]:
        entries = [(f"{e.name}{'' if e.builtin else ' (yours)'}", str(e.path))
                   for e in list_checkpoints()]
        return [*entries, (FROM_FILE, FROM_FILE)]

    def _suggest_model(self) -> None:
        """Pick the starter/user model trained for the selected scan's modality.

        The chosen model stays when it fits that modality too (a remembered fine-tuned
        version, say), and so does an explicit checkpoint file.
        """
        layers = list(self.images.value or [])
        if not layers or self.model.value == FROM_FILE:
            return
        suggested = model_for(layers[0].metadata.get(MODALITY_KEY, "unknown"),
                              current=str(self.model.value))
        if suggested is not None:
            self.model.value = suggested

    def _on_model(self) -> None:
        self.model_file.visible = self.model.value == FROM_FILE

    def refresh_models(self) -> None:
        """Re-read the model list (after a fine-tune saved a new version)."""
        self.model.reset_choices()

    def model_source(self) -> str:
        if self.model.value == FROM_FILE:
            return str(self.model_file.value)
        return str(self.model.value)

    # ---------------------------------------------------------------- options
    def options(self) -> PredictOptions:
        tile_text = self.tile.value.replace(",", " ").split()
        try:
            tile = tuple(int(t) for t in tile_text) if tile_text else None
        except ValueError as exc:
            msg = f"tile must be whole numbers such as '96 96 96', got {self.tile.value!r}"
            raise MedsegError(msg) from exc
        return PredictOptions(
            device=self.device.value,
            tile=tile,
            overlap=float(self.overlap.value),
            batch_size=int(self.batch.value) or None,
            tta=bool(self.tta.value),
            slice_axis=int(self.slice_axis.value),
            keep_probabilities=bool(self.probabilities.value),
            postprocess=PostprocessOptions(largest_component=bool(self.largest.value),
                                           fill_holes=bool(self.fill_holes.value),
                                           min_size=int(self.min_size.value)),
        )

    # ---------------------------------------------------------------- run
    def _predictor(self, source: str, device: str) -> Predictor:
        key = (source, device)
        if key not in self._predictors:  # a checkpoint is loaded once and reused
            self._predictors[key] = Predictor.load(source, device=device)
        return self._predictors[key]

    def _job(self, source: str, scans: list[Scan], options: PredictOptions
             ) -> Generator[Event, None, Prediction]:
        yield Progress(stage="load model", done=0, total=1, message="loading the model")
        predictor = self._predictor(source, options.device)
        with gui_friendly_threads():
            return (yield from predictor.predict_job(scans, options))

    def segment(self) -> None:
        """Start a run with the current choices (refused while one runs)."""
        if self.runner.running:
            warn("a segmentation is already running; wait for it or press Cancel")
            return
        layers = list(self.images.value or [])
        if not layers:
            warn("select the image layer(s) to segment")
            return
        try:
            scans = [scan_from_layer(layer) for layer in layers]
            options = self.options()
            source = self.model_source()
            if source in ("", ".", FROM_FILE):
                msg = "choose a model, or a checkpoint file"
                raise MedsegError(msg)
        except MedsegError as exc:
            report(exc)
            return
        names = (layers[0].name, Path(source).name.removesuffix(".safetensors"))
        modality = scans[0].modality
        what = names[0] if modality in ("", "unknown") else f"{names[0]} ({modality})"
        self.panel.start(
            self._job(source, scans, options),
            on_done=lambda result: self._add_result(result, names, source),
            context="segment",
            text=f"Segmenting {what} with {names[1]}",
        )

    def cancel(self) -> None:
        self.panel.cancel()

    def _add_result(self, result: Prediction, names: tuple[str, str], source: str = "") -> None:
        self.last_prediction = result
        data, kwargs, _ = label_layer_data(result.labels)
        kwargs["name"] = unique_layer_name(self.viewer, f"{names[0]} [{names[1]}]")
        kwargs["metadata"][MODEL_KEY] = source
        kwargs["metadata"].update(segment_result_metadata(  # scan, DICOM reference, record
            self.viewer, names[0], source, self.options(), result.labels))

        def add_probability(probabilities: np.ndarray) -> None:
            foreground = (1.0 - probabilities[0].astype(np.float32))
            geo = geometry_kwargs(result.labels.geometry)
            self.viewer.add_image(
                foreground, name=unique_layer_name(self.viewer, f"{kwargs['name']} probability"),
                colormap="magma", blending="additive", contrast_limits=(0.0, 1.0), **geo)

        def summary() -> None:
            counts = np.bincount(result.labels.array.ravel())
            found = sum(1 for i, n in enumerate(counts) if i and n)
            self.panel.done(f"{found} class(es) found by {names[1]} on {result.device}")

        # one layer per event-loop turn: the window repaints between napari's layer additions
        steps = [lambda: self.viewer.add_labels(data, **kwargs)]
        if result.probabilities is not None:
            steps.append(functools.partial(add_probability, result.probabilities))
        self.panel.in_turns(*steps, summary)
