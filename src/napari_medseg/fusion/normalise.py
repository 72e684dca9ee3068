"""Per-modality intensity normalisation before pixel-level fusion.

CT is in Hounsfield units, MRI in arbitrary scanner units, PET in SUV: before their voxels
can be averaged or compared they are mapped to a common ``[0, 1]`` scale (or to zero mean and
unit variance).  Everything here works in ``float32``.
"""

from __future__ import annotations

from typing import Any, Literal

import numpy as np
import numpy.typing as npt

Normalisation = Literal["percentile", "minmax", "zscore", "none"]
NORMALISATIONS: tuple[str, ...] = ("percentile", "minmax", "zscore", "none")

#: Voxels sampled at most to estimate percentiles (a strided subsample of large volumes).
_MAX_SAMPLES = 2_000_000


def normalise(
    array: npt.NDArray[Any],
    method: Normalisation = "percentile",
    *,
    percentiles: tuple[float, float] = (1.0, 99.0),
) -> npt.NDArray[np.float32]:
    """A ``float32`` copy of ``array`` on a common intensity scale.

    ``"percentile"`` maps the ``percentiles`` (in %) to 0 and 1 and clips (robust to hot
    voxels and metal); ``"minmax"`` maps min and max to 0 and 1; ``"zscore"`` subtracts the
    mean and divides by the standard deviation; ``"none"`` only converts to ``float32``.
    A constant image maps to zeros.
    """
    if method not in NORMALISATIONS:
        msg = f"normalisation must be one of {NORMALISATIONS}, got {method!r}"
        raise ValueError(msg)
    out = np.array(array, dtype=np.float32, copy=True)
    if method == "none" or out.size == 0:
        return out
    if method == "zscore":
        sample = _sample(out)
        mean, std = float(sample.mean(dtype=np.float64)), float(sample.std(dtype=np.float64))
        out -= mean
        if std > 0:
            out /= std
        return out
    if method == "minmax":
        lo, hi = float(out.min()), float(out.max())
    else:
        lo, hi = (float(v) for v in np.percentile(_sample(out), percentiles))
    out -= lo
    if hi > lo:
        out /= hi - lo
    else:
        out[...] = 0.0
    if method == "percentile":
        np.clip(out, 0.0, 1.0, out=out)
    return out


def _sample(array: npt.NDArray[np.float32]) -> npt.NDArray[np.float32]:
    flat = array.reshape(-1)
    step = max(1, flat.size // _MAX_SAMPLES)
    return flat[::step]
