"""The intensity contract: turn raw voxels (HU, MR units) into what a network was trained on.

One :class:`~napari_medseg.models.IntensityContract` per input channel, stored in the
checkpoint: CT windowing (clip HU to a window, scale to [0, 1]), MR percentile scaling or
z-score, or nothing.  Training and inference call the same function, so they cannot drift.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import numpy.typing as npt

from napari_medseg.models import IntensityContract

#: Voxels sampled (at most) to estimate percentiles and moments of large scans.
_SAMPLE = 2_000_000


def _sample(array: npt.NDArray[Any]) -> npt.NDArray[Any]:
    flat = array.ravel()
    return flat[:: max(1, flat.size // _SAMPLE)]


def normalize(array: npt.NDArray[Any], contract: IntensityContract) -> npt.NDArray[np.float32]:
    """A float32 copy of ``array`` prepared as ``contract`` says (any shape)."""
    x = np.asarray(array, dtype=np.float32)
    if x is array:
        x = x.copy()
    if contract.normalization == "ct_window":
        assert contract.window is not None
        lo, hi = contract.window
    elif contract.normalization == "percentile":
        assert contract.percentiles is not None
        lo, hi = (float(v) for v in np.percentile(_sample(x), contract.percentiles))
    elif contract.normalization == "zscore":
        sample = _sample(x)
        mean, std = float(sample.mean()), float(sample.std())
        x -= mean
        x /= max(std, 1e-6)
        return x
    else:
        return x
    if contract.clip:
        np.clip(x, lo, hi, out=x)
    x -= lo
    x /= max(hi - lo, 1e-6)
    return x


def prepare_channels(
    arrays: list[npt.NDArray[Any]], contracts: list[IntensityContract]
) -> npt.NDArray[np.float32]:
    """``(C, *spatial)`` float32 input from one array per channel and its contract.

    A checkpoint without contracts (``[]``) gets the raw values; a count mismatch is an error.
    """
    if contracts and len(contracts) != len(arrays):
        msg = (
            f"the model expects {len(contracts)} input channel(s) "
            f"({', '.join(c.modality for c in contracts)}) but {len(arrays)} scan(s) were given"
        )
        raise ValueError(msg)
    out = np.empty((len(arrays), *arrays[0].shape), dtype=np.float32)
    for i, array in enumerate(arrays):
        out[i] = normalize(array, contracts[i]) if contracts else array
    return out
