"""Fusion quality metrics without a reference image (Tawfik 2021, section on evaluation).

* :func:`entropy` - Shannon entropy of the fused image's histogram, in bits;
* :func:`mutual_information` - between the fused image and each source, in bits;
* :func:`qabf` - Xydeas & Petrovic's Q^AB/F (2000): how much of the sources' edge strength
  and orientation (Sobel) survives in the fused image, ``0..1`` (1: all of it);
* :func:`ssim` - Wang et al.'s structural similarity (2004), Gaussian window, against each
  source, ``-1..1``.

Inputs are arrays of one shape, 2D ``(Y, X)`` or 3D ``(Z, Y, X)``; compare a fused image with
sources *normalised the way the fusion normalised them* (:func:`fusion_quality` does), or
edge strengths and SSIM compare different intensity scales.  Written here with numpy and
scipy: Q^AB/F exists in no maintained Python library; SSIM follows scikit-image's
``structural_similarity(gaussian_weights=True, sigma=1.5, use_sample_covariance=False)``.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import numpy.typing as npt
from scipy import ndimage

from napari_medseg.fusion.normalise import Normalisation, normalise
from napari_medseg.scan import Scan

# Q^AB/F constants (Xydeas & Petrovic 2000): sigmoid gain, slope and centre for edge
# strength (g) and orientation (alpha).
_GAMMA_G, _KAPPA_G, _SIGMA_G = 0.9994, -15.0, 0.5
_GAMMA_A, _KAPPA_A, _SIGMA_A = 0.9879, -22.0, 0.8


@dataclass(frozen=True)
class FusionQuality:
    """Quality of one fused image against its ``N`` sources (see the module docstring)."""

    entropy: float
    mutual_information: tuple[float, ...]
    qabf: float
    ssim: tuple[float, ...]

    @property
    def mutual_information_total(self) -> float:
        """Sum over sources (the usual "MI" fusion score)."""
        return float(sum(self.mutual_information))

    def as_dict(self) -> dict[str, float]:
        out = {"entropy": self.entropy, "mi_total": self.mutual_information_total}
        out["qabf"] = self.qabf
        for k, (mi, s) in enumerate(zip(self.mutual_information, self.ssim, strict=True)):
            out[f"mi_{k}"] = mi
            out[f"ssim_{k}"] = s
        return out


# ---------------------------------------------------------------------------- histograms
def _bin_indices(
    image: npt.NDArray[Any], bins: int, value_range: tuple[float, float] | None
) -> npt.NDArray[np.int32]:
    x = np.asarray(image).reshape(-1)
    lo, hi = value_range if value_range is not None else (float(x.min()), float(x.max()))
    if hi <= lo:
        return np.zeros(x.shape, dtype=np.int32)
    scaled = (x.astype(np.float64) - lo) * (bins / (hi - lo))
    return np.clip(scaled, 0, bins - 1).astype(np.int32)


def _entropy_of_counts(counts: npt.NDArray[Any]) -> float:
    p = counts[counts > 0].astype(np.float64)
    p /= p.sum()
    return float(-(p * np.log2(p)).sum())


def entropy(
    image: npt.NDArray[Any], *, bins: int = 256, value_range: tuple[float, float] | None = None
) -> float:
    """Shannon entropy (bits) of the ``bins``-bin histogram over ``value_range`` (min..max)."""
    return _entropy_of_counts(np.bincount(_bin_indices(image, bins, value_range), minlength=bins))


def mutual_information(a: npt.NDArray[Any], b: npt.NDArray[Any], *, bins: int = 256) -> float:
    """Mutual information (bits) of two same-shaped images, ``bins`` bins over each range."""
    if a.shape != b.shape:
        msg = f"mutual information needs equal shapes, got {a.shape} and {b.shape}"
        raise ValueError(msg)
    ia = _bin_indices(a, bins, None).astype(np.int64)
    ib = _bin_indices(b, bins, None)
    joint = np.bincount(ia * bins + ib, minlength=bins * bins).reshape(bins, bins)
    h_a = _entropy_of_counts(joint.sum(axis=1))
    h_b = _entropy_of_counts(joint.sum(axis=0))
    return max(0.0, h_a + h_b - _entropy_of_counts(joint))


# ---------------------------------------------------------------------------- SSIM
def ssim(
    a: npt.NDArray[Any],
    b: npt.NDArray[Any],
    *,
    data_range: float | None = None,
    sigma: float = 1.5,
    k1: float = 0.01,
    k2: float = 0.03,
) -> float:
    """Mean structural similarity of ``a`` and ``b`` (Gaussian window ``sigma`` voxels).

    ``data_range`` (the intensity span, for the stabilising constants) defaults to the
    larger of the two images' ``max - min``.  Local statistics use the population
    (not the sample) covariance.
    """
    if a.shape != b.shape:
        msg = f"SSIM needs equal shapes, got {a.shape} and {b.shape}"
        raise ValueError(msg)
    # float64 for small images (exact comparisons), float32 for volumes (memory).
    dtype = np.float64 if a.size <= 4_000_000 else np.float32
    x: npt.NDArray[np.floating[Any]] = np.asarray(a, dtype=dtype)
    y: npt.NDArray[np.floating[Any]] = np.asarray(b, dtype=dtype)
    if data_range is None:
        data_range = max(float(np.ptp(x)), float(np.ptp(y))) or 1.0
    c1 = (k1 * data_range) ** 2
    c2 = (k2 * data_range) ** 2

    def blur(v: npt.NDArray[np.floating[Any]]) -> npt.NDArray[np.floating[Any]]:
        return ndimage.gaussian_filter(v, sigma, mode="reflect", truncate=3.5)

    mx, my = blur(x), blur(y)
    vx = blur(x * x) - mx * mx
    vy = blur(y * y) - my * my
    cxy = blur(x * y) - mx * my
    s = ((2 * mx * my + c1) * (2 * cxy + c2)) / ((mx * mx + my * my + c1) * (vx + vy + c2))
    # Like scikit-image, leave out a border of the window's half-width.
    pad = (int(3.5 * sigma + 0.5) * 2 + 1) // 2
    inner = tuple(slice(pad, -pad) if n > 2 * pad else slice(None) for n in s.shape)
    return float(s[inner].mean())


# ---------------------------------------------------------------------------- Q^AB/F
def _edges_2d(image: npt.NDArray[np.float64]) -> tuple[npt.NDArray[Any], npt.NDArray[Any]]:
    """Sobel edge strength and orientation (radians, in [-pi/2, pi/2]) of a 2D image."""
    sx = ndimage.sobel(image, axis=1, mode="reflect")
    sy = ndimage.sobel(image, axis=0, mode="reflect")
    strength = np.hypot(sx, sy)
    with np.errstate(divide="ignore", invalid="ignore"):
        alpha = np.where(sx == 0, np.pi / 2, np.arctan(sy / np.where(sx == 0, 1.0, sx)))
    return strength, alpha


def _preservation(
    g_src: npt.NDArray[Any], a_src: npt.NDArray[Any], g_f: npt.NDArray[Any], a_f: npt.NDArray[Any]
) -> npt.NDArray[np.float64]:
    """Per-pixel edge preservation Q^{SF} of source S in the fused image F (0..1)."""
    with np.errstate(divide="ignore", invalid="ignore"):
        g_ratio = np.where(
            np.maximum(g_src, g_f) > 0, np.minimum(g_src, g_f) / np.maximum(g_src, g_f), 1.0
        )
    a_ratio = 1.0 - np.abs(a_src - a_f) / (np.pi / 2)
    q_g = _GAMMA_G / (1.0 + np.exp(_KAPPA_G * (g_ratio - _SIGMA_G)))
    q_a = _GAMMA_A / (1.0 + np.exp(_KAPPA_A * (a_ratio - _SIGMA_A)))
    return q_g * q_a


def qabf(sources: Sequence[npt.NDArray[Any]], fused: npt.NDArray[Any]) -> float:
    """Q^AB/F edge preservation of ``fused`` with respect to ``sources`` (usually two).

    ``sum_n sum_p Q^{nF}(p) w_n(p) / sum_n sum_p w_n(p)`` with ``w_n`` the Sobel edge
    strength of source ``n`` (L = 1).  3D volumes are measured slice by slice along axis 0
    and the sums pooled over slices.  ``nan`` when no source has any edge.
    """
    f = np.asarray(fused, dtype=np.float64)
    for s in sources:
        if s.shape != f.shape:
            msg = f"Q^AB/F needs equal shapes, got {s.shape} and {f.shape}"
            raise ValueError(msg)
    slices = [(...,)] if f.ndim == 2 else [(k,) for k in range(f.shape[0])]
    num = den = 0.0
    for index in slices:
        g_f, a_f = _edges_2d(f[index])
        for s in sources:
            g_s, a_s = _edges_2d(np.asarray(s[index], dtype=np.float64))
            num += float((_preservation(g_s, a_s, g_f, a_f) * g_s).sum())
            den += float(g_s.sum())
    return num / den if den > 0 else float("nan")


# ---------------------------------------------------------------------------- all at once
def fusion_quality(
    sources: Sequence[Scan | npt.NDArray[Any]],
    fused: Scan | npt.NDArray[Any],
    *,
    normalisation: Normalisation = "percentile",
    bins: int = 256,
) -> FusionQuality:
    """All metrics of a fused image; sources are normalised first with ``normalisation``
    (use the fusion's own), the fused image is taken as it is."""
    src = [normalise(_array(s), normalisation) for s in sources]
    f = np.asarray(_array(fused), dtype=np.float32)
    return FusionQuality(
        entropy=entropy(f, bins=bins),
        mutual_information=tuple(mutual_information(f, s, bins=bins) for s in src),
        qabf=qabf(src, f),
        ssim=tuple(ssim(s, f) for s in src),
    )


def _array(item: Scan | npt.NDArray[Any]) -> npt.NDArray[Any]:
    return item.array if isinstance(item, Scan) else np.asarray(item)
