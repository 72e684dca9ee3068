"""Checks and guesses about what a file holds: finite voxels, modality, scan or label map."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np
import numpy.typing as npt

from napari_medseg.errors import ScanReadError, UnsupportedScanError, setting
from napari_medseg.scan import Geometry

#: Largest number of distinct values an integer image may hold to be taken for a label map.
MAX_LABEL_VALUES = 64
_LABEL_WORDS = ("seg", "label", "mask", "annot", "roi", "gt", "truth")


def check_finite(array: npt.NDArray[Any], name: str, *, nan_policy: str) -> npt.NDArray[Any]:
    """Refuse (``"raise"``) or replace (``"fill"``) NaN / infinite voxels.

    ``"fill"`` replaces them with the smallest finite value of the scan (air / background),
    which keeps windowing and normalisation meaningful.
    """
    if nan_policy not in ("raise", "fill"):
        msg = f"nan_policy must be 'raise' or 'fill', got {nan_policy!r}"
        raise ValueError(msg)
    if not np.issubdtype(array.dtype, np.floating):
        return array
    bad = ~np.isfinite(array)
    n_bad = int(np.count_nonzero(bad))
    if n_bad == 0:
        return array
    if nan_policy == "raise" or n_bad == array.size:
        msg = (
            f"{name} has {n_bad} NaN or infinite voxel(s) of {array.size}; "
            + (
                "it holds no finite value at all"
                if n_bad == array.size
                else f"read it with {setting('nan_policy', 'fill')} to replace them with the "
                "scan's minimum"
            )
        )
        raise UnsupportedScanError(msg)
    out = array.copy()
    out[bad] = np.min(array[~bad])
    return out


def checked_geometry(name: str, build: Callable[[], Geometry]) -> Geometry:
    """``build()``, with an invalid geometry (zero, negative or NaN spacing, a singular or
    non-finite direction) turned into a :class:`ScanReadError` naming ``name``."""
    try:
        return build()
    except (ValueError, ZeroDivisionError, FloatingPointError) as exc:
        msg = (
            f"{name} has an unusable geometry in its header ({exc}); the spacing or "
            "orientation fields are corrupt: fix them or export the scan again"
        )
        raise ScanReadError(msg) from None


def guess_modality(array: npt.NDArray[Any], metadata: dict[str, str], *, name: str = "") -> str:
    """DICOM code of the modality from headers, the file name, else the intensities.

    The code of :func:`napari_medseg.io.modality.read_modality`, which also says how it was
    decided and reads the MR contrast.
    """
    from napari_medseg.io.modality import read_modality

    return read_modality(array, metadata, name=name).modality


def looks_like_label_map(array: npt.NDArray[Any], name: str) -> bool:
    """True for label maps: integer images with few distinct non-negative values, a label-ish
    name, or - read by content - up to 255 values that form flat regions (a label map's
    foreground voxels nearly always equal their neighbours; a scan's rarely do)."""
    if not (np.issubdtype(array.dtype, np.integer) or array.dtype == np.bool_):
        return False
    if array.size == 0:
        return False
    if array.dtype == np.bool_:
        return True
    lo, hi = int(array.min()), int(array.max())
    if lo < 0:
        return False
    lowered = name.lower()
    if any(word in lowered for word in _LABEL_WORDS) and hi < 2**16:
        return True
    if hi >= 2**16:
        return False
    sample = array.ravel()[:: max(1, array.size // 2_000_000)]
    n_values = int(np.count_nonzero(np.bincount(sample.astype(np.intp))))
    if n_values <= 8 or (hi <= MAX_LABEL_VALUES and n_values <= MAX_LABEL_VALUES // 2):
        return True
    return n_values <= MAX_REGION_VALUES and flat_fraction(array) >= FLAT_FRACTION


#: A label map read by its content holds at most this many distinct values ...
MAX_REGION_VALUES = 255
#: ... and at least this fraction of its foreground voxels equal their in-plane neighbour
#: (label maps of the shared data: 0.81-0.97; scans, 8-bit templates included: 0.02-0.23).
FLAT_FRACTION = 0.6


def flat_fraction(array: npt.NDArray[Any], *, max_slices: int = 16) -> float:
    """Of the non-zero voxels, the fraction equal to their next neighbour along each in-plane
    axis (the last two axes), over at most ``max_slices`` evenly spaced slices."""
    planes = array if array.ndim >= 3 else array[None]
    planes = planes.reshape(-1, *planes.shape[-2:])
    step = max(1, planes.shape[0] // max_slices)
    same = total = 0
    for plane in planes[::step]:
        for axis in (0, 1):
            a = np.moveaxis(plane, axis, 0)
            here, there = a[:-1], a[1:]
            fg = here != 0
            total += int(fg.sum())
            same += int((fg & (here == there)).sum())
    return same / total if total else 1.0
