"""Training data: a scan with (possibly sparse) labels, and its prepared network-ready form.

A :class:`LabeledVolume` is what a person provides: one scan per input channel (one grid),
a label map on that grid, and which voxels are *labeled*.  A voxel is labeled when it lies
inside ``labeled`` (non-zero = labeled; ``None`` = everywhere), does not equal
``ignore_value``, or was edited (``edited`` voxels are always labeled and weigh more).
Unlabeled voxels are ignored by the loss.

:func:`prepare_volume` resamples to the checkpoint's ``target_spacing`` (images linear, labels
and masks nearest) and normalises intensities with the checkpoint's intensity contract through
:func:`napari_medseg.inference.preprocess.prepare_channels`, the function inference uses, so
training and inference see identical inputs.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import numpy.typing as npt

from napari_medseg.errors import GeometryMismatchError, TrainingError
from napari_medseg.geometry.grid import Grid, grid_at_spacing, grid_oriented
from napari_medseg.geometry.resample import resample_to
from napari_medseg.inference.preprocess import prepare_channels
from napari_medseg.models import CheckpointSpec
from napari_medseg.scan import Geometry, LabelMap, Scan


@dataclass(eq=False)
class LabeledVolume:
    """Scans (one per input channel, on one grid) with sparse labels.

    Attributes
    ----------
    scans
        ``(Z, Y, X)`` (or ``(Y, X)``) scans, one per channel, sharing one grid.
    labels
        Class values on the scans' grid (0 = background).
    labeled
        Bool/int array on the grid, non-zero where the labels are to be trusted; ``None``:
        every voxel (unless ``ignore_value`` says otherwise).
    edited
        Bool array of voxels a person changed; they count as labeled and weigh more.
    ignore_value
        A label value meaning "unlabeled" (e.g. 255), or ``None``.
    """

    scans: list[Scan]
    labels: LabelMap
    labeled: npt.NDArray[Any] | None = None
    edited: npt.NDArray[np.bool_] | None = None
    ignore_value: int | None = None

    def __post_init__(self) -> None:
        if isinstance(self.scans, Scan):
            self.scans = [self.scans]
        if not self.scans:
            msg = "a labeled volume needs at least one scan"
            raise TrainingError(msg)
        first = self.scans[0]
        for other in self.scans[1:]:
            if other.shape != first.shape or not other.geometry.is_close(first.geometry):
                msg = (f"channel scans {first.name!r} and {other.name!r} lie on different grids; "
                       "register/resample them first (napari-medseg fuse)")
                raise GeometryMismatchError(msg)
        self.labels.check_matches(first)
        for name in ("labeled", "edited"):
            mask = getattr(self, name)
            if mask is not None and tuple(mask.shape) != first.shape:
                msg = (f"the {name} mask has shape {tuple(mask.shape)} but the scan has "
                       f"{first.shape}; give a mask on the scan's grid")
                raise GeometryMismatchError(msg)

    @property
    def grid(self) -> Grid:
        return Grid.of(self.scans[0])

    def labeled_mask(self) -> npt.NDArray[np.bool_]:
        """Bool ``(Z, Y, X)``: the voxels whose label is trusted."""
        labels = self.labels.array
        mask = (np.ones(labels.shape, dtype=bool) if self.labeled is None
                else np.asarray(self.labeled) != 0)
        if self.ignore_value is not None:
            mask &= labels != self.ignore_value
        if self.edited is not None:
            mask |= np.asarray(self.edited, dtype=bool)
        return mask


@dataclass(eq=False)
class PreparedVolume:
    """A volume as the network sees it, on the training grid.

    ``image`` ``(C, Z, Y, X)`` float32 (normalised); ``target`` ``(Z, Y, X)`` int64 (0 where
    unlabeled); ``weight`` ``(Z, Y, X)`` float32 (0 unlabeled, 1 labeled, more if edited);
    ``validation`` bool ``(Z, Y, X)``: labeled voxels held back from the loss for early stopping.
    """

    image: npt.NDArray[np.float32]
    target: npt.NDArray[np.int64]
    weight: npt.NDArray[np.float32]
    validation: npt.NDArray[np.bool_]
    grid: Grid

    @property
    def train_weight(self) -> npt.NDArray[np.float32]:
        return np.where(self.validation, np.float32(0), self.weight)


def training_grid(grid: Grid, target_spacing: Sequence[float] | None, slice_axis: int = 0,
                  orientation: str | None = None) -> Grid:
    """The grid of ``grid`` flipped to ``orientation`` and resampled to ``target_spacing``
    (mm), or ``grid`` itself.

    A 2D ``target_spacing`` on a 3D grid sets the two in-plane axes (all but ``slice_axis``),
    as inference does (both call :func:`napari_medseg.geometry.grid_oriented` and
    :func:`napari_medseg.geometry.grid_at_spacing`).
    """
    return grid_at_spacing(grid_oriented(grid, orientation), target_spacing,
                           slice_axis=slice_axis)


def _mask_on(mask: npt.NDArray[Any], source: Grid, target: Grid) -> npt.NDArray[Any]:
    labels = LabelMap(array=np.asarray(mask, dtype=np.uint8), geometry=source.geometry,
                      class_names={0: "background", 1: "mask"})
    return resample_to(labels, target, interpolation="nearest").array


def check_label_values(volume: LabeledVolume, mask: npt.NDArray[np.bool_], n_classes: int,
                       class_names: dict[int, str]) -> None:
    """Refuse labeled voxels whose class the model does not have, and empty label sets."""
    if not mask.any():
        msg = (f"no labeled voxel in {volume.labels.name!r}: correct some voxels or mark slices "
               "reviewed (or give a labeled mask / ignore value that leaves some voxels)")
        raise TrainingError(msg)
    values = np.unique(volume.labels.array[mask])
    bad = [int(v) for v in values if v < 0 or v >= n_classes]
    if bad:
        known = ", ".join(f"{k} {v}" for k, v in sorted(class_names.items())) or (
            f"0..{n_classes - 1}")
        msg = (f"labels {volume.labels.name!r} hold class value(s) {bad} that the model does not "
               f"have (it has {n_classes} classes: {known}); relabel them, mark them unlabeled "
               "(ignore value), or train a new model with more classes")
        raise TrainingError(msg)


def prepare_volume(volume: LabeledVolume, spec: CheckpointSpec, *, edited_weight: float = 2.0,
                   slice_axis: int = 0, held_back: npt.NDArray[np.bool_] | None = None
                   ) -> PreparedVolume:
    """Resample, normalise and check one labeled volume for ``spec``'s network.

    ``held_back`` (bool, on the volume's grid) marks labeled voxels kept for validation
    (:func:`napari_medseg.training.annotation.plan_validation`).
    """
    if len(volume.scans) != spec.scan_channels:
        msg = (f"the model takes {spec.scan_channels} input scan(s) but {len(volume.scans)} "
               "scan(s) were given for one volume; give one scan per channel")
        raise TrainingError(msg)
    if spec.spatial_dims == 3 and volume.scans[0].ndim == 2:
        msg = "a 3D model cannot be trained on 2D images; choose a 2D architecture"
        raise TrainingError(msg)
    labeled = volume.labeled_mask()
    check_label_values(volume, labeled, spec.out_channels, spec.class_names)
    source = volume.grid
    grid = training_grid(source, spec.target_spacing, slice_axis, spec.orientation)
    labels = volume.labels.array
    edited = volume.edited
    if grid is not source:
        arrays = [resample_to(s, grid, interpolation="linear").array for s in volume.scans]
        labels = resample_to(volume.labels, grid, interpolation="nearest").array
        labeled = _mask_on(labeled, source, grid).astype(bool)
        if edited is not None:
            edited = _mask_on(edited, source, grid).astype(bool)
        if held_back is not None:
            held_back = _mask_on(held_back, source, grid).astype(bool)
    else:
        arrays = [s.array for s in volume.scans]
    image = prepare_channels(arrays, list(spec.intensity))
    if not np.all(np.isfinite(image)):
        msg = f"scan {volume.scans[0].name!r} holds NaN or infinite values; fix or crop it"
        raise TrainingError(msg)
    weight = labeled.astype(np.float32)
    if edited is not None:
        weight[np.asarray(edited, dtype=bool)] = edited_weight
    target = np.where(labeled, labels, 0).astype(np.int64)
    validation = (np.zeros(target.shape, dtype=bool) if held_back is None
                  else np.asarray(held_back, dtype=bool) & (weight > 0))
    if image.ndim == 3 and spec.spatial_dims == 2:  # a 2D image: add a unit "slice" axis
        image, target, weight = image[:, None], target[None], weight[None]
        validation = validation[None]
        grid = Grid(geometry=Geometry.identity(3, (1.0, *grid.geometry.spacing)),
                    shape=(1, *grid.shape))
    return PreparedVolume(image=image, target=target, weight=weight, validation=validation,
                          grid=grid)


def hold_out(volumes: Sequence[PreparedVolume], fraction: float, block: int,
             rng: np.random.Generator) -> int:
    """Mark about ``fraction`` of the labeled voxels of each volume as validation, in cubic
    blocks of ``block`` voxels (so neighbours of training voxels are not the whole test).

    Returns the number of validation voxels; 0 when ``fraction`` is 0 or a volume has too few
    labeled voxels to spare (fewer than 2 labeled blocks).
    """
    total = 0
    if fraction <= 0:
        return 0
    for volume in volumes:
        labeled = volume.weight > 0
        shape = labeled.shape
        blocks = tuple(-(-n // block) for n in shape)
        padded = np.zeros(tuple(b * block for b in blocks), dtype=bool)
        padded[tuple(slice(0, n) for n in shape)] = labeled
        per_block = padded.reshape(blocks[0], block, blocks[1], block, blocks[2], block)
        counts = per_block.sum(axis=(1, 3, 5))
        candidates = np.flatnonzero(counts)
        if candidates.size < 2:
            continue
        order = rng.permutation(candidates)
        cumulative = np.cumsum(counts.ravel()[order])
        n_take = int(np.searchsorted(cumulative, fraction * cumulative[-1])) + 1
        n_take = min(max(n_take, 1), candidates.size - 1)
        chosen = np.zeros(counts.size, dtype=bool)
        chosen[order[:n_take]] = True
        chosen_blocks = chosen.reshape(blocks)
        full = np.repeat(np.repeat(np.repeat(chosen_blocks, block, 0), block, 1), block, 2)
        volume.validation = full[tuple(slice(0, n) for n in shape)] & labeled
        total += int(volume.validation.sum())
    return total
