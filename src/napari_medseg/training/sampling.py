"""Patch sampling that oversamples labeled foreground.

Each patch is centred on a voxel drawn, with probability ``foreground_fraction``, from the
labeled foreground (weight > 0 and class > 0) and otherwise from any labeled voxel, so sparse
labels (a few corrected slices) are where the patches go.  A foreground draw first picks one
of the foreground classes present, uniformly (as nnU-Net does), then a voxel of it, so a small
class (bone next to soft tissue, a lesion next to an organ) is trained as often as a big one.
A patch that overhangs the volume is shifted inside it, or padded with zero image and zero
weight when the volume is smaller.
2D models get patches one voxel thick along ``slice_axis`` (labeled slices, automatically);
2.5D models (``context`` k > 0) get ``2k + 1`` slices of image around that slice, the slice
indices clipped at the volume's ends as inference does, and the target of the middle one.
"""

from __future__ import annotations

import itertools
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

from napari_medseg.training.labeled_volume import PreparedVolume

#: At most this many candidate centres are kept per volume and kind (memory bound).
MAX_CANDIDATES = 500_000


@dataclass
class Batch:
    """``image`` ``(B, C, *P)`` float32, ``target`` ``(B, *P)`` int64, ``weight`` ``(B, *P)``
    float32; ``P`` is the 3D patch (one voxel thick along the slice axis for 2D models)."""

    image: npt.NDArray[np.float32]
    target: npt.NDArray[np.int64]
    weight: npt.NDArray[np.float32]


def volume_patch(patch_size: Sequence[int], spatial_dims: int, slice_axis: int
                 ) -> tuple[int, int, int]:
    """The 3D extent ``(Z, Y, X)`` of a model patch's target (2D: 1 along ``slice_axis``)."""
    size = [int(p) for p in patch_size]
    if spatial_dims == 2:
        size.insert(slice_axis, 1)
    if len(size) != 3:
        msg = f"patch size {tuple(patch_size)} does not fit a {spatial_dims}D model"
        raise ValueError(msg)
    return size[0], size[1], size[2]


def _candidates(mask: npt.NDArray[np.bool_], rng: np.random.Generator) -> npt.NDArray[np.int64]:
    flat = np.flatnonzero(mask)
    if flat.size > MAX_CANDIDATES:
        flat = rng.choice(flat, MAX_CANDIDATES, replace=False)
    return flat.astype(np.int64)


def crop(array: npt.NDArray, centre: Sequence[int], size: Sequence[int]) -> npt.NDArray:
    """The ``size`` window of the last ``len(size)`` axes around ``centre``, shifted inside
    the array, zero-padded where the array is smaller than the window."""
    spatial = array.shape[-len(size):]
    lead_axes = array.ndim - len(size)
    slices: list[slice] = [slice(None)] * lead_axes
    pads: list[tuple[int, int]] = []
    for c, p, n in zip(centre, size, spatial, strict=True):
        start = int(np.clip(c - p // 2, 0, max(n - p, 0)))
        stop = min(start + p, n)
        slices.append(slice(start, stop))
        pads.append((0, p - (stop - start)))
    window = array[tuple(slices)]
    if any(after for _, after in pads):
        window = np.pad(window, [(0, 0)] * lead_axes + pads)
    return window


def crop_image(image: npt.NDArray, centre: Sequence[int], size: Sequence[int], *,
               context: int = 0, slice_axis: int = 0) -> npt.NDArray:
    """:func:`crop` of a ``(C, Z, Y, X)`` image; with ``context`` k, the ``2k + 1`` slices
    around ``centre`` along ``slice_axis`` (indices clipped at the ends) - for 2.5D patches,
    whose ``size`` is 1 along that axis."""
    if context == 0:
        return crop(image, centre, size)
    n = image.shape[1 + slice_axis]
    rows = np.clip(np.arange(centre[slice_axis] - context, centre[slice_axis] + context + 1),
                   0, n - 1)
    stack = np.take(image, rows, axis=1 + slice_axis)
    plane_centre = list(centre)
    plane_centre[slice_axis] = context
    plane_size = list(size)
    plane_size[slice_axis] = 2 * context + 1
    return crop(stack, plane_centre, plane_size)


class PatchSampler:
    """Draw training batches from prepared volumes (training voxels only).

    ``context``/``slice_axis``: 2.5D patches (see the module docstring).
    """

    def __init__(self, volumes: Sequence[PreparedVolume], patch: tuple[int, int, int], *,
                 foreground_fraction: float, rng: np.random.Generator, context: int = 0,
                 slice_axis: int = 0) -> None:
        self.volumes = list(volumes)
        self.patch = patch
        self.context = context
        self.slice_axis = slice_axis
        self.foreground_fraction = foreground_fraction
        self.rng = rng
        self.weights = [v.train_weight for v in self.volumes]
        self.any_labeled = [_candidates(w > 0, rng) for w in self.weights]
        self.foreground = [
            [_candidates((w > 0) & (v.target == k), rng)
             for k in np.unique(v.target[(w > 0) & (v.target > 0)])]
            for v, w in zip(self.volumes, self.weights, strict=True)]
        counts = np.array([c.size for c in self.any_labeled], dtype=float)
        if counts.sum() == 0:
            msg = "no labeled voxel is left for training"
            raise ValueError(msg)
        # volumes are drawn in proportion to the square root of their labeled voxel counts
        self.volume_p = np.sqrt(counts) / np.sqrt(counts).sum()

    def centre(self) -> tuple[int, tuple[int, ...]]:
        i = int(self.rng.choice(len(self.volumes), p=self.volume_p))
        classes = self.foreground[i]
        if classes and self.rng.random() < self.foreground_fraction:
            pool = classes[int(self.rng.integers(len(classes)))]
        else:
            pool = self.any_labeled[i]
        flat = int(pool[self.rng.integers(pool.size)])
        return i, tuple(int(c) for c in np.unravel_index(flat, self.weights[i].shape))

    def batch(self, size: int) -> Batch:
        images, targets, weights = [], [], []
        for _ in range(size):
            i, centre = self.centre()
            v = self.volumes[i]
            images.append(crop_image(v.image, centre, self.patch, context=self.context,
                                     slice_axis=self.slice_axis))
            targets.append(crop(v.target, centre, self.patch))
            weights.append(crop(self.weights[i], centre, self.patch))
        return Batch(image=np.stack(images), target=np.stack(targets), weight=np.stack(weights))


def covering_centres(mask: npt.NDArray[np.bool_], patch: Sequence[int], *, limit: int,
                     rng: np.random.Generator) -> list[tuple[int, ...]]:
    """Centres of windows of size ``patch`` that together cover the set voxels of ``mask``
    (a grid of windows over their bounding box, keeping those that hold some), at most
    ``limit`` of them (a random choice, then, and the cover is partial)."""
    coords = np.argwhere(mask)
    if coords.size == 0:
        return []
    low, high = coords.min(0), coords.max(0)
    axes = []
    for lo, hi, p in zip(low, high, patch, strict=True):
        n = max(1, -(-int(hi - lo + 1) // int(p)))
        axes.append([int((lo + hi) // 2)] if n == 1 else
                    [int(lo + p // 2 + k * p) for k in range(n)])
    centres = []
    for centre in itertools.product(*axes):
        box = tuple(slice(max(0, c - p // 2), c - p // 2 + p) for c, p in
                    zip(centre, patch, strict=True))
        if mask[box].any():
            centres.append(tuple(int(c) for c in centre))
    if len(centres) > limit:
        chosen = rng.choice(len(centres), limit, replace=False)
        centres = [centres[int(k)] for k in sorted(chosen)]
    return centres


def validation_batch(volumes: Sequence[PreparedVolume], patch: tuple[int, int, int], *,
                     per_volume: int, rng: np.random.Generator, context: int = 0,
                     slice_axis: int = 0) -> Batch | None:
    """Windows covering the held-back voxels (at most ``per_volume`` per volume; for 2D
    models one per held-back slice row); ``weight`` is 1 on held-back voxels only."""
    images, targets, weights = [], [], []
    for v in volumes:
        if not v.validation.any():
            continue
        held = v.validation.astype(np.float32)
        for centre in covering_centres(v.validation, patch, limit=per_volume, rng=rng):
            images.append(crop_image(v.image, centre, patch, context=context,
                                     slice_axis=slice_axis))
            targets.append(crop(v.target, centre, patch))
            weights.append(crop(held, centre, patch))
    if not images:
        return None
    return Batch(image=np.stack(images), target=np.stack(targets), weight=np.stack(weights))
