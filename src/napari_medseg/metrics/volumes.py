"""Volumes of label classes in millilitres (1 ml = 1000 mm^3), from voxel counts and spacing.

For a 2D image (no slice thickness) the "volume" is its area in mm^2 divided by 1000.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
import numpy.typing as npt


def voxel_volume_ml(spacing: Sequence[float]) -> float:
    """Volume of one voxel in ml for ``spacing`` in mm."""
    return float(np.prod([float(s) for s in spacing])) / 1000.0


def class_volumes_ml(labels: npt.NDArray[Any], spacing: Sequence[float],
                     classes: Sequence[int] | None = None) -> dict[int, float]:
    """``{class: volume in ml}`` for ``classes`` (default: every non-zero value present)."""
    values = np.asarray(labels)
    if values.size and values.min() < 0:
        msg = "label maps hold non-negative class values; found negative ones"
        raise ValueError(msg)
    counts = np.bincount(values.ravel().astype(np.int64)) if values.size else np.zeros(1, int)
    if classes is None:
        classes = [k for k in range(1, counts.size) if counts[k]]
    unit = voxel_volume_ml(spacing)
    return {int(k): (int(counts[k]) if k < counts.size else 0) * unit for k in classes}
