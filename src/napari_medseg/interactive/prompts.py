"""The prompts a person gives, in scan voxel indices ``(Z, Y, X)`` (or ``(Y, X)``), and how
each becomes seeds in a crop."""

from __future__ import annotations

import itertools
from dataclasses import dataclass, field

import numpy as np
import numpy.typing as npt
from scipy import ndimage

from napari_medseg.interactive.region import Region


@dataclass(frozen=True)
class Point:
    """A click: inside the object (``positive``) or not."""

    at: tuple[int, ...]
    positive: bool = True

    def points(self) -> npt.NDArray[np.int64]:
        return np.asarray([self.at], np.int64)


@dataclass(frozen=True)
class Scribble:
    """A stroke through the object (or the background): consecutive voxels joined by lines."""

    path: tuple[tuple[int, ...], ...]
    positive: bool = True
    joined: bool = True  # False: the voxels of a painted stroke, taken as they are

    def points(self) -> npt.NDArray[np.int64]:
        return np.asarray(self.path, np.int64)

    def voxels(self) -> npt.NDArray[np.int64]:
        """Every voxel on the polyline (``(N, D)``)."""
        pts = self.points()
        if not self.joined:
            return pts
        out = [pts[:1]]
        for a, b in itertools.pairwise(pts):
            n = int(np.abs(b - a).max()) + 1
            line = np.rint(np.linspace(a, b, n)).astype(np.int64)
            out.append(line)
        return np.unique(np.concatenate(out), axis=0)


@dataclass(frozen=True)
class Box:
    """A box around the object: two opposite corners. A box flat along one axis (drawn on one
    slice) bounds the object on that slice; a 3D box bounds it everywhere."""

    a: tuple[int, ...]
    b: tuple[int, ...]

    def points(self) -> npt.NDArray[np.int64]:
        return np.asarray([self.a, self.b], np.int64)

    @property
    def low(self) -> npt.NDArray[np.int64]:
        return np.minimum(self.a, self.b)

    @property
    def high(self) -> npt.NDArray[np.int64]:
        return np.maximum(self.a, self.b)

    @property
    def flat_axis(self) -> int | None:
        flat = [i for i, (x, y) in enumerate(zip(self.a, self.b, strict=True)) if x == y]
        return flat[0] if len(flat) == 1 and len(self.a) == 3 else None

    @property
    def centre(self) -> tuple[int, ...]:
        return tuple(int(v) for v in (self.low + self.high) // 2)


@dataclass(frozen=True)
class Lasso:
    """A closed outline of the object drawn on one slice (vertices in voxel indices)."""

    outline: tuple[tuple[int, ...], ...]

    def points(self) -> npt.NDArray[np.int64]:
        return np.asarray(self.outline, np.int64)

    @property
    def axis(self) -> int | None:
        pts = self.points()
        if pts.shape[1] == 2:
            return None
        flat = [i for i in range(3) if np.all(pts[:, i] == pts[0, i])]
        return flat[0] if flat else None


@dataclass(frozen=True, eq=False)
class MaskPrompt:
    """An existing mask to refine (a starter's, a painted one, an earlier object)."""

    region: Region
    mask: npt.NDArray[np.bool_] = field(repr=False)

    def points(self) -> npt.NDArray[np.int64]:
        return np.asarray([self.region.start, np.asarray(self.region.stop) - 1], np.int64)


Prompt = Point | Scribble | Box | Lasso | MaskPrompt


def polygon_mask(outline: npt.NDArray[np.int64], shape: tuple[int, int]
                 ) -> npt.NDArray[np.bool_]:
    """Pixels inside (or on) a polygon of ``(N, 2)`` vertices on a ``shape`` plane (the
    outline drawn edge by edge: skimage's ``polygon_perimeter`` would need matplotlib)."""
    from skimage.draw import line, polygon

    out = np.zeros(shape, bool)
    rr, cc = polygon(outline[:, 0], outline[:, 1], shape)
    out[rr, cc] = True
    vertices = np.round(np.asarray(outline)).astype(np.int64)
    for (r0, c0), (r1, c1) in zip(vertices, np.roll(vertices, -1, axis=0), strict=True):
        rr, cc = line(int(r0), int(c0), int(r1), int(c1))
        inside = (rr >= 0) & (rr < shape[0]) & (cc >= 0) & (cc < shape[1])
        out[rr[inside], cc[inside]] = True
    return out


def _in(points: npt.NDArray[np.int64], region: Region) -> npt.NDArray[np.int64]:
    local = points - np.asarray(region.start)
    keep = np.all((local >= 0) & (local < np.asarray(region.shape)), axis=1)
    return local[keep]


Seeds = npt.NDArray[np.bool_]


def rasterise(prompts: list[Prompt], region: Region
              ) -> tuple[Seeds, Seeds, Seeds, Seeds, Seeds | None]:
    """``(positive, negative, outside, hint, mask)`` seed maps of ``prompts`` in ``region``."""
    crop = region.shape
    pos = np.zeros(crop, bool)
    neg = np.zeros(crop, bool)
    outside = np.zeros(crop, bool)
    hint = np.zeros(crop, bool)
    mask: npt.NDArray[np.bool_] | None = None
    start = np.asarray(region.start)
    for prompt in prompts:
        if isinstance(prompt, Point | Scribble):
            pts = _in(prompt.voxels() if isinstance(prompt, Scribble) else prompt.points(),
                      region)
            target = pos if prompt.positive else neg
            target[tuple(pts.T)] = True
        elif isinstance(prompt, Box):
            lo, hi = prompt.low - start, prompt.high - start + 1
            inside = np.zeros(crop, bool)
            box = tuple(slice(max(int(a), 0), max(int(b), 0))
                        for a, b in zip(lo, hi, strict=True))
            inside[box] = True
            axis = prompt.flat_axis
            if axis is None:
                outside |= ~inside
            else:
                plane = [slice(None)] * len(crop)
                plane[axis] = slice(box[axis].start, box[axis].stop)
                outside[tuple(plane)] |= ~inside[tuple(plane)]
            hint |= inside
            pos[tuple(_in(np.asarray([prompt.centre]), region).T)] = True
        elif isinstance(prompt, Lasso):
            pts = prompt.points()
            axis = prompt.axis
            if axis is None:  # 2D scan
                inside = polygon_mask(pts - start, crop)  # type: ignore[arg-type]
                outside |= ~ndimage.binary_dilation(inside)
                pos |= ndimage.binary_erosion(inside, iterations=2)
                hint |= inside
                continue
            index = int(pts[0, axis]) - int(start[axis])
            if not 0 <= index < crop[axis]:
                continue
            in_plane = [i for i in range(3) if i != axis]
            plane_shape = (crop[in_plane[0]], crop[in_plane[1]])
            inside2 = polygon_mask(pts[:, in_plane] - start[in_plane], plane_shape)
            sl: list[slice | int] = [slice(None)] * 3
            sl[axis] = index
            outside[tuple(sl)] |= ~ndimage.binary_dilation(inside2)
            pos[tuple(sl)] |= ndimage.binary_erosion(inside2, iterations=2)
            hint[tuple(sl)] |= inside2
        elif isinstance(prompt, MaskPrompt):
            mask = region.place(prompt.mask, prompt.region)
    return pos, neg, outside, hint, mask
