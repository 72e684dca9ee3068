"""Mouse clicks, drawn shapes and painted scribbles on the Interactive tab's layers, turned
into the session's prompts (voxel indices of the scan) and handed to a submit function."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np
from magicgui.widgets import PushButton

from napari_medseg._napari.interactive_layers import (
    SCRIBBLE_IN,
    SCRIBBLE_OUT,
    PromptLayers,
    painted_voxels,
    ray_voxel,
    shape_voxels,
    to_voxel,
)
from napari_medseg._napari.interactive_worker import Op
from napari_medseg._napari.notify import warn

POSITIVE_RGBA, NEGATIVE_RGBA = (0.0, 1.0, 0.0, 1.0), (1.0, 0.0, 1.0, 1.0)


class PromptInput:
    """Listens to one scan's prompt layers and the viewer's mouse; ``submit`` gets each
    prompt as an operation on the session."""

    def __init__(self, viewer: Any, scan_layer: Any, layers: PromptLayers,
                 submit: Callable[[Op], None]) -> None:
        self.viewer, self.scan_layer, self.layers, self.submit = (viewer, scan_layer, layers,
                                                                  submit)
        layers.shapes.events.data.connect(self.on_shape)
        layers.scribbles.events.paint.connect(self.on_scribble)
        viewer.mouse_drag_callbacks.append(self.on_mouse)
        viewer.layers.selection.active = layers.clicks
        layers.clicks.mode = "pan_zoom"

    def close(self) -> None:
        if self.on_mouse in self.viewer.mouse_drag_callbacks:
            self.viewer.mouse_drag_callbacks.remove(self.on_mouse)

    def listening(self) -> bool:
        """Clicks are prompts while the clicks or preview layer is active and panning (not
        drawing or painting)."""
        active = self.viewer.layers.selection.active
        return (active is self.layers.clicks or active is self.layers.preview) and (
            active.mode == "pan_zoom")

    def on_mouse(self, viewer: Any, event: Any) -> Any:
        if not self.listening():
            return
        dragged = False
        yield
        while event.type == "mouse_move":
            dragged = True
            yield
        if not dragged:  # a drag pans; a click is a prompt
            negative = event.button == 2 or "Control" in event.modifiers
            self.click(event.position, positive=not negative, event=event)

    def click(self, world: Any, *, positive: bool = True, event: Any = None) -> None:
        """A click at world position ``world``: shown at once, then queued."""
        if self.scan_layer not in self.viewer.layers:
            warn("the scan layer was removed; choose a scan and press Start again")
            return
        three_d = event is not None and self.viewer.dims.ndisplay == 3
        voxel = (ray_voxel(self.scan_layer, event) if three_d
                 else to_voxel(self.scan_layer, world))
        if voxel is None:
            warn("that click is outside the scan; click on the scan")
            return
        clicks = self.layers.clicks
        clicks.add(np.asarray(voxel, float)[None])  # the layer lies on the scan's grid
        clicks.face_color[-1] = POSITIVE_RGBA if positive else NEGATIVE_RGBA
        clicks.refresh()
        self.submit(lambda s: s.add_point(voxel, positive=positive))

    def on_shape(self, event: Any) -> None:
        shapes = self.layers.shapes
        if getattr(event, "action", "added") != "added" or not len(shapes.data):
            return
        voxels = shape_voxels(self.scan_layer, shapes, np.asarray(shapes.data[-1]))
        if shapes.shape_type[-1] == "rectangle":
            a, b = voxels.min(axis=0), voxels.max(axis=0)
            self.submit(lambda s: s.add_box(tuple(a), tuple(b)))
        else:
            self.submit(lambda s: s.add_lasso([tuple(v) for v in voxels]))

    def on_scribble(self, event: Any) -> None:
        for atom in event.value:
            value, voxels = painted_voxels(atom, self.layers.scribbles.data.shape)
            if value in (SCRIBBLE_IN, SCRIBBLE_OUT) and voxels:
                positive = value == SCRIBBLE_IN
                self.submit(lambda s, v=voxels, p=positive: s.add_scribble(v, positive=p,
                                                                           joined=False))

    def clear(self) -> None:
        """Empty the prompt layers (the next object)."""
        self.layers.clicks.data = np.zeros((0, self.layers.clicks.ndim))
        self.layers.shapes.data = []
        self.layers.scribbles.data = np.zeros_like(self.layers.scribbles.data)


def button(text: str, tooltip: str, action: Callable[[], Any]) -> PushButton:
    """A push button with its tooltip, calling ``action``."""
    button = PushButton(text=text, tooltip=tooltip)
    button.clicked.connect(action)
    return button


def key_action(action: Callable[[], Any]) -> Callable[[Any], None]:
    """``action`` as a napari key binding of a layer (napari passes the layer)."""
    def on_key(_layer: Any) -> None:
        action()

    on_key.__name__ = f"napari_medseg_{getattr(action, '__name__', 'action')}"
    return on_key
