"""Overlap between two label maps: Dice and IoU (Jaccard) per class, optionally inside a mask.

Both are ratios of voxel counts, so spacing does not change them.  A class absent from both
maps has no defined overlap: it is reported as ``nan`` (and left out of means), never as 1.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import numpy.typing as npt


def _counts(
    pred: npt.NDArray[Any], truth: npt.NDArray[Any], label: int,
    mask: npt.NDArray[np.bool_] | None,
) -> tuple[int, int, int]:
    p = pred == label
    t = truth == label
    if mask is not None:
        p &= mask
        t &= mask
    return int(np.count_nonzero(p & t)), int(np.count_nonzero(p)), int(np.count_nonzero(t))


def check_same_shape(pred: npt.NDArray[Any], truth: npt.NDArray[Any]) -> None:
    """Raise ``ValueError`` unless the two arrays have one shape."""
    if pred.shape != truth.shape:
        msg = (f"prediction of shape {pred.shape} and truth of shape {truth.shape} differ; "
               "resample one onto the other's grid first")
        raise ValueError(msg)


def dice(pred: npt.NDArray[Any], truth: npt.NDArray[Any], label: int, *,
         mask: npt.NDArray[np.bool_] | None = None) -> float:
    """Dice ``2|P&T| / (|P| + |T|)`` of class ``label``; ``nan`` when absent from both.

    ``mask`` (same shape, bool) restricts the count to its voxels (e.g. labeled voxels).
    """
    check_same_shape(pred, truth)
    both, p, t = _counts(pred, truth, label, mask)
    return 2.0 * both / (p + t) if p + t else float("nan")


def iou(pred: npt.NDArray[Any], truth: npt.NDArray[Any], label: int, *,
        mask: npt.NDArray[np.bool_] | None = None) -> float:
    """Intersection over union ``|P&T| / |P|T|`` of class ``label``; ``nan`` when absent."""
    check_same_shape(pred, truth)
    both, p, t = _counts(pred, truth, label, mask)
    union = p + t - both
    return both / union if union else float("nan")


def mean_dice(pred: npt.NDArray[Any], truth: npt.NDArray[Any], labels: list[int], *,
              mask: npt.NDArray[np.bool_] | None = None) -> float:
    """Mean Dice over ``labels``, skipping classes absent from both (``nan`` if all are)."""
    values = [dice(pred, truth, k, mask=mask) for k in labels]
    finite = [v for v in values if not np.isnan(v)]
    return float(np.mean(finite)) if finite else float("nan")
