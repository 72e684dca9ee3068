"""The Scan dock widget: geometry and modality of the selected scan, display presets.

The modality shown is the one read from the scan's headers, name or intensities
(:mod:`napari_medseg.io.modality`), with how it was decided; choosing another one sets the
layer's ``medseg_modality`` metadata, which Segment and the fit check then use.
"""

from __future__ import annotations

from magicgui.widgets import ComboBox, Container, create_widget

import napari
from napari_medseg._napari.layers import (
    MODALITY_KEY,
    MODALITY_REASON_KEY,
    MR_CONTRAST_KEY,
    geometry_from_layer_meta,
    layer_meta,
    set_layer_modality,
)
from napari_medseg._napari.notify import report
from napari_medseg._napari.wrapping_label import WrappingLabel
from napari_medseg.display import contrast_limits, presets_for
from napari_medseg.errors import MedsegError
from napari_medseg.scan import MODALITIES

#: What ``medseg_modality_reason`` says after a person chose the modality here.
CHOSEN_HERE = "set on the Scan tab"


class ScanWidget(Container):
    """Shows where the selected image lies in space and applies intensity presets."""

    def __init__(self, viewer: napari.viewer.Viewer) -> None:
        super().__init__(labels=True)
        self._viewer = viewer
        self.layer = create_widget(annotation=napari.layers.Image, label="scan")
        self.layer.tooltip = "Image layer to describe and window"
        self.modality = ComboBox(label="modality", choices=list(MODALITIES),
                                 tooltip="The scan's modality, read from its header, name or "
                                         "intensities; choose another if it is wrong (Segment "
                                         "and the model-fit check use it)")
        self.preset = ComboBox(label="display", choices=self._preset_choices,
                               tooltip="Intensity window preset for the scan's modality "
                                       "(CT windows in HU, percentiles otherwise)")
        self.info = WrappingLabel()  # a long file name in the modality's reason wraps
        self.extend([self.layer, self.modality, self.preset, self.info])
        self._showing = False  # True while the controls follow the selected layer
        self.layer.changed.connect(self._on_layer)
        self.modality.changed.connect(self._on_modality)
        self.preset.changed.connect(self._apply_preset)
        self._on_layer()

    def _preset_choices(self, _widget: object = None) -> list[str]:
        """The presets of the selected scan's modality (re-read whenever napari refreshes
        the choices, so a refresh keeps them)."""
        layer = self.layer.value
        return presets_for(layer.metadata.get(MODALITY_KEY, "unknown")) if layer else []

    def _on_layer(self) -> None:
        layer = self.layer.value
        self.preset.reset_choices()
        self.modality.enabled = layer is not None
        if layer is None:
            self.info.value = "open a scan (File > Open, or a DICOM folder)"
            return
        modality = layer.metadata.get(MODALITY_KEY, "unknown")
        self._showing = True
        try:
            self.modality.value = modality if modality in MODALITIES else "unknown"
        finally:
            self._showing = False
        contrast = layer.metadata.get(MR_CONTRAST_KEY)
        what = f"{modality} {contrast}" if contrast and modality == "MR" else modality
        how = layer.metadata.get(MODALITY_REASON_KEY)
        what += f" ({how})" if how else ""
        try:
            geometry = geometry_from_layer_meta(layer_meta(layer), layer.ndim)
        except MedsegError as exc:
            report(exc, context="scan geometry")
            self.info.value = f"{what}, shape {layer.data.shape}: geometry unknown"
            return
        self.info.value = (
            f"{what}\nshape {layer.data.shape}, {layer.data.dtype}\n"
            f"spacing {tuple(round(s, 4) for s in geometry.spacing)} mm\n"
            f"origin {tuple(round(o, 2) for o in geometry.origin)} mm (LPS z,y,x)"
            + ("" if geometry.is_axis_aligned else "\noblique / flipped direction")
        )

    def _on_modality(self) -> None:
        """A person chose the modality: it becomes the layer's, and the presets follow."""
        layer = self.layer.value
        if self._showing or layer is None:
            return
        if self.modality.value == layer.metadata.get(MODALITY_KEY, "unknown"):
            return
        set_layer_modality(layer, self.modality.value, reason=CHOSEN_HERE)
        self._on_layer()

    def _apply_preset(self) -> None:
        layer = self.layer.value
        if layer is None or not self.preset.value:
            return
        try:
            layer.contrast_limits = contrast_limits(layer.data, self.preset.value)
        except (MedsegError, KeyError, ValueError) as exc:
            report(exc, context="display preset")
