"""Geometry arithmetic and the Scan / LabelMap contract."""

from __future__ import annotations

import numpy as np
import pytest

from napari_medseg.errors import GeometryMismatchError
from napari_medseg.scan import Geometry, LabelMap, Scan, strip_image_suffix


def _oblique() -> Geometry:
    c, s = np.cos(0.3), np.sin(0.3)
    direction = np.array([[1, 0, 0], [0, c, -s], [0, s, c]])
    return Geometry(spacing=(5.0, 0.8, 0.7), origin=(10.0, -20.0, 30.0), direction=direction)


def test_index_world_round_trip_on_oblique_grid():
    g = _oblique()
    idx = np.array([[0, 0, 0], [3, 10, 7], [1.5, 2.5, 3.5]])
    world = g.index_to_world(idx)
    np.testing.assert_allclose(world[0], g.origin)
    np.testing.assert_allclose(g.world_to_index(world), idx, atol=1e-9)
    # moving one voxel along axis 0 moves spacing[0] mm along direction[:, 0]
    np.testing.assert_allclose(world[1] - world[0], g.affine[:3, :3] @ idx[1])
    np.testing.assert_allclose(np.linalg.norm(g.index_to_world([1, 0, 0]) - g.origin), 5.0)


def test_itk_order_is_reversed():
    g = Geometry.from_itk((0.7, 0.8, 5.0), (30.0, -20.0, 10.0), (1, 0, 0, 0, 1, 0, 0, 0, -1))
    assert g.spacing == (5.0, 0.8, 0.7)
    assert g.origin == (10.0, -20.0, 30.0)
    np.testing.assert_array_equal(np.diag(g.direction), [-1, 1, 1])
    spacing, origin, direction = g.to_itk()
    assert spacing == (0.7, 0.8, 5.0)
    assert origin == (30.0, -20.0, 10.0)
    assert direction == (1, 0, 0, 0, 1, 0, 0, 0, -1)


def test_affine_round_trip_and_dict():
    g = _oblique()
    assert Geometry.from_affine(g.affine).is_close(g)
    assert Geometry.from_dict(g.to_dict()) == g
    assert not g.is_axis_aligned
    assert Geometry.identity(2).is_axis_aligned


@pytest.mark.parametrize(
    ("spacing", "origin", "direction", "match"),
    [
        ((1.0, 0.0, 1.0), (0, 0, 0), np.eye(3), "positive"),
        ((1.0, 1.0), (0, 0, 0), np.eye(2), "agree"),
        ((1.0, 1.0, 1.0), (0, 0, 0), np.zeros((3, 3)), "singular"),
        ((1.0,), (0,), np.eye(1), "2 or 3 axes"),
        ((1.0, np.nan), (0, 0), np.eye(2), "positive"),
    ],
)
def test_invalid_geometry_is_refused(spacing, origin, direction, match):
    with pytest.raises(ValueError, match=match):
        Geometry(spacing=spacing, origin=origin, direction=direction)


def test_label_map_checks_grid_and_names_difference():
    g = _oblique()
    scan = Scan(np.zeros((4, 5, 6), np.int16), g)
    labels = LabelMap(np.zeros((4, 5, 6), np.uint8), g)
    labels.check_matches(scan)
    assert labels.class_names == {0: "background"}
    moved = Geometry(spacing=g.spacing, origin=(11.0, -20.0, 30.0), direction=g.direction)
    with pytest.raises(GeometryMismatchError, match=r"origin \(11"):
        LabelMap(np.zeros((4, 5, 6), np.uint8), moved).check_matches(scan)
    with pytest.raises(GeometryMismatchError, match="shape"):
        LabelMap(np.zeros((4, 5, 7), np.uint8), g).check_matches(scan)
    with pytest.raises(ValueError, match="integers"):
        LabelMap(np.zeros((4, 5, 6), np.float32), g)


def test_names():
    assert strip_image_suffix("ct.nii.gz") == "ct"
    assert strip_image_suffix("x.MHA") == "x"
    assert strip_image_suffix("folder") == "folder"


def test_names_for_messages_prefer_the_display_name():
    from pathlib import Path

    geometry = Geometry.identity(2)
    scan = Scan(np.zeros((2, 2)), geometry)
    assert scan.name == "scan"
    scan.source = Path("/data/t1.nii.gz")
    assert scan.name == "t1"
    scan.display_name = "T1 (corrected)"
    assert scan.name == "T1 (corrected)"
    labels = LabelMap(np.zeros((2, 2), np.uint8), geometry)
    assert labels.name == "labels"
    labels.display_name = "pred"
    assert labels.name == "pred"
