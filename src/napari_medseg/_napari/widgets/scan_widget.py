"""The Scan dock widget: geometry of the selected scan and display presets by modality."""

from __future__ import annotations

from magicgui.widgets import ComboBox, Container, Label, create_widget

import napari
from napari_medseg._napari.layers import MODALITY_KEY, geometry_from_layer_meta, layer_meta
from napari_medseg._napari.notify import report
from napari_medseg.display import contrast_limits, presets_for
from napari_medseg.errors import MedsegError


class ScanWidget(Container):
    """Shows where the selected image lies in space and applies intensity presets."""

    def __init__(self, viewer: napari.viewer.Viewer) -> None:
        super().__init__(labels=True)
        self._viewer = viewer
        self.layer = create_widget(annotation=napari.layers.Image, label="scan")
        self.layer.tooltip = "Image layer to describe and window"
        self.preset = ComboBox(label="display", choices=self._preset_choices,
                               tooltip="Intensity window preset for the scan's modality "
                                       "(CT windows in HU, percentiles otherwise)")
        self.info = Label(value="")
        self.info.native.setWordWrap(True)
        self.extend([self.layer, self.preset, self.info])
        self.layer.changed.connect(self._on_layer)
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
        if layer is None:
            self.info.value = "open a scan (File > Open, or a DICOM folder)"
            return
        modality = layer.metadata.get(MODALITY_KEY, "unknown")
        try:
            geometry = geometry_from_layer_meta(layer_meta(layer), layer.ndim)
        except MedsegError as exc:
            report(exc, context="scan geometry")
            self.info.value = f"{modality}, shape {layer.data.shape}: geometry unknown"
            return
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
        try:
            layer.contrast_limits = contrast_limits(layer.data, self.preset.value)
        except (MedsegError, KeyError, ValueError) as exc:
            report(exc, context="display preset")
