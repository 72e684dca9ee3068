"""Checkerboard and difference views, and modalities stacked as channels."""

from __future__ import annotations

import numpy as np
import pytest

from napari_medseg.errors import GeometryMismatchError
from napari_medseg.fusion import checkerboard, difference, stack_channels

from .conftest import make_scan


def test_checkerboard_alternates_blocks() -> None:
    fixed = make_scan(np.zeros((4, 4), np.float32))
    moving = make_scan(np.ones((4, 4), np.float32))
    board = checkerboard(fixed, moving, squares=2, normalisation="none")
    expected = [[0, 0, 1, 1], [0, 0, 1, 1], [1, 1, 0, 0], [1, 1, 0, 0]]
    np.testing.assert_array_equal(board.array, expected)
    assert board.geometry == fixed.geometry
    board3d = checkerboard(
        make_scan(np.zeros((2, 2, 2))), make_scan(np.ones((2, 2, 2))), normalisation="none"
    )
    assert board3d.array[0, 0, 0] == 0
    assert board3d.array[1, 0, 0] == board3d.array[0, 1, 0] == 1
    assert board3d.array[1, 1, 1] == 1


def test_difference_of_a_scan_with_itself_is_zero() -> None:
    scan = make_scan(np.random.default_rng(0).random((5, 6, 7)).astype(np.float32) * 1000)
    np.testing.assert_array_equal(difference(scan, scan).array, 0.0)


def test_views_need_one_grid() -> None:
    a = make_scan(np.zeros((4, 4), np.float32))
    b = make_scan(np.zeros((4, 4), np.float32), origin=3.0)
    with pytest.raises(GeometryMismatchError, match=r"origin.*register or resample"):
        checkerboard(a, b)


def test_stack_channels() -> None:
    rng = np.random.default_rng(0)
    t1 = make_scan(rng.random((4, 5, 6)).astype(np.float32))
    t2 = make_scan(rng.random((4, 5, 6)).astype(np.float32) * 100)
    stacked = stack_channels([t1, t2])
    assert stacked.shape == (2, 4, 5, 6)
    assert stacked.dtype == np.float32
    np.testing.assert_array_equal(stacked[1], t2.array)
    assert stack_channels([t1, t2], normalisation="minmax")[1].max() == 1.0
    coarse = make_scan(rng.random((4, 5, 6)).astype(np.float32), spacing=2.0)
    with pytest.raises(GeometryMismatchError, match=r"channels.*spacing.*register or resample"):
        stack_channels([t1, coarse])
    with pytest.raises(GeometryMismatchError, match=r"shape"):
        stack_channels([t1, make_scan(np.zeros((4, 5, 7), np.float32))])
