"""Grids, overlap checks, resampling of scans and label maps, transform files."""

from __future__ import annotations

import numpy as np
import pytest
import SimpleITK as sitk

from napari_medseg.errors import FusionError, GeometryMismatchError, OutputExistsError
from napari_medseg.fusion import (
    Grid,
    check_overlap,
    load_transform,
    physical_extent,
    resample_to,
    save_transform,
    transform_points,
)
from napari_medseg.scan import Geometry, LabelMap

from .conftest import make_scan


def test_extent_covers_voxel_corners() -> None:
    scan = make_scan(np.zeros((2, 3, 4), np.float32), spacing=2.0, origin=10.0)
    extent = physical_extent(scan)
    assert extent.lower == (9.0, 9.0, 9.0)
    assert extent.upper == (13.0, 15.0, 17.0)


def test_no_overlap_names_both_extents() -> None:
    a = make_scan(np.zeros((4, 4, 4), np.float32))
    b = make_scan(np.zeros((4, 4, 4), np.float32), origin=500.0)
    with pytest.raises(GeometryMismatchError, match=r"do not overlap.*mm.*mm.*moments") as info:
        check_overlap(a, b)
    assert "z -0.5..3.5" in str(info.value)
    assert "z 499.5..503.5" in str(info.value)


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


def test_transform_points_uses_zyx_order() -> None:
    shift = sitk.TranslationTransform(3, (1.0, 2.0, 3.0))  # ITK x, y, z
    out = transform_points(shift, [[0.0, 0.0, 0.0]])
    np.testing.assert_allclose(out, [[3.0, 2.0, 1.0]])


@pytest.mark.parametrize("suffix", [".tfm", ".h5"])
def test_transform_file_round_trip_and_no_clobber(tmp_path, suffix) -> None:
    affine = sitk.AffineTransform(3)
    affine.SetMatrix((1.0, 0.1, 0.0, 0.0, 1.0, 0.0, 0.0, 0.0, 1.0))
    bspline = sitk.BSplineTransform(3, 3)
    bspline.SetTransformDomainOrigin((0.0, 0.0, 0.0))
    bspline.SetTransformDomainPhysicalDimensions((10.0, 10.0, 10.0))
    bspline.SetTransformDomainMeshSize((2, 2, 2))
    params = np.linspace(-0.5, 0.5, bspline.GetNumberOfParameters())
    bspline.SetParameters(params.tolist())
    composite = sitk.CompositeTransform([affine, bspline])
    path = save_transform(composite, tmp_path / f"t{suffix}")
    back = load_transform(path)
    p = (3.0, 4.0, 5.0)
    np.testing.assert_allclose(back.TransformPoint(p), composite.TransformPoint(p), atol=1e-9)
    before = path.read_bytes()
    with pytest.raises(OutputExistsError):
        save_transform(affine, path)
    assert path.read_bytes() == before
    save_transform(affine, path, overwrite=True)
    assert [q.name for q in tmp_path.iterdir()] == [path.name]  # no temporary left over


def test_transform_file_errors(tmp_path) -> None:
    with pytest.raises(FusionError, match="must end in"):
        save_transform(sitk.Euler3DTransform(), tmp_path / "t.json")
    with pytest.raises(FusionError, match="does not exist"):
        load_transform(tmp_path / "missing.tfm")
    bad = tmp_path / "bad.tfm"
    bad.write_text("not a transform")
    with pytest.raises(FusionError, match="could not be read"):
        load_transform(bad)
