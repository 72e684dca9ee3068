"""The box of the scan the engine works in: around the prompts, grown when the object reaches
its border (the whole object comes back, never a cube of it)."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

#: Margin around the prompts (mm in each direction; at least MIN_MARGIN voxels).
MARGIN_MM = 30.0
MIN_MARGIN = 3
#: How much a region grows (mm per side) when the object touches its border.
GROW_MM = 30.0


@dataclass(frozen=True)
class Region:
    """A box of voxel indices ``[start, stop)`` per axis, in array order ``(Z, Y, X)``."""

    start: tuple[int, ...]
    stop: tuple[int, ...]

    @property
    def slices(self) -> tuple[slice, ...]:
        return tuple(slice(a, b) for a, b in zip(self.start, self.stop, strict=True))

    @property
    def shape(self) -> tuple[int, ...]:
        return tuple(b - a for a, b in zip(self.start, self.stop, strict=True))

    @property
    def size(self) -> int:
        return int(np.prod(self.shape))

    def union(self, other: Region) -> Region:
        return Region(tuple(min(a, b) for a, b in zip(self.start, other.start, strict=True)),
                      tuple(max(a, b) for a, b in zip(self.stop, other.stop, strict=True)))

    def place(self, mask: npt.NDArray[np.bool_], source: Region) -> npt.NDArray[np.bool_]:
        """``mask`` (lying in ``source``) on this region's grid; outside ``source``: False."""
        out = np.zeros(self.shape, bool)
        lo = np.maximum(source.start, self.start)
        hi = np.minimum(source.stop, self.stop)
        if np.any(hi <= lo):
            return out
        dst = tuple(slice(int(a - t), int(b - t))
                    for a, b, t in zip(lo, hi, self.start, strict=True))
        src = tuple(slice(int(a - r), int(b - r))
                    for a, b, r in zip(lo, hi, source.start, strict=True))
        out[dst] = mask[src]
        return out

    def contains(self, other: Region) -> bool:
        return all(a <= c and d <= b for a, b, c, d in
                   zip(self.start, self.stop, other.start, other.stop, strict=True))

    @classmethod
    def around(cls, points: npt.NDArray[np.integer], shape: Sequence[int],
               spacing: Sequence[float], *, margin_mm: float = MARGIN_MM) -> Region:
        """The box around ``points`` (``(N, D)`` voxel indices) with a margin in mm."""
        margin = margin_voxels(spacing, margin_mm)
        lo = np.maximum(points.min(axis=0) - margin, 0)
        hi = np.minimum(points.max(axis=0) + margin + 1, np.asarray(shape))
        return cls(tuple(int(v) for v in lo), tuple(int(v) for v in hi))

    def grown(self, touching: Sequence[tuple[bool, bool]], shape: Sequence[int],
              spacing: Sequence[float]) -> Region:
        """This region grown on the sides in ``touching`` (``(low, high)`` per axis)."""
        step = margin_voxels(spacing, GROW_MM)
        start = [max(a - (s if low else 0), 0)
                 for a, s, (low, _) in zip(self.start, step, touching, strict=True)]
        stop = [min(b + (s if high else 0), n)
                for b, s, n, (_, high) in zip(self.stop, step, shape, touching, strict=True)]
        return Region(tuple(int(v) for v in start), tuple(int(v) for v in stop))


def margin_voxels(spacing: Sequence[float], margin_mm: float) -> npt.NDArray[np.int64]:
    return np.maximum(np.ceil(margin_mm / np.asarray(spacing, float)), MIN_MARGIN).astype(int)


def touching_border(mask: npt.NDArray[np.bool_], region: Region,
                    shape: Sequence[int]) -> list[tuple[bool, bool]]:
    """Per axis, whether ``mask`` (the region's crop) reaches the region's low / high side
    where the scan goes on beyond it."""
    out = []
    for axis in range(mask.ndim):
        first = np.take(mask, 0, axis=axis).any() and region.start[axis] > 0
        last = np.take(mask, -1, axis=axis).any() and region.stop[axis] < shape[axis]
        out.append((bool(first), bool(last)))
    return out
