"""The Fuse tab: register a moving scan onto a fixed one and fuse them, in the background.

The work is the core's :func:`~napari_medseg.fusion.register_and_fuse_job` (what
``napari-medseg fuse`` runs); this tab turns layers and controls into its options and its
result into layers.  Results are new layers on the fixed scan's physical grid: the
registered moving scan (``hot`` for PET, additive blending over the fixed scan), the fused
image, and checkerboard / difference views to judge the alignment.  Layers are never
replaced.
Registration and fusion choices are remembered between sessions; Ctrl+Shift+X cancels.
"""

from __future__ import annotations

from typing import Any

from magicgui.widgets import ComboBox, Container, SpinBox

import napari
from napari_medseg._napari.job_widget import JobStart, JobWidget
from napari_medseg._napari.layers import (
    add_layer_data,
    is_derived,
    scan_from_layer,
    scan_layer_data,
    unique_layer_name,
)
from napari_medseg._napari.notify import warn
from napari_medseg.display import default_contrast_limits
from napari_medseg.errors import MedsegError
from napari_medseg.fusion import (
    FUSION_METHODS,
    INITIALISATIONS,
    NORMALISATIONS,
    REGISTRATION_KINDS,
    FuseResult,
    FusionOptions,
    RegisterFuseOptions,
    RegistrationOptions,
    register_and_fuse_job,
    suggest_pair,
)
from napari_medseg.scan import Scan

NO_FUSION = "none (register only)"

#: The controls whose values are remembered between sessions (settings keys).
REMEMBERED = ("kind", "method", "init", "levels", "detail_rule", "normalisation", "squares")


class FuseWidget(JobWidget):
    """Register and fuse two image layers without blocking the viewer."""

    section = "fuse"
    run_text = "Register and fuse"
    run_tooltip = ("Register the moving scan onto the fixed one, then fuse them "
                   "(in the background)")
    idle_text = "Choose a fixed and a moving scan, then press Register and fuse"
    busy_text = "a registration"

    def __init__(self, viewer: napari.viewer.Viewer) -> None:
        super().__init__(viewer)
        self.last_result: FuseResult | None = None
        self.fixed = self.layer_choice(napari.layers.Image, label="fixed",
                                       tooltip="Reference scan: results are placed on its grid")
        self.moving = self.layer_choice(napari.layers.Image, label="moving",
                                        tooltip="Scan to put onto the fixed scan (e.g. PET or "
                                                "T2)")
        self.kind = ComboBox(label="registration", choices=list(REGISTRATION_KINDS),
                             value="rigid",
                             tooltip="none: trust the headers; rigid/affine: mutual information; "
                                     "bspline: affine then deformable")
        self.method = ComboBox(label="fusion", choices=[*FUSION_METHODS, NO_FUSION],
                               value="weighted", tooltip="Pixel-level fusion rule")
        self.main = Container(widgets=[self.fixed, self.moving, self.kind, self.method])

        self.init = ComboBox(label="initialise", choices=list(INITIALISATIONS),
                             value="moments", tooltip="Start of the rigid stage")
        self.levels = SpinBox(label="levels", value=4, min=1, max=8,
                              tooltip="Pyramid / wavelet decomposition levels")
        self.detail_rule = ComboBox(label="detail rule", choices=["max", "average"],
                                    tooltip="Laplacian/wavelet detail coefficients")
        self.normalisation = ComboBox(label="normalisation", choices=list(NORMALISATIONS),
                                      value="percentile",
                                      tooltip="Per-scan intensity normalisation before fusing "
                                              "(percentile: 1-99 %)")
        self.squares = SpinBox(label="checkerboard", value=8, min=2, max=32,
                               tooltip="Blocks per axis of the checkerboard view")
        self.advanced = Container(widgets=[self.init, self.levels, self.detail_rule,
                                           self.normalisation, self.squares])
        self.add_controls(self.main)
        self.add_advanced(self.advanced,
                          tooltip="Registration start, pyramid levels, checkerboard")
        self.remember(*REMEMBERED)
        self.reset_choices()

    def reset_choices(self, *_: Any) -> None:
        """Refresh the layer lists (on every change of the layer list).

        While fixed and moving show the same layer (or one shows none), they become the two
        scans most worth registering (:func:`~napari_medseg.fusion.suggest_pair`: of one body
        region, different modalities preferred), results such as a fused image left out.
        """
        super().reset_choices()
        fixed, moving = self.fixed.value, self.moving.value
        if fixed is not None and moving is not None and fixed is not moving:
            return
        layers = [layer for _name, layer in self.layer_choices(napari.layers.Image)()
                  if not is_derived(layer)]
        try:
            pair = suggest_pair([scan_from_layer(layer) for layer in layers])
        except MedsegError:  # a layer not placed in space, an RGB picture: no suggestion
            pair = None
        if pair is not None:
            self.fixed.value, self.moving.value = layers[pair[0]], layers[pair[1]]

    def prepare(self) -> JobStart | None:
        fixed_layer, moving_layer = self.fixed.value, self.moving.value
        if fixed_layer is None or moving_layer is None or fixed_layer is moving_layer:
            warn("choose two different image layers: a fixed and a moving scan")
            return None
        fixed, moving = scan_from_layer(fixed_layer), scan_from_layer(moving_layer)
        return JobStart(
            register_and_fuse_job(fixed, moving, self.options()),
            text=f"Registering {moving_layer.name} onto {fixed_layer.name}",
            on_done=lambda r: self._add_layers(r, moving.modality, moving_layer.name))

    def options(self) -> RegisterFuseOptions:
        """The core job's options from the controls."""
        fusion = None if self.method.value == NO_FUSION else FusionOptions(
            method=self.method.value, levels=int(self.levels.value),
            detail_rule=self.detail_rule.value, normalisation=self.normalisation.value)
        return RegisterFuseOptions(
            registration=RegistrationOptions(kind=self.kind.value,
                                             initialisation=self.init.value),
            fusion=fusion, views=True, squares=int(self.squares.value))

    def _add_layers(self, result: FuseResult, modality: str, moving_name: str) -> None:
        self.last_result = result
        reg = result.registration
        # the tab always registers and asks for the views
        assert reg is not None
        assert result.checkerboard is not None
        assert result.difference is not None

        def add(scan: Scan, name: str, **display: Any) -> None:
            add_layer_data(self.viewer, scan_layer_data(
                scan, name=unique_layer_name(self.viewer, name), **display))

        # one layer per event-loop turn: the window repaints between napari's layer additions;
        # the registered scan shows over the fixed one (additive), the fused image and the
        # views start hidden so that nothing opaque covers it: tick one to compare
        steps = [lambda: add(
            result.resampled, f"{moving_name} registered", derived="registered",
            colormap="hot" if modality == "PT" else "magenta", blending="additive",
            contrast_limits=default_contrast_limits(result.resampled.array, modality))]
        if result.fused is not None:
            fused = result.fused
            steps.append(lambda: add(fused, "fused", derived="fused", visible=False))
        views = (result.checkerboard, result.difference)
        steps.append(lambda: add(views[0], "checkerboard", derived="checkerboard",
                                 visible=False))
        steps.append(lambda: add(views[1], "difference", derived="difference", colormap="bwr",
                                 contrast_limits=(-1.0, 1.0), visible=False))
        hidden = "fused, checkerboard" if result.fused is not None else "checkerboard"
        self.present(*steps, outcome=f"{reg.kind}, mutual information {reg.initial_metric:.3f} "
                                  f"-> {reg.final_metric:.3f} (lower is better); {hidden} and "
                                  "difference are hidden layers: show one to compare")
