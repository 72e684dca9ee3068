"""Sliding-window tiling: window positions, Gaussian importance map, streaming slabs.

Windows overlap and their outputs are blended with a Gaussian importance map (the overlap-tile
idea of U-Net, weighted as in nnU-Net and MONAI: sigma = 1/8 of the window, normalised to a
maximum of 1, never zero).  :class:`SlabAccumulator` keeps the blended scores only for the
band of one window's depth along the *slab axis*; planes that no later window can touch are
final, so they are reduced (argmax) into the label map and the band moves on.  Peak memory is
one slab of scores instead of the whole volume.
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Iterator, Sequence
from dataclasses import dataclass

import numpy as np
import torch


def window_starts(size: int, window: int, overlap: float) -> list[int]:
    """Start offsets of windows of ``window`` voxels covering ``size`` with ``overlap`` (0-1).

    Evenly spaced from 0 to ``size - window`` with a step of at most ``window * (1 - overlap)``
    (nnU-Net's scheme: the last window ends at the border, none sticks out).
    """
    if window >= size:
        return [0]
    step = max(1, int(window * (1 - overlap)))
    n = math.ceil((size - window) / step) + 1
    if n == 1:
        return [0]
    spacing = (size - window) / (n - 1)
    return [round(i * spacing) for i in range(n)]


def gaussian_importance(window: Sequence[int], sigma_scale: float = 0.125) -> torch.Tensor:
    """Gaussian weights over a window, maximum 1, minimum the smallest positive value."""
    grids = []
    for n in window:
        sigma = max(n * sigma_scale, 1e-6)
        coords = torch.arange(n, dtype=torch.float64) - (n - 1) / 2
        grids.append(torch.exp(-0.5 * (coords / sigma) ** 2))
    weights = grids[0]
    for g in grids[1:]:
        weights = weights[..., None] * g
    weights = weights / weights.max()
    positive = weights[weights > 0]
    weights = torch.clamp(weights, min=float(positive.min()) if positive.numel() else 1.0)
    return weights.to(torch.float32)


@dataclass(frozen=True)
class Tile:
    """One window: its start per axis and its (clipped) size per axis."""

    start: tuple[int, ...]
    size: tuple[int, ...]

    def slices(self) -> tuple[slice, ...]:
        return tuple(slice(s, s + n) for s, n in zip(self.start, self.size, strict=True))


@dataclass(frozen=True)
class TilePlan:
    """All windows of a volume, grouped in slabs along ``slab_axis``."""

    shape: tuple[int, ...]
    window: tuple[int, ...]
    slab_axis: int
    starts: tuple[tuple[int, ...], ...]  # per axis

    @classmethod
    def build(
        cls,
        shape: Sequence[int],
        window: Sequence[int],
        overlap: float | Sequence[float],
        *,
        slab_axis: int | None = None,
    ) -> TilePlan:
        shape = tuple(int(s) for s in shape)
        window = tuple(min(int(w), s) for w, s in zip(window, shape, strict=True))
        overlaps = [overlap] * len(shape) if isinstance(overlap, float | int) else list(overlap)
        starts = tuple(
            tuple(window_starts(s, w, float(o)))
            for s, w, o in zip(shape, window, overlaps, strict=True)
        )
        if slab_axis is None:  # the axis with the most windows saves the most memory
            slab_axis = int(np.argmax([len(s) * 1e6 + sh for s, sh in zip(starts, shape,
                                                                       strict=True)]))
        return cls(shape=shape, window=window, slab_axis=slab_axis, starts=starts)

    @property
    def n_tiles(self) -> int:
        return math.prod(len(s) for s in self.starts)

    @property
    def slab_starts(self) -> tuple[int, ...]:
        return self.starts[self.slab_axis]

    def tiles_in_slab(self, slab_start: int) -> Iterator[Tile]:
        axes = [
            (slab_start,) if a == self.slab_axis else self.starts[a] for a in range(len(self.shape))
        ]
        for start in itertools.product(*axes):
            yield Tile(start=tuple(start), size=self.window)


class SlabAccumulator:
    """Blended scores for the band ``[base, base + window)`` along the slab axis."""

    def __init__(self, plan: TilePlan, channels: int, device: torch.device | str) -> None:
        self.plan = plan
        self.axis = plan.slab_axis
        band_shape = list(plan.shape)
        band_shape[self.axis] = plan.window[self.axis]
        self.scores = torch.zeros((channels, *band_shape), dtype=torch.float32, device=device)
        self.weights = torch.zeros(band_shape, dtype=torch.float32, device=device)
        self.importance = gaussian_importance(plan.window).to(device)
        self.base = 0

    def add(self, tile: Tile, scores: torch.Tensor) -> None:
        """Add the ``(C, *window)`` scores of one tile, weighted by the importance map."""
        index = list(tile.slices())
        index[self.axis] = slice(tile.start[self.axis] - self.base,
                                 tile.start[self.axis] - self.base + tile.size[self.axis])
        idx = tuple(index)
        # in place: no window-sized temporary (addcmul_ = scores * importance added)
        self.scores[(slice(None), *idx)].addcmul_(scores.to(self.scores.device), self.importance)
        self.weights[idx] += self.importance

    def done(self, end: int) -> tuple[torch.Tensor, torch.Tensor]:
        """Views of the scores and weights of the final planes ``[base, end)``; read them
        before :meth:`advance` (no copy is made)."""
        take = [slice(None)] * self.weights.ndim
        take[self.axis] = slice(0, end - self.base)
        return self.scores[(slice(None), *take)], self.weights[tuple(take)]

    def advance(self, end: int) -> None:
        """Move the band to start at ``end``: the planes after ``end`` shift to the front
        (copied in place when the two regions do not overlap), the rest is zeroed."""
        n = end - self.base
        depth = self.weights.shape[self.axis]
        keep = depth - n
        if keep > 0:
            src = [slice(None)] * self.weights.ndim
            dst = [slice(None)] * self.weights.ndim
            src[self.axis] = slice(n, depth)
            dst[self.axis] = slice(0, keep)
            for buffer, lead in ((self.scores, (slice(None),)), (self.weights, ())):
                source = buffer[(*lead, *src)]
                if keep > n:  # overlapping regions: copy through a temporary
                    source = source.clone()
                buffer[(*lead, *dst)].copy_(source)
        tail = [slice(None)] * self.weights.ndim
        tail[self.axis] = slice(max(keep, 0), depth)
        self.scores[(slice(None), *tail)] = 0
        self.weights[tuple(tail)] = 0
        self.base = end

    def finish(self, end: int) -> tuple[torch.Tensor, torch.Tensor]:
        """Copies of the scores and weights of planes ``[base, end)``, then :meth:`advance`."""
        scores, weights = self.done(end)
        scores, weights = scores.clone(), weights.clone()
        self.advance(end)
        return scores, weights
