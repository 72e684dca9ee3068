"""Discrete wavelet transform fusion with PyWavelets, in 2D and 3D.

The n-dimensional DWT (:func:`pywt.wavedecn`) splits each source into an approximation and
detail sub-bands per level; the approximation is fused by ``approximation_rule`` (average by
default), the details by ``detail_rule`` (largest magnitude by default, the "max rule" that
keeps the stronger detail), then :func:`pywt.waverecn` inverts the transform.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, Literal

import numpy as np
import numpy.typing as npt
import pywt

from napari_medseg.errors import FusionError

CoefficientRule = Literal["max", "average"]


def wavelet_fusion(
    images: Sequence[npt.NDArray[Any]],
    *,
    wavelet: str = "db2",
    levels: int = 3,
    approximation_rule: CoefficientRule = "average",
    detail_rule: CoefficientRule = "max",
    mode: str = "symmetric",
) -> npt.NDArray[np.float32]:
    """Fuse co-registered images in the wavelet domain; returns ``float32`` of the input shape.

    ``levels`` is capped at what the image size allows for ``wavelet``
    (:func:`pywt.dwtn_max_level`).  ``mode`` is PyWavelets' signal extension mode.
    """
    if wavelet not in pywt.wavelist(kind="discrete"):
        msg = f"unknown discrete wavelet {wavelet!r}; pick one of pywt.wavelist(kind='discrete')"
        raise FusionError(msg)
    shape = images[0].shape
    levels = max(1, min(levels, pywt.dwtn_max_level(shape, wavelet) or 1))
    fused: list[Any] = []
    for n, image in enumerate(images):
        coeffs = pywt.wavedecn(image.astype(np.float32, copy=False), wavelet, mode, levels)
        if n == 0:
            fused = coeffs
            continue
        fused[0] = _combine(fused[0], coeffs[0], approximation_rule, magnitude=False)
        for k in range(1, len(coeffs)):
            for key, band in coeffs[k].items():
                fused[k][key] = _combine(fused[k][key], band, detail_rule, magnitude=True)
    count = np.float32(len(images))
    if approximation_rule == "average":
        fused[0] = fused[0] / count
    if detail_rule == "average":
        for k in range(1, len(fused)):
            fused[k] = {key: band / count for key, band in fused[k].items()}
    out = pywt.waverecn(fused, wavelet, mode)
    crop = tuple(slice(0, s) for s in shape)
    return np.ascontiguousarray(out[crop], dtype=np.float32)


def _combine(
    a: npt.NDArray[Any], b: npt.NDArray[Any], rule: CoefficientRule, *, magnitude: bool
) -> npt.NDArray[Any]:
    """Running combination: a sum for "average" (divided at the end), a selection for "max"."""
    if rule == "average":
        a += b
        return a
    stronger = np.abs(b) > np.abs(a) if magnitude else b > a
    np.copyto(a, b, where=stronger)
    return a
