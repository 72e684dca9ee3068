"""Shape-based interpolation of labels between two corrected slices.

For each class present on either slice, the signed distance to its outline (negative
inside, in voxels of the slice) is computed on both slices and blended linearly for every slice
in between (Raya & Udupa's shape-based interpolation); a voxel takes the class whose blended
distance is lowest among those that are <= 0, else background.  Only the slices strictly
between ``slice_a`` and ``slice_b`` change.
"""

from __future__ import annotations

import itertools
from collections.abc import Sequence
from typing import Any

import numpy as np
import numpy.typing as npt
from scipy import ndimage


def signed_distance(mask: npt.NDArray[np.bool_],
                    spacing: tuple[float, ...] | None = None) -> npt.NDArray[np.float64]:
    """Signed Euclidean distance to the mask's boundary: < 0 inside, > 0 outside (voxels or
    mm with ``spacing``). An empty mask gives +inf everywhere."""
    if not mask.any():
        return np.full(mask.shape, np.inf)
    outside = ndimage.distance_transform_edt(~mask, sampling=spacing)
    inside = ndimage.distance_transform_edt(mask, sampling=spacing)
    return np.asarray(outside, dtype=np.float64) - np.asarray(inside, dtype=np.float64)


def interpolate_between_slices(labels: npt.NDArray[Any], slice_a: int, slice_b: int,
                               axis: int = 0, *,
                               spacing: tuple[float, ...] | None = None) -> npt.NDArray[Any]:
    """A copy of ``labels`` whose slices strictly between ``slice_a`` and ``slice_b`` (along
    ``axis``) are interpolated from those two slices. ``spacing``: in-plane voxel size (mm)."""
    if labels.ndim != 3:
        msg = f"interpolation between slices needs a 3D label array, got shape {labels.shape}"
        raise ValueError(msg)
    n = labels.shape[axis]
    a, b = sorted((int(slice_a), int(slice_b)))
    if not (0 <= a < n and 0 <= b < n):
        msg = f"slices {slice_a} and {slice_b} are outside 0..{n - 1} along axis {axis}"
        raise ValueError(msg)
    out = labels.copy()
    if b - a < 2:
        return out
    first = np.take(labels, a, axis=axis)
    last = np.take(labels, b, axis=axis)
    classes = sorted(({int(v) for v in np.unique(first)} | {int(v) for v in np.unique(last)})
                     - {0})
    plane_spacing = None if spacing is None else tuple(
        s for i, s in enumerate(spacing) if i != axis)
    distances = [(signed_distance(first == k, plane_spacing),
                  signed_distance(last == k, plane_spacing)) for k in classes]
    for index in range(a + 1, b):
        t = (index - a) / (b - a)
        plane = np.zeros(first.shape, dtype=labels.dtype)
        best = np.zeros(first.shape)
        for k, (d0, d1) in zip(classes, distances, strict=True):
            with np.errstate(invalid="ignore"):
                if np.isinf(d0).all():  # class appears: grow from the other slice's shape
                    d = d1 + (1 - t) * (np.abs(d1).max() + 1)
                elif np.isinf(d1).all():
                    d = d0 + t * (np.abs(d0).max() + 1)
                else:
                    d = (1 - t) * d0 + t * d1
            take = (d <= 0) & (d < best)
            plane[take] = k
            best[take] = d[take]
        region = [slice(None)] * 3
        region[axis] = slice(index, index + 1)
        out[tuple(region)] = np.expand_dims(plane, axis)
    return out


def interpolate_slices(labels: npt.NDArray[Any], slices: Sequence[int], axis: int = 0, *,
                       spacing: tuple[float, ...] | None = None) -> npt.NDArray[Any]:
    """A copy of ``labels`` whose slices between consecutive annotated ``slices`` (along
    ``axis``) are interpolated from them; slices outside the first..last range are zero.

    The person's ``slices`` are kept as they are; this is the no-learning baseline a trained
    model must beat, and what :mod:`napari_medseg.inference.combine` may merge with it.
    """
    ordered = sorted({int(s) for s in slices})
    out = np.zeros_like(labels)
    region: list[Any] = [slice(None)] * labels.ndim
    for s in ordered:
        region[axis] = s
        out[tuple(region)] = labels[tuple(region)]
    for a, b in itertools.pairwise(ordered):
        if b - a >= 2:
            filled = interpolate_between_slices(out, a, b, axis=axis, spacing=spacing)
            region[axis] = slice(a + 1, b)
            out[tuple(region)] = filled[tuple(region)]
    return out


def interpolation_range(shape: tuple[int, ...], slices: Sequence[int], axis: int = 0
                        ) -> npt.NDArray[np.bool_]:
    """Bool mask of the slices interpolation covers: from the first to the last of ``slices``."""
    inside = np.zeros(shape, dtype=bool)
    if len(slices):
        region: list[Any] = [slice(None)] * len(shape)
        region[axis] = slice(min(slices), max(slices) + 1)
        inside[tuple(region)] = True
    return inside
