"""Pixel-level fusion rules, checked on the properties each must have."""

from __future__ import annotations

import numpy as np
import pytest

from napari_medseg.errors import FusionError, GeometryMismatchError
from napari_medseg.events import Progress
from napari_medseg.fusion import FUSION_METHODS, FusionOptions, fuse, fuse_arrays, fuse_job
from napari_medseg.fusion.normalise import normalise
from napari_medseg.fusion.weighted import pca_weights
from napari_medseg.scan import Geometry, Scan

from .conftest import make_scan

RAW = FusionOptions(normalisation="none")


def _options(method: str, **kwargs) -> FusionOptions:
    return FusionOptions(method=method, normalisation="none", **kwargs)


def _smooth_random(shape: tuple[int, ...], seed: int) -> np.ndarray:
    from scipy import ndimage

    rng = np.random.default_rng(seed)
    return ndimage.gaussian_filter(rng.random(shape), 1.5).astype(np.float32)


@pytest.mark.parametrize("method", FUSION_METHODS)
@pytest.mark.parametrize("shape", [(48, 40), (20, 24, 28)])
def test_fusing_a_scan_with_itself_returns_it(method, shape) -> None:
    image = _smooth_random(shape, 0)
    out = fuse_arrays([image, image, image], options=_options(method))
    assert out.shape == shape
    assert out.dtype == np.float32
    np.testing.assert_allclose(out, image, atol=1e-5)


@pytest.mark.parametrize("method", FUSION_METHODS)
def test_fused_values_stay_between_the_sources_range(method) -> None:
    a, b = _smooth_random((40, 40), 1), _smooth_random((40, 40), 2)
    out = fuse_arrays([a, b], options=_options(method))
    assert np.isfinite(out).all()
    lo, hi = min(a.min(), b.min()), max(a.max(), b.max())
    span = hi - lo
    assert out.min() > lo - 0.5 * span
    assert out.max() < hi + 0.5 * span


def _half_detail_pair() -> tuple[np.ndarray, np.ndarray]:
    """Two images: one with a texture on the left half, the other on the right half."""
    y, x = np.mgrid[0:64, 0:64]
    texture = (0.5 + 0.4 * np.sin(x * 1.3) * np.cos(y * 1.1)).astype(np.float32)
    a = np.full((64, 64), 0.5, np.float32)
    b = a.copy()
    a[:, :32] = texture[:, :32]
    b[:, 32:] = texture[:, 32:]
    return a, b


@pytest.mark.parametrize("method", ["laplacian", "wavelet", "guided"])
def test_max_rule_keeps_the_stronger_detail(method) -> None:
    a, b = _half_detail_pair()
    fused = fuse_arrays([a, b], options=_options(method))
    average = fuse_arrays([a, b], options=_options("weighted"))
    inner = (slice(8, -8), slice(8, 24)), (slice(8, -8), slice(40, -8))
    for region, source in zip(inner, (a, b), strict=True):
        kept = fused[region].std() / source[region].std()
        assert kept > 0.85, f"{method} kept {kept:.2f} of the detail"
        assert average[region].std() / source[region].std() == pytest.approx(0.5, abs=0.01)


def test_average_rule_halves_the_detail() -> None:
    a, b = _half_detail_pair()
    fused = fuse_arrays([a, b], options=_options("laplacian", detail_rule="average"))
    region = (slice(8, -8), slice(8, 24))
    assert fused[region].std() / a[region].std() == pytest.approx(0.5, abs=0.05)


def test_weights_select_and_are_checked() -> None:
    a, b = _smooth_random((16, 16), 3), _smooth_random((16, 16), 4)
    out = fuse_arrays([a, b], options=_options("weighted", weights=(1.0, 0.0)))
    np.testing.assert_array_equal(out, a)
    out = fuse_arrays([a, b], options=_options("weighted", weights=(1.0, 3.0)))
    np.testing.assert_allclose(out, 0.25 * a + 0.75 * b, atol=1e-6)
    with pytest.raises(FusionError, match="one weight per scan"):
        fuse_arrays([a, b], options=_options("weighted", weights=(1.0,)))
    with pytest.raises(FusionError, match="non-negative"):
        fuse_arrays([a, b], options=_options("weighted", weights=(1.0, -1.0)))


def test_pca_weights() -> None:
    a = _smooth_random((32, 32), 5)
    np.testing.assert_allclose(pca_weights([a, a]), [0.5, 0.5])
    flat = np.full_like(a, 0.3)
    np.testing.assert_allclose(pca_weights([a, flat]), [1.0, 0.0], atol=1e-9)
    np.testing.assert_array_equal(fuse_arrays([a, flat], options=_options("pca")), a)
    w = pca_weights([a, 3 * a])  # the more varying source weighs more: 1 : 3
    np.testing.assert_allclose(w, [0.25, 0.75])


def test_normalisation_puts_modalities_on_one_scale() -> None:
    ct = np.linspace(-1000, 2000, 1000, dtype=np.float32).reshape(10, 100)
    out = normalise(ct, "minmax")
    assert out.min() == 0.0
    assert out.max() == 1.0
    out = normalise(ct, "percentile")
    assert out.min() == 0.0
    assert out.max() == 1.0
    z = normalise(ct, "zscore")
    assert abs(float(z.mean())) < 1e-5
    assert float(z.std()) == pytest.approx(1.0, abs=1e-4)
    assert normalise(np.ones((3, 3)), "minmax").max() == 0.0


def test_scans_must_share_a_grid() -> None:
    a = make_scan(_smooth_random((8, 8, 8), 6))
    b = make_scan(_smooth_random((8, 8, 8), 7), spacing=2.0)
    with pytest.raises(GeometryMismatchError, match=r"spacing.*register or resample"):
        fuse([a, b])
    with pytest.raises(FusionError, match="two or more"):
        fuse([a])


def test_fuse_job_yields_progress_and_keeps_geometry() -> None:
    geometry = Geometry(spacing=(2.0, 0.5, 0.5), origin=(1.0, 2.0, 3.0), direction=np.eye(3))
    a = Scan(array=_smooth_random((6, 10, 12), 8) * 1000, geometry=geometry)
    b = Scan(array=_smooth_random((6, 10, 12), 9), geometry=geometry)
    events = []
    job = fuse_job([a, b], options=FusionOptions(method="wavelet"))
    try:
        while True:
            events.append(next(job))
    except StopIteration as stop:
        fused = stop.value
    assert all(isinstance(e, Progress) for e in events)
    assert events[-1].done == events[-1].total == 3
    assert fused.geometry == geometry
    assert fused.metadata["fusion_method"] == "wavelet"
    assert fused.array.min() > -0.2  # normalised scale
    assert fused.array.max() < 1.2


def test_unknown_options_are_refused() -> None:
    with pytest.raises(ValueError, match="fusion method"):
        FusionOptions(method="median")  # type: ignore[arg-type]
    with pytest.raises(FusionError, match="wavelet"):
        fuse_arrays([np.zeros((8, 8)), np.ones((8, 8))], options=_options("wavelet", wavelet="x"))
