"""Intensity display presets by modality (Qt-free; the napari layer applies them).

CT windows are given as (level, width) in HU, the radiology convention; MR and unknown
modalities use the 1st-99th percentiles of the scan.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
import numpy.typing as npt


@dataclass(frozen=True)
class Window:
    """A display window: ``level`` (centre) and ``width`` in the scan's units (HU for CT)."""

    name: str
    level: float
    width: float

    @property
    def limits(self) -> tuple[float, float]:
        return (self.level - self.width / 2, self.level + self.width / 2)


CT_WINDOWS: dict[str, Window] = {
    w.name: w
    for w in (
        Window("soft tissue", 40, 400),
        Window("lung", -600, 1500),
        Window("bone", 400, 1800),
        Window("brain", 40, 80),
    )
}
PERCENTILE_PRESET = "1-99 percentiles"


def presets_for(modality: str) -> list[str]:
    """Preset names that make sense for a modality, the default first."""
    if modality == "CT":
        return [*CT_WINDOWS, PERCENTILE_PRESET]
    return [PERCENTILE_PRESET]


def percentile_limits(
    array: npt.NDArray[Any], low: float = 1.0, high: float = 99.0
) -> tuple[float, float]:
    """``(low, high)`` percentiles of the voxel values, from a subsample of large arrays."""
    if array.size == 0:
        return (0.0, 1.0)
    sample = array.ravel()[:: max(1, array.size // 1_000_000)]
    lo, hi = np.percentile(sample, [low, high])
    if hi <= lo:
        lo, hi = float(np.min(sample)), float(np.max(sample))
    if hi <= lo:
        hi = lo + 1.0
    return (float(lo), float(hi))


def contrast_limits(array: npt.NDArray[Any], preset: str) -> tuple[float, float]:
    """Display range of ``preset`` (a CT window name or :data:`PERCENTILE_PRESET`)."""
    if preset in CT_WINDOWS:
        return CT_WINDOWS[preset].limits
    if preset == PERCENTILE_PRESET:
        return percentile_limits(array)
    msg = f"unknown display preset {preset!r}; choose one of {[*CT_WINDOWS, PERCENTILE_PRESET]}"
    raise KeyError(msg)


def default_contrast_limits(array: npt.NDArray[Any], modality: str) -> tuple[float, float]:
    """The first preset of :func:`presets_for` applied to ``array``."""
    return contrast_limits(array, presets_for(modality)[0])
