"""Resampling of scans and label maps onto another grid, with or without a transform."""

from __future__ import annotations

import numpy as np
import pytest
import SimpleITK as sitk

from napari_medseg.errors import GeometryMismatchError
from napari_medseg.geometry import Grid, resample_to
from napari_medseg.scan import Geometry, LabelMap
from tests.fusion.conftest import make_scan


def test_2d_with_3d_is_refused() -> None:
    a = make_scan(np.zeros((4, 4, 4), np.float32))
    b = make_scan(np.zeros((4, 4), np.float32))
    with pytest.raises(GeometryMismatchError, match=r"3D.*2D"):
        resample_to(b, a)


def test_same_grid_identity_keeps_values() -> None:
    rng = np.random.default_rng(0)
    scan = make_scan(rng.random((5, 6, 7)).astype(np.float32), spacing=1.5)
    out = resample_to(scan, scan)
    np.testing.assert_allclose(out.array, scan.array, atol=1e-6)
    assert out.geometry == scan.geometry


def test_translation_moves_content_by_whole_voxels() -> None:
    array = np.zeros((8, 8, 8), np.float32)
    array[4, 4, 4] = 1.0
    scan = make_scan(array, spacing=2.0)
    # fixed -> moving: +4 mm along x (ITK order) reads the moving scan two voxels further
    shift = sitk.TranslationTransform(3, (4.0, 0.0, 0.0))
    out = resample_to(scan, scan, transform=shift, default_value=0.0)
    assert out.array[4, 4, 2] == pytest.approx(1.0)
    assert out.array.sum() == pytest.approx(1.0)


def test_reference_geometry_needs_shape_and_fills_outside() -> None:
    scan = make_scan(np.ones((4, 4, 4), np.float32) * 5)
    target = Geometry(spacing=(1.0,) * 3, origin=(2.0,) * 3, direction=np.eye(3))
    with pytest.raises(ValueError, match="shape"):
        resample_to(scan, target)
    out = resample_to(scan, target, shape=(4, 4, 4), default_value=-1.0)
    assert out.array[0, 0, 0] == 5.0
    assert out.array[3, 3, 3] == -1.0


def test_labels_use_nearest_neighbour_and_keep_values() -> None:
    labels = np.zeros((10, 10, 10), np.uint8)
    labels[2:5] = 3
    labels[5:8] = 7
    lm = LabelMap(array=labels, geometry=make_scan(labels.astype(np.float32)).geometry)
    fine = Grid(
        geometry=Geometry(spacing=(0.7,) * 3, origin=(0.1,) * 3, direction=np.eye(3)),
        shape=(13, 13, 13),
    )
    rot = sitk.Euler3DTransform((4.5, 4.5, 4.5), 0.1, 0.05, 0.2, (0.3, 0.0, 0.0))
    out = resample_to(lm, fine, transform=rot)
    assert isinstance(out, LabelMap)
    assert out.array.dtype == np.uint8
    assert set(np.unique(out.array)) <= {0, 3, 7}
    assert out.class_names == lm.class_names
    with pytest.raises(ValueError, match="nearest"):
        resample_to(lm, fine, interpolation="linear")
