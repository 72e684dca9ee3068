"""Fusion quality metrics against values computed by hand on tiny arrays."""

from __future__ import annotations

import math

import numpy as np
import pytest

from napari_medseg.fusion import entropy, fusion_quality, mutual_information, qabf, ssim


def test_entropy_by_hand() -> None:
    assert entropy(np.array([0, 0, 1, 1])) == pytest.approx(1.0)
    assert entropy(np.array([0, 1, 2, 3])) == pytest.approx(2.0)
    assert entropy(np.full((4, 4), 7.0)) == 0.0
    # p = (3/4, 1/4): H = -(0.75 log2 0.75 + 0.25 log2 0.25)
    expected = -(0.75 * math.log2(0.75) + 0.25 * math.log2(0.25))
    assert entropy(np.array([0, 0, 0, 1])) == pytest.approx(expected)


def test_mutual_information_by_hand() -> None:
    a = np.array([[0, 0], [1, 1]], dtype=float)
    b = np.array([[0, 1], [0, 1]], dtype=float)  # independent of a
    assert mutual_information(a, b) == pytest.approx(0.0, abs=1e-12)
    assert mutual_information(a, a) == pytest.approx(1.0)  # = H(a)
    assert mutual_information(a, 1 - a) == pytest.approx(1.0)  # any bijection
    c = np.array([0, 1, 2, 3], dtype=float)
    assert mutual_information(c, np.array([0, 0, 1, 1.0])) == pytest.approx(1.0)


def test_ssim_by_hand() -> None:
    x = np.random.default_rng(0).random((24, 24))
    assert ssim(x, x) == pytest.approx(1.0)
    # constant images: mu = 0.2 and 0.6, no variance: (2 mx my + C1) / (mx^2 + my^2 + C1)
    a, b = np.full((16, 16), 0.2), np.full((16, 16), 0.6)
    c1 = (0.01 * 1.0) ** 2
    expected = (2 * 0.2 * 0.6 + c1) / (0.2**2 + 0.6**2 + c1)
    assert ssim(a, b, data_range=1.0) == pytest.approx(expected)


def test_ssim_agrees_with_scikit_image() -> None:
    metrics = pytest.importorskip("skimage.metrics")
    rng = np.random.default_rng(1)
    x = rng.random((40, 40))
    y = np.clip(x + 0.2 * rng.standard_normal((40, 40)), 0, 1)
    ref = metrics.structural_similarity(
        x, y, data_range=1.0, gaussian_weights=True, sigma=1.5, use_sample_covariance=False
    )
    assert ssim(x, y, data_range=1.0) == pytest.approx(ref, abs=1e-6)


def _q(g_ratio: float, a_ratio: float) -> float:
    q_g = 0.9994 / (1 + math.exp(-15 * (g_ratio - 0.5)))
    q_a = 0.9879 / (1 + math.exp(-22 * (a_ratio - 0.8)))
    return q_g * q_a


def test_qabf_by_hand() -> None:
    a = np.zeros((9, 9))
    a[:, 4:] = 1.0  # one vertical edge
    b = np.zeros((9, 9))  # no edges: weight 0
    # F = A: every edge pixel keeps its strength (ratio 1) and orientation (ratio 1)
    assert qabf([a, b], a) == pytest.approx(_q(1.0, 1.0))
    # F = A / 2: strength ratio 1/2 everywhere on the edge, orientation kept
    assert qabf([a, b], a / 2) == pytest.approx(_q(0.5, 1.0))
    # F flat: the edge is lost
    assert qabf([a, b], np.zeros((9, 9))) < 0.01
    assert math.isnan(qabf([b, b], a))  # no source edge to preserve
    # 3D volumes pool slices
    vol = np.stack([a, a, a])
    assert qabf([vol, np.zeros_like(vol)], vol) == pytest.approx(_q(1.0, 1.0))


def test_fusion_quality_bundle() -> None:
    rng = np.random.default_rng(2)
    a, b = rng.random((20, 20)), rng.random((20, 20))
    q = fusion_quality([a, b], (a + b) / 2, normalisation="none")
    assert 0 < q.qabf < 1
    assert len(q.mutual_information) == len(q.ssim) == 2
    assert q.mutual_information_total == pytest.approx(sum(q.mutual_information))
    assert set(q.as_dict()) >= {"entropy", "mi_total", "qabf", "ssim_0", "mi_1"}
