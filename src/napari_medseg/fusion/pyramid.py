"""Laplacian pyramid fusion (Burt & Adelson 1983; Burt & Kolczynski 1993), in 2D and 3D.

Each source is split into band-pass detail levels and a low-pass residual; details are fused
by a per-voxel rule (largest magnitude wins, keeping the stronger edge), the residual by
averaging, and the pyramid is collapsed again.  Written here with scipy's Gaussian filter:
no maintained library offers n-dimensional Laplacian pyramid fusion.

Reconstruction is exact whatever the filters: level ``k`` stores ``G_k - expand(G_{k+1})``
and collapsing adds back the same ``expand``.  So fusing an image with itself returns it.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any, Literal

import numpy as np
import numpy.typing as npt
from scipy import ndimage

CoefficientRule = Literal["max", "average"]

_SIGMA = 1.0


def reduce(image: npt.NDArray[np.float32]) -> npt.NDArray[np.float32]:
    """Gaussian blur (sigma 1 voxel) then keep every second voxel along every axis."""
    blurred = ndimage.gaussian_filter(image, _SIGMA, mode="reflect")
    return np.ascontiguousarray(blurred[tuple(slice(None, None, 2) for _ in image.shape)])


def expand(image: npt.NDArray[np.float32], shape: tuple[int, ...]) -> npt.NDArray[np.float32]:
    """Upsample by two along every axis to ``shape`` (voxel repetition + Gaussian blur)."""
    out = image
    for axis, size in enumerate(shape):
        out = np.repeat(out, 2, axis=axis)
        out = out.take(np.arange(size), axis=axis)
    return ndimage.gaussian_filter(out, _SIGMA, mode="reflect")


def max_levels(shape: tuple[int, ...]) -> int:
    """Most levels such that the residual keeps at least 2 voxels along every axis."""
    return max(0, math.floor(math.log2(max(1, min(shape)))) - 1)


def laplacian_pyramid(image: npt.NDArray[Any], levels: int) -> list[npt.NDArray[np.float32]]:
    """``levels`` detail bands (finest first) followed by the low-pass residual."""
    levels = min(levels, max_levels(image.shape))
    current = image.astype(np.float32, copy=False)
    pyramid = []
    for _ in range(levels):
        smaller = reduce(current)
        pyramid.append(current - expand(smaller, current.shape))
        current = smaller
    pyramid.append(current)
    return pyramid


def collapse(pyramid: Sequence[npt.NDArray[np.float32]]) -> npt.NDArray[np.float32]:
    """Inverse of :func:`laplacian_pyramid`."""
    current = pyramid[-1]
    for detail in reversed(pyramid[:-1]):
        current = detail + expand(current, detail.shape)
    return current


def laplacian_fusion(
    images: Sequence[npt.NDArray[Any]],
    *,
    levels: int = 4,
    detail_rule: CoefficientRule = "max",
    base_rule: CoefficientRule = "average",
) -> npt.NDArray[np.float32]:
    """Fuse co-registered images by their Laplacian pyramids.

    ``detail_rule="max"`` keeps, voxel by voxel and level by level, the detail coefficient of
    largest magnitude; ``"average"`` averages them.  ``base_rule`` treats the residual the
    same way (``"max"`` keeps the brighter one).  Pyramids are built one source at a time,
    so memory stays near two pyramids (about 2.3x one image each).
    """
    fused: list[npt.NDArray[np.float32]] = []
    for n, image in enumerate(images):
        pyramid = laplacian_pyramid(image, levels)
        if n == 0:
            fused = pyramid
            continue
        for k, band in enumerate(pyramid):
            is_base = k == len(pyramid) - 1
            rule = base_rule if is_base else detail_rule
            _merge(fused[k], band, rule, count=n, magnitude=not is_base)
    if len(images) > 1:
        for k, band in enumerate(fused):
            is_base = k == len(fused) - 1
            if (base_rule if is_base else detail_rule) == "average":
                band /= np.float32(len(images))
    return collapse(fused)


def _merge(
    into: npt.NDArray[np.float32],
    band: npt.NDArray[np.float32],
    rule: CoefficientRule,
    *,
    count: int,
    magnitude: bool,
) -> None:
    """Merge ``band`` into the running result ``into`` in place (sum for "average")."""
    if rule == "average":
        into += band
        return
    stronger = np.abs(band) > np.abs(into) if magnitude else band > into
    np.copyto(into, band, where=stronger)
