"""The Scan dock widget: geometry of the selected scan and display presets by modality."""

from __future__ import annotations

from magicgui.widgets import ComboBox, Container, Label, create_widget

import napari
from napari_medseg._napari.layers import MODALITY_KEY, geometry_from_layer_meta, layer_meta
from napari_medseg.display import contrast_limits, presets_for


class ScanWidget(Container):
    """Shows where the selected image lies in space and applies intensity presets."""

    def __init__(self, viewer: napari.viewer.Viewer) -> None:
        super().__init__(labels=True)
        self._viewer = viewer
        self.layer = create_widget(annotation=napari.layers.Image, label="scan")
        self.layer.tooltip = "Image layer to describe and window"
        self.preset = ComboBox(label="display", choices=[], tooltip="Intensity window preset")
        self.info = Label(value="")
        self.info.native.setWordWrap(True)
        self.extend([self.layer, self.preset, self.info])
        self.layer.changed.connect(self._on_layer)
        self.preset.changed.connect(self._apply_preset)
        self._on_layer()

    def _on_layer(self) -> None:
        layer = self.layer.value
        if layer is None:
            self.preset.choices = []
            self.info.value = "open a scan (File > Open, or a DICOM folder)"
            return
        modality = layer.metadata.get(MODALITY_KEY, "unknown")
        self.preset.choices = presets_for(modality)
        geometry = geometry_from_layer_meta(layer_meta(layer), layer.ndim)
        self.info.value = (
            f"{modality}, shape {layer.data.shape}, {layer.data.dtype}\n"
            f"spacing {tuple(round(s, 4) for s in geometry.spacing)} mm\n"
            f"origin {tuple(round(o, 2) for o in geometry.origin)} mm (LPS z,y,x)"
            + ("" if geometry.is_axis_aligned else "\noblique / flipped direction")
        )

    def _apply_preset(self) -> None:
        layer = self.layer.value
        if layer is None or not self.preset.value:
            return
        layer.contrast_limits = contrast_limits(layer.data, self.preset.value)
