"""The Segment tab: pick scan layer(s) and a model, segment in the background.

Thin by design: it turns its layers and controls into
:class:`~napari_medseg.inference.segment.SegmentOptions` (the Advanced controls are built
from :class:`~napari_medseg.inference.PredictOptions`, as the CLI's flags are), runs the core
:func:`~napari_medseg.inference.segment.segment_job` and turns the prediction into layers.
Input layers are read once when Segment is pressed, so switching or editing layers mid-run
changes nothing; results never replace an existing layer.  The labels layer carries the
scan's file, its DICOM reference (it can be saved as DICOM-SEG) and the run's provenance
record, which the job builds in the worker (the scan is hashed there, not on the GUI thread).

The model defaults to the one trained for the selected scan's modality (a remembered model
is kept while it fits); model, device and the Advanced options are remembered between
sessions (:mod:`~napari_medseg._napari.settings`).  Ctrl+Shift+S segments, Ctrl+Shift+X
cancels, also while the canvas has focus.
"""

from __future__ import annotations

import functools
from collections.abc import Generator
from typing import Any

import numpy as np
from magicgui.widgets import ComboBox, Container, FileEdit, ListEdit

import napari
from napari_medseg._napari import shortcuts
from napari_medseg._napari.job_widget import JobStart, JobWidget, describe_channel_rows
from napari_medseg._napari.jobs import gui_friendly_threads
from napari_medseg._napari.label_records import SEGMENT_WIDGET, segment_result_metadata
from napari_medseg._napari.layers import (
    FIT_KEY,
    MODALITY_KEY,
    MODEL_KEY,
    add_layer_data,
    is_derived,
    label_layer_data,
    scan_from_layer,
    scan_layer_data,
    unique_layer_name,
)
from napari_medseg._napari.model_choice import FROM_FILE, device_choices, model_choices, model_for
from napari_medseg._napari.notify import warn
from napari_medseg._napari.options_form import option_controls, options_from_controls
from napari_medseg.errors import MedsegError
from napari_medseg.events import Event
from napari_medseg.inference import Prediction
from napari_medseg.inference.segment import PredictorCache, SegmentOptions, segment_job
from napari_medseg.scan import Scan

__all__ = ["FROM_FILE", "MODEL_KEY", "SegmentWidget", "device_choices", "model_for"]

#: The controls whose values are remembered between sessions (settings keys = attributes).
REMEMBERED = ("model", "model_file", "device", "tile", "overlap", "batch", "tta", "slice_axis",
              "probabilities", "largest", "fill_holes", "min_size", "context_slices",
              "resample")


class SegmentWidget(JobWidget):
    """Segment the selected scan(s) with a checkpoint, without blocking the viewer."""

    section = "segment"
    run_text = "Segment"
    run_tooltip = "Run the model (in the background)"
    idle_text = "Choose the scan and a model, then press Segment"
    shortcut = shortcuts.SEGMENT
    busy_text = "a segmentation"

    def __init__(self, viewer: napari.viewer.Viewer) -> None:
        super().__init__(viewer)
        self.predictors = PredictorCache()
        #: how the model fits the scan of the last run (in the result layer's metadata)
        self.last_prediction: Prediction | None = None

        self.images = ListEdit(annotation=list[napari.layers.Image], label="scan(s)",
                               options={"choices": self.layer_choices(napari.layers.Image)},
                               tooltip="Image layer(s) to segment; several = the channels of "
                                       "the model")
        self.model = ComboBox(label="model", choices=self._model_choices,
                              tooltip="Starter models, your models folder, or a file")
        self.model_file = FileEdit(label="file", filter="*.safetensors", mode="r",
                                   tooltip="Checkpoint file (.safetensors)")
        self.model_file.line_edit.tooltip = "Path of a checkpoint file (.safetensors)"
        self.model_file.choose_btn.tooltip = "Browse for a checkpoint file"
        self.device = ComboBox(label="device", choices=device_choices(),
                               tooltip="auto = GPU when there is one, else CPU")
        self.main = Container(widgets=[self.images, self.model, self.model_file, self.device])

        # the Advanced controls: PredictOptions' GUI fields, in its order
        self.predict_controls = option_controls(SegmentOptions, skip=("device",))
        controls = self.predict_controls
        self.tile, self.overlap, self.batch = (controls["tile"], controls["overlap"],
                                               controls["batch_size"])
        self.tta, self.slice_axis = controls["tta"], controls["slice_axis"]
        self.context_slices, self.resample = controls["context_slices"], controls["resample"]
        self.probabilities = controls["keep_probabilities"]
        self.largest, self.fill_holes = controls["largest_component"], controls["fill_holes"]
        self.min_size = controls["min_size"]
        self.advanced = Container(widgets=list(controls.values()))
        self.add_controls(self.main)
        self.add_advanced(self.advanced,
                          tooltip="Tiling, test-time augmentation and post-processing")
        self.segment_button = self.run_button

        self.model.changed.connect(self._on_model)
        self.remember(*REMEMBERED)
        self.images.changed.connect(self._describe_scan_rows)
        self.images.changed.connect(self._suggest_model)
        self._describe_scan_rows()
        self._on_model()
        self.reset_choices()

    # ---------------------------------------------------------------- choices
    def reset_choices(self, *_: Any) -> None:
        """Refresh layer and model lists (on every change of the layer list).

        With no scan chosen (or every chosen one gone), the first scan is chosen: an Image
        layer that is neither an overlay nor a result (a probability, a fused image...).
        """
        super().reset_choices()
        if not self.scans():
            scans = [layer for _name, layer in self.layer_choices(napari.layers.Image)()
                     if not is_derived(layer)]
            if scans:
                self.images.value = [scans[0]]
                self._suggest_model()

    def scans(self) -> list[napari.layers.Image]:
        """The chosen Image layers, one per input channel, in order."""
        return [layer for layer in (self.images.value or []) if layer is not None]

    def _describe_scan_rows(self, *_: Any) -> None:
        describe_channel_rows(self.images)

    def _model_choices(self, _widget: Any = None) -> list[tuple[str, str]]:
        return model_choices(with_file=True)

    def _suggest_model(self) -> None:
        """Pick the starter/user model trained for the selected scan's modality that fits it
        best.

        The chosen model stays when it fits that modality too (a remembered fine-tuned
        version, say), and so does an explicit checkpoint file.
        """
        layers = self.scans()
        if not layers or self.model.value == FROM_FILE:
            return
        suggested = model_for(layers[0].metadata.get(MODALITY_KEY, "unknown"),
                              current=str(self.model.value),
                              scan=lambda: scan_from_layer(layers[0]))
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
    def options(self) -> SegmentOptions:
        """The core job's options from the controls (what ``napari-medseg predict`` builds
        from its flags)."""
        source = self.model_source()
        if source in ("", ".", FROM_FILE):
            msg = "choose a model, or a checkpoint file"
            raise MedsegError(msg)
        return options_from_controls(SegmentOptions, self.predict_controls, models=(source,),
                                     device=self.device.value)

    # ---------------------------------------------------------------- run
    def _job(self, scans: list[Scan], options: SegmentOptions
             ) -> Generator[Event, None, Prediction]:
        with gui_friendly_threads():  # the fit check and the record (the scan's hash) run here
            return (yield from segment_job(scans, options, cache=self.predictors,
                                           made_by=SEGMENT_WIDGET))

    def segment(self) -> None:
        """Start a run with the current choices (refused while one runs)."""
        self.run()

    def prepare(self) -> JobStart | None:
        layers = self.scans()
        if not layers:
            warn("select the image layer(s) to segment")
            return None
        options = self.options()
        scans = [scan_from_layer(layer) for layer in layers]
        names = (layers[0].name, options.model_name)
        modality = scans[0].modality
        what = names[0] if modality in ("", "unknown") else f"{names[0]} ({modality})"
        return JobStart(self._job(scans, options),
                        text=f"Segmenting {what} with {names[1]}",
                        on_done=lambda result: self._add_result(result, names,
                                                                options.models[0], scans[0]))

    def _add_result(self, result: Prediction, names: tuple[str, str], source: str,
                    scan: Scan) -> None:
        """Add the result layers; ``scan``: the first input as read when the run started."""
        self.last_prediction = result
        name = unique_layer_name(self.viewer, f"{names[0]} [{names[1]}]")
        metadata = {MODEL_KEY: source,  # and the scan, its DICOM reference, the run's record
                    **segment_result_metadata(scan, result.provenance)}
        fit = result.fit[0] if result.fit else None
        if fit is not None:
            metadata[FIT_KEY] = fit.to_dict()
        labels = label_layer_data(result.labels, name=name, metadata=metadata)

        def add_probability(probabilities: np.ndarray) -> None:
            foreground = Scan(array=1.0 - probabilities[0].astype(np.float32),
                              geometry=result.labels.geometry)
            add_layer_data(self.viewer, scan_layer_data(
                foreground, name=unique_layer_name(self.viewer, f"{name} probability"),
                derived="probability", colormap="magma", blending="additive",
                contrast_limits=(0.0, 1.0)))

        # one layer per event-loop turn: the window repaints between napari's layer additions
        steps = [lambda: add_layer_data(self.viewer, labels)]
        if result.probabilities is not None:
            steps.append(functools.partial(add_probability, result.probabilities))
        counts = np.bincount(result.labels.array.ravel())
        found = sum(1 for i, n in enumerate(counts) if i and n)
        outcome = f"{found} class(es) found by {names[1]} on {result.device}"
        if fit is not None and not fit.fits:
            outcome += (f"; {names[1]} does not fit this scan "
                        f"({', '.join(sorted({f.rule for f in fit.warnings}))}): check the "
                        "result" + (f"; {fit.suggestion}" if fit.suggestion else ""))
        self.present(*steps, outcome=outcome)
