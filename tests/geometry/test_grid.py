"""Grids: extents, overlap checks, one grid for several scans, the grid at another spacing."""

from __future__ import annotations

import numpy as np
import pytest

from napari_medseg.errors import GeometryMismatchError
from napari_medseg.geometry import (
    Grid,
    check_overlap,
    grid_at_spacing,
    grid_oriented,
    physical_extent,
    require_same_grid,
)
from napari_medseg.scan import Geometry
from tests.fusion.conftest import make_scan


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


def test_require_same_grid_names_what_differs() -> None:
    a = make_scan(np.zeros((4, 4, 4), np.float32))
    b = make_scan(np.zeros((4, 4, 4), np.float32), spacing=2.0)
    assert require_same_grid([a, a], purpose="fusion") == Grid.of(a)
    with pytest.raises(GeometryMismatchError, match=r"fusion needs scans on one voxel grid.*"
                       r"spacing.*napari_medseg\.geometry\.resample_to"):
        require_same_grid([a, b], purpose="fusion")


def _grid(spacing: tuple[float, ...], shape: tuple[int, ...]) -> Grid:
    direction = np.diag([1.0, -1.0, -1.0][-len(shape):])
    geometry = Geometry(spacing=spacing, origin=(5.0, -3.0, 7.0)[-len(shape):],
                        direction=direction)
    return Grid(geometry=geometry, shape=shape)


def test_grid_at_spacing_covers_the_same_box_with_origin_and_direction_kept() -> None:
    grid = _grid((3.0, 0.8, 0.8), (40, 256, 250))
    out = grid_at_spacing(grid, (1.5, 1.6, 1.0))
    assert out.geometry.spacing == (1.5, 1.6, 1.0)
    assert out.shape == (80, 128, 200)  # round(n * old / new) per axis
    assert out.geometry.origin == grid.geometry.origin
    np.testing.assert_array_equal(out.geometry.direction, grid.geometry.direction)
    tiny = grid_at_spacing(_grid((1.0, 1.0, 1.0), (1, 2, 2)), (10.0, 10.0, 10.0))
    assert tiny.shape == (1, 1, 1)  # never an empty axis


def test_grid_at_spacing_keeps_the_grid_itself_when_nothing_changes() -> None:
    grid = _grid((3.0, 0.8, 0.8), (40, 256, 250))
    assert grid_at_spacing(grid, None) is grid
    assert grid_at_spacing(grid, (3.05, 0.81, 0.79)) is grid  # within 2 %
    assert grid_at_spacing(grid, (3.0, 0.8, 0.8, 1.0)) is grid  # no rule for 4 values
    assert grid_at_spacing(grid, (3.0, 0.8, 0.9)) is not grid


@pytest.mark.parametrize(("slice_axis", "spacing", "shape"), [
    (0, (3.0, 1.6, 1.6), (40, 128, 125)),
    (1, (1.5, 0.8, 1.6), (80, 256, 125)),
    (2, (1.5, 1.6, 0.8), (80, 128, 250)),
])
def test_an_in_plane_spacing_on_a_volume_sets_the_axes_beside_the_slice_axis(
        slice_axis, spacing, shape) -> None:
    grid = _grid((3.0, 0.8, 0.8), (40, 256, 250))
    in_plane = (1.6, 1.6) if slice_axis == 0 else (1.5, 1.6)
    out = grid_at_spacing(grid, in_plane, slice_axis=slice_axis)
    assert out.geometry.spacing == spacing
    assert out.shape == shape
    assert grid_at_spacing(grid, in_plane, slice_axis=None) is grid  # no axis: no rule


@pytest.mark.parametrize("target", [(2.0, 3.0, 3.0), (3.0, 3.0), None])
def test_training_prepares_volumes_on_that_grid(target) -> None:
    from napari_medseg.models import CheckpointSpec, IntensityContract
    from napari_medseg.scan import LabelMap
    from napari_medseg.training import LabeledVolume, prepare_volume

    rng = np.random.default_rng(0)
    scan = make_scan(rng.normal(size=(6, 12, 12)).astype(np.float32), spacing=1.5)
    labels = LabelMap((scan.array > 0).astype(np.uint8), scan.geometry)
    spec = CheckpointSpec(architecture="unet", spatial_dims=3, in_channels=1, out_channels=2,
                          intensity=[IntensityContract(modality="MR", normalization="zscore")],
                          target_spacing=target)
    prepared = prepare_volume(LabeledVolume([scan], labels), spec)
    expected = grid_at_spacing(Grid.of(scan), target, slice_axis=0)
    assert prepared.grid.shape == expected.shape == prepared.target.shape
    assert prepared.grid.geometry == expected.geometry
    if target is not None:  # (3, 3) in-plane on a volume sliced along axis 0
        assert prepared.grid.geometry.spacing == (2.0 if len(target) == 3 else 1.5, 3.0, 3.0)


def _dicom_like(shape: tuple[int, int, int] = (4, 5, 6)) -> Grid:
    """Stored as DICOM stores an axial series: rows to posterior, columns to the left."""
    return Grid(geometry=Geometry(spacing=(2.0, 0.5, 0.7), origin=(-30.0, -100.0, -80.0),
                                  direction=np.eye(3)), shape=shape)


def _centres(grid: Grid) -> np.ndarray:
    index = np.stack(np.meshgrid(*[np.arange(n) for n in grid.shape], indexing="ij"), -1)
    g = grid.geometry
    return np.asarray(g.origin) + (index.reshape(-1, 3) * np.asarray(g.spacing)) @ g.direction.T


def test_grid_oriented_flips_a_dicom_series_in_plane_onto_the_same_voxels() -> None:
    grid = _dicom_like()
    out = grid_oriented(grid, "RAS")
    np.testing.assert_array_equal(out.geometry.direction, np.diag([1.0, -1.0, -1.0]))
    assert out.shape == grid.shape
    assert out.geometry.spacing == grid.geometry.spacing
    # new voxel (0, 0, 0) is the old (0, last row, last column): rows and columns reversed
    np.testing.assert_allclose(out.geometry.origin, grid.geometry.index_to_world([0, 4, 5]))
    old, new = _centres(grid), _centres(out)
    new_as_old = new.reshape(*grid.shape, 3)[:, ::-1, ::-1].reshape(-1, 3)
    np.testing.assert_allclose(new_as_old, old)  # the same centres, exactly: no interpolation


def test_grid_oriented_keeps_what_already_runs_that_way() -> None:
    ras = _grid((3.0, 0.8, 0.8), (4, 5, 6))  # direction diag(1, -1, -1): a NIfTI file
    assert grid_oriented(ras, "RAS") is ras
    dicom = _dicom_like()
    assert grid_oriented(dicom, None) is dicom
    flat = _grid((0.8, 0.8), (5, 6))
    assert grid_oriented(flat, "RAS") is flat  # 2D images are left as they are
    with pytest.raises(ValueError, match="orientation must be one of"):
        grid_oriented(dicom, "LPI")
