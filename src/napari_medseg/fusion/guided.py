"""Guided-filter fusion (GFF; Li, Kang & Hu, IEEE TIP 2013), in 2D and 3D.

Two-scale decomposition of each source (base = mean filter, detail = rest), a saliency map
(Gaussian-smoothed magnitude of the Laplacian), winner-take-all weight maps, and the guided
filter (He, Sun & Tang 2013) to make those maps follow each source's edges: a large, smooth
filter for the base layers, a small sharp one for the details.  Written here on scipy's
separable box and Gaussian filters; no maintained library offers it in 3D.

Radii are in voxels along every axis; the defaults are the paper's 2D ones (mean filter 31,
base radius 45 / eps 0.3, detail radius 7 / eps 1e-6, saliency Gaussian sigma 5), which
assume intensities in ``[0, 1]``.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
import numpy.typing as npt
from scipy import ndimage


def box_mean(image: npt.NDArray[np.float32], radius: int) -> npt.NDArray[np.float32]:
    """Mean over a ``(2 radius + 1)`` box along every axis (edges reflected)."""
    return ndimage.uniform_filter(image, size=2 * radius + 1, mode="reflect")


def guided_filter(
    guide: npt.NDArray[np.float32], source: npt.NDArray[np.float32], radius: int, eps: float
) -> npt.NDArray[np.float32]:
    """He et al.'s guided filter: ``source`` smoothed while following the edges of ``guide``.

    Local linear model ``q = a * guide + b`` in every box of ``radius``; ``eps`` (in squared
    intensity units) sets how strong an edge of ``guide`` must be to be kept.
    """
    mean_i = box_mean(guide, radius)
    mean_p = box_mean(source, radius)
    cov_ip = box_mean(guide * source, radius)
    cov_ip -= mean_i * mean_p
    var_i = box_mean(guide * guide, radius)
    var_i -= mean_i * mean_i
    a = cov_ip
    a /= var_i + np.float32(eps)
    del var_i
    b = mean_p
    b -= a * mean_i
    del mean_i
    out = box_mean(a, radius)
    out *= guide
    out += box_mean(b, radius)
    return out


def saliency(image: npt.NDArray[np.float32], *, sigma: float = 5.0) -> npt.NDArray[np.float32]:
    """Gaussian-smoothed absolute Laplacian: where a source has local detail."""
    lap = np.abs(ndimage.laplace(image, mode="reflect"))
    return ndimage.gaussian_filter(lap, sigma, mode="reflect", truncate=2.0)


def guided_fusion(
    images: Sequence[npt.NDArray[Any]],
    *,
    mean_filter_size: int = 31,
    base_radius: int = 45,
    base_eps: float = 0.3,
    detail_radius: int = 7,
    detail_eps: float = 1e-6,
    saliency_sigma: float = 5.0,
) -> npt.NDArray[np.float32]:
    """Fuse co-registered images with guided-filter weight maps; ``float32``, input shape.

    Sources are processed one at a time (saliency winner map first, then weighted sums), so
    memory stays near eight image-sized ``float32`` arrays whatever the number of sources.
    """
    srcs = [im.astype(np.float32, copy=False) for im in images]
    winner = np.zeros(srcs[0].shape, dtype=np.uint8)
    best = saliency(srcs[0], sigma=saliency_sigma)
    for n, image in enumerate(srcs[1:], start=1):
        s = saliency(image, sigma=saliency_sigma)
        stronger = s > best
        winner[stronger] = n
        np.copyto(best, s, where=stronger)
    del best

    shape = srcs[0].shape
    base_sum = np.zeros(shape, np.float32)
    detail_sum = np.zeros(shape, np.float32)
    base_w = np.zeros(shape, np.float32)
    detail_w = np.zeros(shape, np.float32)
    base_mean = np.zeros(shape, np.float32)
    for n, image in enumerate(srcs):
        base = ndimage.uniform_filter(image, size=mean_filter_size, mode="reflect")
        detail = image - base
        p = (winner == n).astype(np.float32)
        wb = np.clip(guided_filter(image, p, base_radius, base_eps), 0.0, None)
        wd = np.clip(guided_filter(image, p, detail_radius, detail_eps), 0.0, None)
        del p
        base_sum += wb * base
        base_w += wb
        detail_sum += wd * detail
        detail_w += wd
        base_mean += base
        del wb, wd, base, detail
    tiny = np.float32(1e-6)
    count = np.float32(len(srcs))
    # Voxels where no source got any weight (all filters <= 0) fall back to the mean.
    out = np.where(base_w > tiny, base_sum / np.maximum(base_w, tiny), base_mean / count)
    del base_sum, base_w
    fallback: npt.NDArray[np.float32] | np.float32 = np.float32(0.0)
    if bool(np.any(detail_w <= tiny)):
        fallback = np.zeros(shape, np.float32)
        for image in srcs:
            fallback += image - ndimage.uniform_filter(image, size=mean_filter_size, mode="reflect")
        fallback /= count
    out += np.where(detail_w > tiny, detail_sum / np.maximum(detail_w, tiny), fallback)
    return out.astype(np.float32, copy=False)
