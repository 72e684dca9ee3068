"""The Interactive tab's layers and coordinates: prompt layers placed on the scan, clicks and
shapes in world mm turned into the scan's voxel indices.

Each prompt layer is named for what it holds and marked (:data:`PROMPT_KEY`), so no job lists
it as an input and the writer refuses to save it as labels.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
import numpy.typing as npt

import napari
from napari_medseg._napari.corrections import atom_new_value, atom_region, flat_indices
from napari_medseg._napari.layers import PROMPT_KEY

POSITIVE_COLOUR, NEGATIVE_COLOUR = "lime", "magenta"
#: Scribble layer values: 1 paints inside the object, 2 outside it.
SCRIBBLE_IN, SCRIBBLE_OUT = 1, 2


@dataclass
class PromptLayers:
    """The layers one scan's interactive work uses (made when first needed)."""

    clicks: Any
    shapes: Any
    scribbles: Any
    preview: Any

    def all(self) -> list[Any]:
        return [self.clicks, self.shapes, self.scribbles, self.preview]


def _placement(scan_layer: Any) -> dict[str, Any]:
    return {"scale": scan_layer.scale, "translate": scan_layer.translate,
            "affine": scan_layer.affine.affine_matrix, "units": scan_layer.units}


def make_prompt_layers(viewer: napari.viewer.Viewer, scan_layer: Any) -> PromptLayers:
    """Add the prompt layers of ``scan_layer`` (placed exactly on it) to ``viewer``; their
    names are short enough for napari's layer list at 1280 px."""
    place = _placement(scan_layer)
    shape = tuple(scan_layer.data.shape)
    preview = viewer.add_labels(np.zeros(shape, np.uint8), name="object preview (not saved)",
                                opacity=0.6, metadata={PROMPT_KEY: "object preview"}, **place)
    scribbles = viewer.add_labels(np.zeros(shape, np.uint8),
                                  name="scribbles (1 in, 2 out)", opacity=0.8,
                                  metadata={PROMPT_KEY: "scribbles"}, **place)
    scribbles.brush_size = 3
    shapes = viewer.add_shapes(name="boxes and outlines", edge_color="yellow",
                               face_color="transparent", edge_width=0.5, ndim=len(shape),
                               metadata={PROMPT_KEY: "boxes and outlines"}, **place)
    clicks = viewer.add_points(np.zeros((0, len(shape))), name="clicks (left in, right out)",
                               ndim=len(shape), size=4, border_width=0,
                               metadata={PROMPT_KEY: "clicks"}, **place)
    clicks.face_color_cycle = [POSITIVE_COLOUR, NEGATIVE_COLOUR]
    return PromptLayers(clicks=clicks, shapes=shapes, scribbles=scribbles, preview=preview)


def new_labels_layer(viewer: napari.viewer.Viewer, scan_layer: Any) -> Any:
    """An empty labels layer on the scan's grid (as napari's New labels button makes one)."""
    return viewer.add_labels(np.zeros(scan_layer.data.shape, np.uint16),
                             name=f"{scan_layer.name} objects", **_placement(scan_layer))


def show_voxel(viewer: napari.viewer.Viewer, scan_layer: Any, voxel: tuple[int, ...]) -> None:
    """Move the view to ``voxel`` of ``scan_layer``: its slice, centred."""
    world = scan_layer.data_to_world(voxel)
    point = list(viewer.dims.point)
    for axis in viewer.dims.not_displayed:
        point[axis] = float(world[axis - (viewer.dims.ndim - len(voxel))])
    viewer.dims.point = tuple(point)
    viewer.camera.center = tuple(world[-2:]) if viewer.dims.ndisplay == 2 else tuple(world)


def to_voxel(scan_layer: Any, world: Any) -> tuple[int, ...] | None:
    """The voxel of ``scan_layer`` at world position ``world`` (``None`` when outside)."""
    data = np.asarray(scan_layer.world_to_data(np.asarray(world, float)))
    data = data[-scan_layer.ndim:]
    index = tuple(round(float(v)) for v in data)
    if any(not 0 <= i < n for i, n in zip(index, scan_layer.data.shape, strict=True)):
        return None
    return index


def ray_voxel(scan_layer: Any, event: Any) -> tuple[int, ...] | None:
    """In a 3D view, the brightest voxel along the clicked ray (what a MIP shows there)."""
    near, far = scan_layer.get_ray_intersections(
        event.position, event.view_direction, event.dims_displayed, world=True)
    if near is None or far is None:
        return None
    near, far = np.asarray(near, float), np.asarray(far, float)
    steps = int(np.ceil(np.linalg.norm(far - near))) + 1
    points = np.rint(np.linspace(near, far, max(steps, 2))).astype(int)
    shape = np.asarray(scan_layer.data.shape)
    points = points[np.all((points >= 0) & (points < shape), axis=1)]
    if points.size == 0:
        return None
    values = np.asarray(scan_layer.data)[tuple(points.T)]
    return tuple(int(v) for v in points[int(np.argmax(values))])


def shape_voxels(scan_layer: Any, shapes_layer: Any, vertices: npt.NDArray[np.float64]
                 ) -> npt.NDArray[np.int64]:
    """A shape's vertices (the shapes layer's data coordinates) as scan voxel indices."""
    world = np.asarray([shapes_layer.data_to_world(v) for v in vertices])
    data = np.asarray([scan_layer.world_to_data(w) for w in world])[:, -scan_layer.ndim:]
    return np.clip(np.rint(data), 0, np.asarray(scan_layer.data.shape) - 1).astype(np.int64)


def painted_voxels(atom: Any, shape: tuple[int, ...]) -> tuple[int, list[tuple[int, ...]]]:
    """The value a brush history atom painted on a layer of ``shape``, and the voxels (the
    Correct tab's tracker reads atoms the same way)."""
    index, mask = atom_region(atom)
    flat = flat_indices(index, mask, shape)
    points = np.stack(np.unravel_index(flat, shape), axis=1)
    return int(np.max(atom_new_value(atom))), [tuple(int(v) for v in p) for p in points]


Write = tuple[Any, tuple[npt.NDArray[np.int64], ...], npt.NDArray[Any], int]


class ObjectWriter:
    """Accepted objects written into target labels through napari's Labels API (undoable
    there too), never over another object's voxels unless asked; undone and redone in step
    with the session."""

    def __init__(self) -> None:
        self.written: list[Write] = []
        self.undone: list[Write] = []
        self.values: list[npt.NDArray[Any]] = []  # what an undone write had put (for redo)

    def write(self, target: Any, region: Any, mask: npt.NDArray[np.bool_], value: int, *,
              replace: bool, refined: bool = False) -> tuple[int, int, int]:
        """Write ``mask`` (in ``region``) as ``value`` (0: the next free one); returns the
        value, the voxels written and the voxels of other objects left alone.  ``refined``:
        the object replaces the label ``value`` (its voxels outside ``mask`` are cleared)."""
        data = np.asarray(target.data)
        value = value or int(data.max()) + 1
        full = np.zeros(data.shape, bool)
        full[region.slices] = mask
        inside = full & ((data == 0) | (data == value) | replace)
        kept = int((full & ~inside).sum())
        new = np.where(inside, value, data)
        if refined:
            new = np.where((data == value) & ~full, 0, new)
        index = np.nonzero(new != data)
        old = data[index].copy()  # read before the layer is written
        self.written.append((target, index, old, value))
        self.undone.clear()
        self.values.clear()
        if index[0].size:
            target.data_setitem(index, new[index])
        return value, int(inside.sum()), kept

    def follow(self, before: int, after: int) -> None:
        """The session went from ``before`` to ``after`` accepted objects (undo / redo)."""
        if after < before and self.written:
            target, index, old, _value = entry = self.written.pop()
            self.undone.append(entry)
            self.values.append(np.asarray(target.data)[index].copy())
            target.data_setitem(index, old)
        elif after > before and self.undone:
            target, index, _old, _value = entry = self.undone.pop()
            self.written.append(entry)
            target.data_setitem(index, self.values.pop())
