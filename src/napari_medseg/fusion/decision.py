"""Decision-level fusion: one label map from several models', raters' or modalities' outputs.

* :func:`average_probabilities` - (weighted) mean of class probabilities, then argmax;
* :func:`majority_vote` - most frequent label per voxel (ties go to the smallest label);
* :func:`staple` - Warfield's STAPLE, which weighs each input by its estimated performance
  (SimpleITK's ``MultiLabelSTAPLEImageFilter``).

Each returns a :class:`DecisionResult`: the fused label map and an *agreement* map in
``[0, 1]`` on the same grid (1: every input agrees; for probabilities, one minus the
normalised entropy of the averaged distribution), to show as an uncertainty overlay.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Literal

import numpy as np
import numpy.typing as npt
import SimpleITK as sitk

from napari_medseg.errors import FusionError
from napari_medseg.geometry.grid import require_same_grid
from napari_medseg.io.itk import scan_to_sitk
from napari_medseg.scan import Geometry, LabelMap, Scan

DecisionMethod = Literal["vote", "staple"]


@dataclass(frozen=True, eq=False)
class DecisionResult:
    """A fused label map and how much its inputs agreed, voxel by voxel (``float32``)."""

    labels: LabelMap
    agreement: Scan
    method: str


def average_probabilities(
    probabilities: Sequence[npt.NDArray[Any]],
    geometry: Geometry,
    *,
    weights: Sequence[float] | None = None,
    class_names: Mapping[int, str] | None = None,
) -> DecisionResult:
    """Fuse class probabilities ``(C, *spatial)`` of several models by their (weighted) mean.

    ``geometry`` places the spatial axes.  Labels are the argmax over classes (class ``c``
    is label ``c``).  Agreement is ``1 - H(p) / log(C)`` of the mean distribution ``p``.
    Returns the mean probabilities' argmax; the mean itself is not kept (memory).
    """
    if not probabilities:
        msg = "decision fusion needs at least one probability map"
        raise FusionError(msg)
    shape = probabilities[0].shape
    if len(shape) != geometry.ndim + 1:
        msg = (
            f"probabilities must be (C, *spatial) with {geometry.ndim} spatial axes, got "
            f"shape {shape}"
        )
        raise FusionError(msg)
    for k, p in enumerate(probabilities):
        if p.shape != shape:
            msg = f"probability map {k} has shape {p.shape}, map 0 has {shape}"
            raise FusionError(msg)
    n = len(probabilities)
    w = np.full(n, 1.0 / n) if weights is None else np.asarray(weights, dtype=np.float64)
    if w.shape != (n,) or np.any(w < 0) or w.sum() <= 0:
        msg = f"give one non-negative weight per probability map ({n}), got {weights}"
        raise FusionError(msg)
    w = w / w.sum()
    mean = np.zeros(shape, dtype=np.float32)
    for wi, p in zip(w, probabilities, strict=True):
        mean += np.float32(wi) * p.astype(np.float32, copy=False)
    labels = np.argmax(mean, axis=0).astype(np.uint8 if shape[0] <= 255 else np.int32)
    classes = shape[0]
    if classes > 1:
        total = mean.sum(axis=0)
        np.maximum(total, np.float32(1e-12), out=total)
        mean /= total
        plogp = np.where(mean > 0, mean * np.log(np.maximum(mean, 1e-12)), 0.0)
        agreement = (1.0 + plogp.sum(axis=0) / np.log(classes)).astype(np.float32)
    else:
        agreement = np.ones(shape[1:], dtype=np.float32)
    names = dict(class_names) if class_names else {c: f"class {c}" for c in range(classes)}
    names.setdefault(0, "background")
    return DecisionResult(
        labels=LabelMap(array=labels, geometry=geometry, class_names=names),
        agreement=Scan(array=np.clip(agreement, 0.0, 1.0), geometry=geometry),
        method="average",
    )


def majority_vote(label_maps: Sequence[LabelMap]) -> DecisionResult:
    """Per-voxel most frequent label; ties go to the smallest label value."""
    grid = _check_maps(label_maps)
    values = np.unique(np.concatenate([np.unique(m.array) for m in label_maps]))
    best_count = np.zeros(grid.shape, dtype=np.uint16)
    best = np.zeros(grid.shape, dtype=_label_dtype(values))
    for v in values:
        count = np.zeros(grid.shape, dtype=np.uint16)
        for m in label_maps:
            count += m.array == v
        better = count > best_count
        best[better] = v
        np.copyto(best_count, count, where=better)
    agreement = best_count.astype(np.float32) / np.float32(len(label_maps))
    return DecisionResult(
        labels=LabelMap(array=best, geometry=grid.geometry, class_names=_names(label_maps)),
        agreement=Scan(array=agreement, geometry=grid.geometry),
        method="vote",
    )


def staple(label_maps: Sequence[LabelMap]) -> DecisionResult:
    """Multi-label STAPLE (SimpleITK); voxels STAPLE leaves undecided take the majority vote.

    Agreement is the fraction of inputs whose label equals the fused one.
    """
    grid = _check_maps(label_maps)
    if len(label_maps) < 2:
        msg = "STAPLE needs two or more label maps"
        raise FusionError(msg)
    values = np.unique(np.concatenate([np.unique(m.array) for m in label_maps]))
    if values.min() < 0 or values.max() > 65534:
        msg = "STAPLE needs label values in 0..65534"
        raise FusionError(msg)
    undecided = int(values.max()) + 1
    images = [
        scan_to_sitk(LabelMap(array=m.array.astype(np.uint16), geometry=grid.geometry))
        for m in label_maps
    ]
    filt = sitk.MultiLabelSTAPLEImageFilter()
    filt.SetLabelForUndecidedPixels(undecided)
    try:
        out = sitk.GetArrayFromImage(filt.Execute(images))
    except RuntimeError as exc:
        msg = f"STAPLE failed: {str(exc).strip().splitlines()[-1]}"
        raise FusionError(msg) from exc
    fused = out.astype(_label_dtype(values))
    vote = None
    if np.any(out == undecided):
        vote = majority_vote(label_maps)
        fused = np.where(out == undecided, vote.labels.array, fused).astype(fused.dtype)
    agreement = np.zeros(grid.shape, dtype=np.float32)
    for m in label_maps:
        agreement += m.array == fused
    agreement /= np.float32(len(label_maps))
    return DecisionResult(
        labels=LabelMap(array=fused, geometry=grid.geometry, class_names=_names(label_maps)),
        agreement=Scan(array=agreement, geometry=grid.geometry),
        method="staple",
    )


def combine_labels(
    label_maps: Sequence[LabelMap], *, method: DecisionMethod = "vote"
) -> DecisionResult:
    """:func:`majority_vote` or :func:`staple` by name."""
    if method == "vote":
        return majority_vote(label_maps)
    if method == "staple":
        return staple(label_maps)
    msg = f"decision method must be 'vote' or 'staple', got {method!r}"
    raise FusionError(msg)


def _check_maps(label_maps: Sequence[LabelMap]) -> Any:
    if not label_maps:
        msg = "decision fusion needs at least one label map"
        raise FusionError(msg)
    if len(label_maps) > 65535:
        msg = "too many label maps to count votes in 16 bits"
        raise FusionError(msg)
    return require_same_grid(label_maps, purpose="decision-level fusion")


def _label_dtype(values: npt.NDArray[Any]) -> Any:
    lo, hi = int(values.min()), int(values.max())
    for dtype in (np.uint8, np.uint16, np.int32):
        info = np.iinfo(dtype)
        if info.min <= lo and hi <= info.max:
            return dtype
    return np.int64


def _names(label_maps: Sequence[LabelMap]) -> dict[int, str]:
    names: dict[int, str] = {}
    for m in label_maps:
        for k, v in m.class_names.items():
            names.setdefault(k, v)
    return names
