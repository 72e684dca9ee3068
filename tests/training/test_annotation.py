"""What a person annotated (slices, strokes, dense) and what a run holds back to measure
itself: :mod:`napari_medseg.training.annotation`."""

from __future__ import annotations

import math

import numpy as np
import pytest

from napari_medseg.training.annotation import (
    MIN_REGION_VOXELS,
    MIN_SLICES_TO_HOLD_BACK,
    SLICE_FRACTION,
    describe_annotation,
    plan_validation,
    slices_holding_labels,
)

SHAPE = (14, 20, 24)


def _square(labels: np.ndarray, axis: int, index: int, value: int, low: int, high: int) -> None:
    """Paint ``value`` into a square ``low:high`` x ``low:high`` of slice ``index``."""
    plane = np.take(labels, index, axis=axis)  # a copy
    plane[low:high, low:high] = value
    region: list[object] = [slice(None)] * 3
    region[axis] = index
    labels[tuple(region)] = plane


def _on_slices(slices: dict[int, list[tuple[int, int, int]]], *, axis: int = 0,
               shape: tuple[int, int, int] = SHAPE) -> tuple[np.ndarray, np.ndarray]:
    """Labels painted on whole slices: ``{slice: [(value, low, high), ...]}``; the rest of
    those slices is labeled background and the other slices are unlabeled."""
    labels = np.zeros(shape, np.uint8)
    labeled = np.zeros(shape, bool)
    for index, squares in slices.items():
        region: list[object] = [slice(None)] * 3
        region[axis] = index
        labeled[tuple(region)] = True
        for value, low, high in squares:
            _square(labels, axis, index, value, low, high)
    return labeled, labels


def _plan(labeled: np.ndarray, labels: np.ndarray, **kwargs: object):
    layout = describe_annotation(labeled, labels, **kwargs)  # type: ignore[arg-type]
    return layout, plan_validation(layout, labeled, labels)


def _classes_of(labels: np.ndarray, mask: np.ndarray) -> set[int]:
    return {int(v) for v in np.unique(labels[mask]) if v > 0}


# ------------------------------------------------------------------ describe_annotation
@pytest.mark.parametrize("axis", [0, 1, 2])
def test_whole_slices_are_found_across_their_axis(axis: int) -> None:
    labeled, labels = _on_slices({3: [(1, 2, 9)], 6: [(1, 3, 8), (2, 10, 12)], 9: []},
                                 axis=axis)
    layout = describe_annotation(labeled, labels)
    assert layout.axis == axis
    assert layout.slices == (3, 6, 9)
    assert layout.classes_per_slice == {3: {1}, 6: {1, 2}, 9: frozenset()}
    assert layout.classes == {1, 2}
    assert layout.labeled_voxels == int(labeled.sum())
    assert layout.outside_slices == 0
    assert not layout.dense
    assert f"along axis {axis} (3, 6, 9)" in layout.summary()


def test_a_slice_counts_as_annotated_only_when_almost_wholly_labeled() -> None:
    labeled, labels = _on_slices({2: [(1, 2, 6)], 8: [(1, 2, 6)]})
    plane = labeled[8].reshape(-1)
    plane[: math.ceil(plane.size * (1 - SLICE_FRACTION)) + 1] = False  # just below it
    labeled[8] = plane.reshape(labeled.shape[1:])
    labeled[2].reshape(-1)[:3] = False  # a few unlabeled voxels: still a slice
    layout = describe_annotation(labeled, labels)
    assert layout.slices == (2,)
    assert layout.outside_slices == int(labeled[8].sum())


def test_strokes_off_the_slices_are_counted_and_strokes_alone_have_no_axis() -> None:
    labeled, labels = _on_slices({4: [(1, 2, 8)], 7: [(1, 2, 8)]})
    labeled[11, 5:9, 5:9] = True
    labels[11, 5:9, 5:9] = 2
    layout = describe_annotation(labeled, labels)
    assert layout.slices == (4, 7)
    assert layout.outside_slices == 16
    assert layout.classes == {1, 2}
    assert layout.classes_per_slice == {4: {1}, 7: {1}}  # the stroke's class is on no slice
    assert "16 voxel(s) in strokes" in layout.summary()

    strokes = np.zeros(SHAPE, bool)
    strokes[3:6, 4:9, 4:9] = True
    values = np.where(strokes, 1, 0)
    only = describe_annotation(strokes, values)
    assert only.axis is None
    assert only.slices == ()
    assert only.outside_slices == only.labeled_voxels == int(strokes.sum())
    assert "in strokes" in only.summary()


def test_dense_labels_and_2d_images() -> None:
    labels = np.zeros(SHAPE, np.uint8)
    labels[4:10, 5:12, 6:14] = 3
    dense = describe_annotation(np.ones(SHAPE, bool), labels)
    assert dense.dense
    assert dense.axis == 0
    assert dense.slices == tuple(range(SHAPE[0]))
    assert dense.classes == {3}
    assert dense.outside_slices == 0
    assert "every voxel labeled" in dense.summary()

    image_labels = np.zeros((16, 16), np.uint8)
    image_labels[3:6, 3:6] = 1
    flat = describe_annotation(np.ones((16, 16), bool), image_labels)
    assert flat.axis is None
    assert flat.slices == ()
    assert flat.dense
    assert flat.classes == {1}


def test_the_axis_can_be_imposed() -> None:
    """Slices across axis 0; asked for axis 2 there is no whole slice there."""
    labeled, labels = _on_slices({3: [(1, 2, 9)], 9: [(1, 2, 9)]})
    assert describe_annotation(labeled, labels, axis=0).slices == (3, 9)
    across_x = describe_annotation(labeled, labels, axis=2)
    assert across_x.axis is None
    assert across_x.slices == ()


def test_unlabeled_voxels_do_not_add_classes() -> None:
    """A class value outside the labeled voxels is not an annotated class."""
    labeled, labels = _on_slices({3: [(1, 2, 9)], 9: [(1, 2, 9)]})
    labels[6, 2:9, 2:9] = 2  # on an unlabeled slice
    layout = describe_annotation(labeled, labels)
    assert layout.classes == {1}


# ------------------------------------------------------------------ plan_validation
def test_three_slices_hold_back_the_inner_one_with_both_neighbours() -> None:
    labeled, labels = _on_slices({2: [(1, 3, 10)], 6: [(1, 3, 14)], 11: [(1, 4, 9)]})
    layout, plan = _plan(labeled, labels)
    assert plan.kind == "slices"
    assert plan.axis == 0
    assert plan.slices == (6,)
    assert plan.neighbours == {6: (2, 11)}
    expected = np.zeros(SHAPE, bool)
    expected[6] = True
    np.testing.assert_array_equal(plan.mask, expected)
    assert plan.voxels == expected.sum()
    assert plan.measured == {1}
    assert plan.unmeasured == frozenset()
    # training keeps every class
    assert _classes_of(labels, labeled & ~plan.mask) == layout.classes


def test_the_held_back_slice_holds_every_class_when_one_can() -> None:
    """Class 2 is on the two inner slices only: one of them is held back (it holds both
    classes) and the other keeps class 2 in training."""
    labeled, labels = _on_slices({1: [(1, 3, 10)], 5: [(1, 3, 10), (2, 12, 16)],
                                  8: [(1, 3, 10), (2, 12, 16)], 12: [(1, 3, 10)]})
    layout, plan = _plan(labeled, labels)
    assert plan.kind == "slices"
    assert len(plan.slices) == 1
    assert plan.slices[0] in (5, 8)
    assert _classes_of(labels, plan.mask) == layout.classes == plan.measured
    assert _classes_of(labels, labeled & ~plan.mask) == layout.classes
    assert not plan.unmeasured


def test_the_only_slice_of_a_class_is_never_held_back() -> None:
    labeled, labels = _on_slices({2: [(1, 3, 10)], 6: [(1, 3, 10), (2, 12, 16)],
                                  10: [(1, 3, 10)]})
    layout, plan = _plan(labeled, labels)
    assert plan.kind == "slices"
    assert 6 not in plan.slices
    assert _classes_of(labels, labeled & ~plan.mask) == layout.classes
    assert plan.unmeasured == {2}
    assert plan.measured == {1}
    # an outer slice has no annotated slice on one side: no interpolation baseline for it
    assert plan.neighbours == {}


def test_one_or_two_slices_hold_back_regions_of_every_class() -> None:
    """Fewer than MIN_SLICES_TO_HOLD_BACK slices: no whole slice is held back (two slices
    lie near the two ends of a structure), a part of each class is."""
    labeled, labels = _on_slices({3: [(1, 3, 12)], 9: [(1, 4, 13)]})
    layout, plan = _plan(labeled, labels)
    assert len(layout.slices) == 2 < MIN_SLICES_TO_HOLD_BACK
    assert plan.kind == "regions"
    assert plan.slices == ()
    assert plan.measured == {1}
    assert not (plan.mask & ~labeled).any()
    for s in (3, 9):  # a part of every annotated slice, not one whole slice
        held = plan.mask[s] & (labels[s] == 1)
        assert held.any()
        assert ((labels[s] == 1) & ~plan.mask[s]).any()


def test_one_slice_holds_back_a_quarter_of_each_class_with_background() -> None:
    labeled, labels = _on_slices({7: [(1, 3, 12), (2, 13, 20)]})
    layout, plan = _plan(labeled, labels)
    assert plan.kind == "regions"
    assert plan.slices == ()
    assert plan.voxels > 0
    assert not (plan.mask & ~labeled).any()  # only labeled voxels are held back
    assert plan.measured == layout.classes == {1, 2}
    assert _classes_of(labels, plan.mask) == {1, 2}
    assert _classes_of(labels, labeled & ~plan.mask) == {1, 2}  # training keeps both
    assert (labels[plan.mask] == 0).any()  # the background around them is scored too
    for c in (1, 2):  # about a quarter of each class, never all of it
        share = (plan.mask & (labels == c)).sum() / (labels == c).sum()
        assert 0.1 < share < 0.5, (c, share)


def test_six_slices_hold_back_two_that_are_not_neighbours() -> None:
    slices = {s: [(1, 3, 12)] for s in (1, 3, 5, 7, 9, 11)}
    labeled, labels = _on_slices(slices)
    _, plan = _plan(labeled, labels)
    assert plan.kind == "slices"
    assert len(plan.slices) == 2
    assert abs(plan.slices[0] - plan.slices[1]) > 1
    assert all(0 < list(slices).index(s) < len(slices) - 1 for s in plan.slices)  # inner
    for s in plan.slices:
        before, after = plan.neighbours[s]
        assert before < s < after
        assert before not in plan.slices
        assert after not in plan.slices


def test_a_class_too_small_to_split_is_named_unmeasured() -> None:
    labeled = np.zeros(SHAPE, bool)
    labels = np.zeros(SHAPE, np.uint8)
    labeled[2:10, 2:14, 2:14] = True
    labels[3:9, 4:12, 4:12] = 1  # plenty
    labels[5, 13, 12:14] = 2  # two voxels
    layout, plan = _plan(labeled, labels)
    assert layout.slices == ()
    assert plan.kind == "regions"
    assert plan.measured == {1}
    assert plan.unmeasured == {2}
    assert not (plan.mask & (labels == 2)).any()


def test_too_few_labeled_voxels_hold_nothing_back() -> None:
    labeled = np.zeros(SHAPE, bool)
    labels = np.zeros(SHAPE, np.uint8)
    labeled[5, 5, 5:5 + MIN_REGION_VOXELS // 2] = True
    labels[labeled] = 1
    _, plan = _plan(labeled, labels)
    assert plan.kind == "none"
    assert plan.voxels == 0
    assert plan.unmeasured == {1}


def test_dense_labels_hold_back_every_eighth_slice() -> None:
    shape = (30, 12, 12)
    labels = np.zeros(shape, np.uint8)
    labels[2:28, 3:9, 3:9] = 1
    labels[10:14, 4:6, 4:6] = 2
    labeled = np.ones(shape, bool)
    layout, plan = _plan(labeled, labels)
    assert plan.kind == "slices"
    assert plan.slices == (3, 11, 19, 27)
    expected = np.zeros(shape, bool)
    expected[[3, 11, 19, 27]] = True
    np.testing.assert_array_equal(plan.mask, expected)
    assert plan.measured == {1, 2}  # class 2 lies on slice 11
    assert _classes_of(labels, ~plan.mask) == layout.classes

    thin = np.zeros((3, 12, 12), np.uint8)
    thin[:, 2:10, 2:10] = 1
    _, plan = _plan(np.ones(thin.shape, bool), thin)
    assert plan.kind == "regions"  # three slices cannot lend every eighth


# ------------------------------------------------------------------ slices_holding_labels
def test_slices_holding_labels_marks_whole_painted_slices() -> None:
    labels = np.zeros((6, 5, 7), np.uint8)
    labels[1, 2, 3] = 1
    labels[4, 0:2, 0:2] = 2
    held = slices_holding_labels(labels)
    assert held.shape == labels.shape
    assert held[[1, 4]].all()
    assert not held[[0, 2, 3, 5]].any()

    across_x = slices_holding_labels(labels, axis=2)
    assert across_x[:, :, [0, 1, 3]].all()
    assert not across_x[:, :, [2, 4, 5, 6]].any()

    assert slices_holding_labels(np.zeros((4, 4), np.uint8)).sum() == 0
    flat = np.zeros((4, 4), np.uint8)
    flat[1, 1] = 1
    assert slices_holding_labels(flat).all()
    assert held.flags.writeable  # a copy, not a read-only broadcast view
