"""Which slice to correct next: :func:`napari_medseg.training.suggest.rank_slices`."""

from __future__ import annotations

import numpy as np
import pytest

from napari_medseg.training.suggest import SliceSuggestion, rank_slices

SHAPE = (8, 6, 5)  # (Z, Y, X)


def _probabilities(unsure: dict[int, float], *, axis: int = 0) -> np.ndarray:
    """Two classes, sure everywhere (p = 1) except on the slices of ``unsure`` across
    ``axis``, where the larger probability is the given one."""
    p = np.zeros((2, *SHAPE), np.float32)
    p[0] = 1.0
    for index, top in unsure.items():
        region: list[object] = [slice(None)] * 3
        region[axis] = index
        p[(0, *region)] = top
        p[(1, *region)] = 1.0 - top
    return p


def test_the_most_uncertain_slice_comes_first() -> None:
    p = _probabilities({2: 0.7, 5: 0.5, 6: 0.9})
    ranked = rank_slices(0, [], probabilities=p)
    assert [s.index for s in ranked] == [5, 2, 6]  # sure slices are never suggested
    plane = SHAPE[1] * SHAPE[2]
    assert ranked[0].uncertain == pytest.approx(0.5 * plane)
    assert ranked[1].uncertain == pytest.approx(0.3 * plane)
    assert ranked[0].disagreeing == 0
    assert ranked[0].score == ranked[0].uncertain
    assert all(s.axis == 0 for s in ranked)


def test_an_annotated_slice_is_never_suggested() -> None:
    p = _probabilities({2: 0.7, 5: 0.5, 6: 0.9})
    ranked = rank_slices(0, [5, 6], probabilities=p)
    assert [s.index for s in ranked] == [2]
    everything = _probabilities(dict.fromkeys(range(SHAPE[0]), 0.6))
    ranked = rank_slices(0, [0, 3, 7], probabilities=everything, limit=10)
    assert sorted(s.index for s in ranked) == [1, 2, 4, 5, 6]


def test_disagreement_with_interpolation_counts_inside_its_range_only() -> None:
    labels = np.zeros(SHAPE, np.uint8)
    interpolated = np.zeros(SHAPE, np.uint8)
    labels[3, :2, :] = 1  # 10 voxels differ on slice 3
    labels[4, 0, :2] = 1  # 2 on slice 4
    labels[7, :, :] = 1  # 30 on slice 7, outside the interpolated range
    inside = np.zeros(SHAPE, bool)
    inside[1:6] = True
    ranked = rank_slices(0, [1, 5], labels=labels, interpolated=interpolated, inside=inside)
    assert [(s.index, s.disagreeing) for s in ranked] == [(3, 10), (4, 2)]
    # without a range every slice counts
    ranked = rank_slices(0, [1, 5], labels=labels, interpolated=interpolated)
    assert [s.index for s in ranked] == [7, 3, 4]


def test_uncertainty_and_disagreement_add_up() -> None:
    """Slice 2 is a little unsure and disagrees a lot; slice 5 is more unsure but agrees:
    the sum decides."""
    p = _probabilities({2: 0.9, 5: 0.5})
    labels = np.zeros(SHAPE, np.uint8)
    labels[2] = 1
    ranked = rank_slices(0, [], probabilities=p, labels=labels,
                         interpolated=np.zeros(SHAPE, np.uint8))
    assert [s.index for s in ranked] == [2, 5]
    assert ranked[0].score == pytest.approx(0.1 * 30 + 30)
    assert ranked[1].score == pytest.approx(0.5 * 30)
    assert "30 where it disagrees with interpolation" in ranked[0].describe()
    assert ranked[0].describe().startswith("slice 2: about 3 uncertain voxel(s)")


def test_other_axes_limit_and_half_precision() -> None:
    p = _probabilities({1: 0.6, 3: 0.55, 4: 0.8}, axis=2).astype(np.float16)
    ranked = rank_slices(2, [], probabilities=p, limit=2)
    assert [s.index for s in ranked] == [3, 1]
    assert all(s.axis == 2 for s in ranked)
    assert ranked[0].uncertain == pytest.approx(0.45 * SHAPE[0] * SHAPE[1], rel=1e-2)


def test_many_slices_are_read_in_slabs_the_same() -> None:
    """More slices than one slab (8): every slice is scored, none skipped at a slab edge."""
    rng = np.random.default_rng(0)
    raw = rng.random((3, 21, 4, 4)).astype(np.float32)
    p = raw / raw.sum(0)
    ranked = rank_slices(0, [], probabilities=p, limit=100)
    expected = (1 - p.max(0)).sum(axis=(1, 2))
    assert sorted(s.index for s in ranked) == list(range(21))
    assert [s.index for s in ranked] == list(np.argsort(-expected, kind="stable"))
    for s in ranked:
        assert s.uncertain == pytest.approx(expected[s.index], rel=1e-5)


def test_nothing_to_rank() -> None:
    assert rank_slices(0, []) == []
    sure = _probabilities({})
    assert rank_slices(0, [], probabilities=sure) == []
    assert isinstance(rank_slices(0, [], probabilities=_probabilities({1: 0.5}))[0],
                      SliceSuggestion)
