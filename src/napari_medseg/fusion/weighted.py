"""Spatial-domain fusion by global weights: weighted average and PCA weighting.

Inputs are co-registered, intensity-normalised ``float32`` arrays of one shape, 2D ``(Y, X)``
or 3D ``(Z, Y, X)``.  Both rules are one weight per source image, the same for every voxel.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
import numpy.typing as npt

from napari_medseg.errors import FusionError

#: Voxels sampled at most to estimate the covariance for PCA weights.
_MAX_SAMPLES = 2_000_000


def weighted_average(
    images: Sequence[npt.NDArray[Any]], weights: Sequence[float] | None = None
) -> npt.NDArray[np.float32]:
    """``sum_i w_i I_i / sum_i w_i``; equal weights when ``weights`` is ``None``."""
    w = _check_weights(len(images), weights)
    out = np.zeros(images[0].shape, dtype=np.float32)
    for wi, image in zip(w, images, strict=True):
        if wi != 0.0:
            out += np.float32(wi) * image.astype(np.float32, copy=False)
    return out


def pca_weights(images: Sequence[npt.NDArray[Any]]) -> npt.NDArray[np.float64]:
    """Weights from the principal component of the sources' covariance, summing to 1.

    The covariance of the ``N`` images (voxels as samples, a strided subsample of at most
    two million voxels) has a leading eigenvector ``v``; the weights are ``|v| / sum |v|``
    (absolute values, so anti-correlated sources still get a positive share).  Sources that
    vary more and agree with the others get more weight.  Constant images give equal weights.
    """
    n = len(images)
    step = max(1, images[0].size // _MAX_SAMPLES)
    samples = np.stack([np.asarray(im).reshape(-1)[::step] for im in images]).astype(np.float64)
    cov = np.atleast_2d(np.cov(samples))
    values, vectors = np.linalg.eigh(cov)
    v = np.abs(vectors[:, int(np.argmax(values))])
    total = float(v.sum())
    if not np.isfinite(total) or total <= 0 or float(values.max()) <= 0:
        return np.full(n, 1.0 / n)
    return v / total


def pca_fusion(images: Sequence[npt.NDArray[Any]]) -> npt.NDArray[np.float32]:
    """Weighted average with :func:`pca_weights`."""
    return weighted_average(images, pca_weights(images).tolist())


def _check_weights(n: int, weights: Sequence[float] | None) -> npt.NDArray[np.float64]:
    if weights is None:
        return np.full(n, 1.0 / n)
    w = np.asarray(weights, dtype=np.float64)
    if w.shape != (n,):
        msg = f"got {w.size} weight(s) for {n} scans; give one weight per scan"
        raise FusionError(msg)
    if not np.all(np.isfinite(w)) or np.any(w < 0) or w.sum() <= 0:
        msg = f"weights must be non-negative with a positive sum, got {w.tolist()}"
        raise FusionError(msg)
    return w / w.sum()
