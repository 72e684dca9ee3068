"""Shape-based interpolation across several annotated slices and the range it covers:
:func:`interpolate_slices`, :func:`interpolation_range` (two slices: tests/training/
test_corrections.py)."""

from __future__ import annotations

import numpy as np
import pytest

from napari_medseg.geometry.interpolation import (
    interpolate_between_slices,
    interpolate_slices,
    interpolation_range,
    signed_distance,
)


def _disc(shape: tuple[int, int], radius: float, centre: tuple[float, float]) -> np.ndarray:
    yy, xx = np.indices(shape)
    return (yy - centre[0]) ** 2 + (xx - centre[1]) ** 2 <= radius**2


def _put(labels: np.ndarray, axis: int, index: int, plane: np.ndarray) -> None:
    region: list[object] = [slice(None)] * 3
    region[axis] = index
    labels[tuple(region)] = plane


def _area(labels: np.ndarray, axis: int, index: int, value: int = 1) -> int:
    return int((np.take(labels, index, axis=axis) == value).sum())


@pytest.mark.parametrize("axis", [0, 1, 2])
def test_fills_between_annotated_slices_and_nothing_outside_their_range(axis: int) -> None:
    shape = [30, 30, 30]
    shape[axis] = 16
    plane_shape = tuple(n for i, n in enumerate(shape) if i != axis)
    labels = np.zeros(shape, np.uint8)
    slices = (3, 8, 12)
    for s, radius in zip(slices, (3, 9, 5), strict=True):
        _put(labels, axis, s, _disc(plane_shape, radius, (15, 15)).astype(np.uint8))
    # labels off the annotated slices are not the person's: they are ignored
    _put(labels, axis, 0, np.ones(plane_shape, np.uint8))
    _put(labels, axis, 15, np.ones(plane_shape, np.uint8))
    _put(labels, axis, 10, np.full(plane_shape, 2, np.uint8))
    out = interpolate_slices(labels, slices, axis)
    inside = interpolation_range(labels.shape, slices, axis)
    assert not out[~inside].any()
    assert [i for i in range(labels.shape[axis]) if inside.take(i, axis=axis).all()] == list(
        range(3, 13))
    for s in slices:
        np.testing.assert_array_equal(np.take(out, s, axis=axis), np.take(labels, s, axis=axis))
    assert set(np.unique(out)) == {0, 1}  # the stray class 2 of slice 10 is gone
    areas = [_area(out, axis, i) for i in range(labels.shape[axis])]
    assert all(areas[i] > 0 for i in range(3, 13))
    # growing from slice 3 to 8, shrinking from 8 to 12, in between in size
    assert areas[3] < areas[4] < areas[6] < areas[7] < areas[8]
    assert areas[8] > areas[9] > areas[11] > areas[12]


def test_a_shape_between_two_slices_is_in_between_in_size_and_place() -> None:
    labels = np.zeros((9, 48, 48), np.uint8)
    labels[0][_disc((48, 48), 5, (20, 20))] = 1
    labels[8][_disc((48, 48), 13, (26, 26))] = 1
    out = interpolate_slices(labels, [0, 8])
    middle = out[4] == 1
    small, large = int((labels[0] == 1).sum()), int((labels[8] == 1).sum())
    assert small < middle.sum() < large
    quarter, three_quarters = (out[2] == 1).sum(), (out[6] == 1).sum()
    assert small < quarter < middle.sum() < three_quarters < large
    np.testing.assert_allclose(np.argwhere(middle).mean(0), (23, 23), atol=0.5)


def test_two_classes_interpolate_separately() -> None:
    labels = np.zeros((5, 40, 40), np.uint8)
    for s, (r1, r2) in {0: (4, 8), 4: (8, 4)}.items():
        labels[s][_disc((40, 40), r1, (10, 10))] = 1
        labels[s][_disc((40, 40), r2, (28, 28))] = 2
    out = interpolate_slices(labels, [0, 4])
    ones = [_area(out, 0, i, 1) for i in range(5)]
    twos = [_area(out, 0, i, 2) for i in range(5)]
    assert ones == sorted(ones)
    assert twos == sorted(twos, reverse=True)
    assert ones[0] < ones[2] < ones[4]
    assert twos[0] > twos[2] > twos[4]
    # each class stays where it was
    assert not (out[:, 20:, 20:] == 1).any()
    assert not (out[:, :20, :20] == 2).any()


def test_a_class_on_one_slice_only_shrinks_away_towards_the_other() -> None:
    labels = np.zeros((7, 30, 30), np.uint8)
    labels[0][_disc((30, 30), 8, (15, 15))] = 1
    labels[6][_disc((30, 30), 8, (15, 15))] = 2
    out = interpolate_slices(labels, [0, 6])
    ones = [_area(out, 0, i, 1) for i in range(7)]
    twos = [_area(out, 0, i, 2) for i in range(7)]
    assert ones == sorted(ones, reverse=True)
    assert twos == sorted(twos)
    assert ones[5] < ones[1]
    assert twos[1] < twos[5]


def test_neighbouring_or_single_slices_add_nothing() -> None:
    labels = np.zeros((6, 10, 10), np.uint8)
    labels[2, 3:7, 3:7] = 1
    labels[3, 2:8, 2:8] = 1
    out = interpolate_slices(labels, [2, 3])
    np.testing.assert_array_equal(out, labels)
    single = interpolate_slices(labels, [3])
    expected = np.zeros_like(labels)
    expected[3] = labels[3]
    np.testing.assert_array_equal(single, expected)
    assert not interpolation_range(labels.shape, []).any()
    assert out is not labels
    assert out.dtype == labels.dtype


def test_spacing_sets_the_distance_unit_in_plane() -> None:
    """Signed distances are in mm with a spacing: negative inside, positive outside."""
    mask = np.zeros((9, 9), bool)
    mask[4, 2:7] = True
    d = signed_distance(mask)
    assert d[4, 4] < 0
    assert d[0, 4] == pytest.approx(4.0)
    assert signed_distance(mask, (2.0, 1.0))[0, 4] == pytest.approx(8.0)
    assert np.isinf(signed_distance(np.zeros((3, 3), bool))).all()


def test_bad_inputs_are_refused() -> None:
    with pytest.raises(ValueError, match="3D label array"):
        interpolate_between_slices(np.zeros((4, 4), np.uint8), 0, 3)
    with pytest.raises(ValueError, match="outside"):
        interpolate_between_slices(np.zeros((4, 4, 4), np.uint8), 0, 4, axis=2)
