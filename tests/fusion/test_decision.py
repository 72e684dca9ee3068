"""Decision-level fusion: probability averaging, majority vote, STAPLE."""

from __future__ import annotations

import numpy as np
import pytest

from napari_medseg.errors import FusionError, GeometryMismatchError
from napari_medseg.fusion import average_probabilities, combine_labels, majority_vote, staple
from napari_medseg.scan import Geometry, LabelMap

GEOMETRY = Geometry(spacing=(1.0, 1.0), origin=(0.0, 0.0), direction=np.eye(2))


def _maps(*arrays) -> list[LabelMap]:
    return [LabelMap(array=np.asarray(a, np.uint8), geometry=GEOMETRY) for a in arrays]


def test_majority_vote_and_agreement() -> None:
    maps = _maps([[0, 1, 2, 2]], [[0, 1, 1, 2]], [[1, 1, 0, 0]])
    result = majority_vote(maps)
    np.testing.assert_array_equal(result.labels.array, [[0, 1, 0, 2]])  # 3-way tie -> 0
    np.testing.assert_allclose(result.agreement.array, [[2 / 3, 1, 1 / 3, 2 / 3]])
    assert result.labels.geometry == GEOMETRY


def test_vote_tie_goes_to_the_smallest_label() -> None:
    result = majority_vote(_maps([[3, 0]], [[1, 2]]))
    np.testing.assert_array_equal(result.labels.array, [[1, 0]])
    np.testing.assert_allclose(result.agreement.array, [[0.5, 0.5]])


def test_staple_outvotes_a_poor_rater() -> None:
    truth = np.zeros((20, 20), np.uint8)
    truth[5:15, 5:15] = 1
    rng = np.random.default_rng(0)
    noisy = truth.copy()
    flip = rng.random(truth.shape) < 0.3
    noisy[flip] = 1 - noisy[flip]
    result = staple(_maps(truth, truth, noisy))
    np.testing.assert_array_equal(result.labels.array, truth)
    assert result.agreement.array.min() == pytest.approx(2 / 3)
    assert combine_labels(_maps(truth, truth, noisy), method="staple").method == "staple"


def test_staple_multilabel() -> None:
    a = np.array([[0, 1, 2, 2], [0, 1, 2, 0]])
    result = staple(_maps(a, a, np.where(a == 2, 1, a)))
    np.testing.assert_array_equal(result.labels.array, a)


def test_probability_averaging() -> None:
    one_hot = np.zeros((3, 2, 2), np.float32)
    one_hot[1] = 1.0
    uniform = np.full((3, 2, 2), 1 / 3, np.float32)
    result = average_probabilities([one_hot, one_hot], GEOMETRY)
    np.testing.assert_array_equal(result.labels.array, np.ones((2, 2)))
    np.testing.assert_allclose(result.agreement.array, 1.0, atol=1e-6)
    result = average_probabilities([uniform, uniform], GEOMETRY)
    np.testing.assert_allclose(result.agreement.array, 0.0, atol=1e-6)
    result = average_probabilities([one_hot, uniform], GEOMETRY, weights=[0.0, 1.0])
    np.testing.assert_allclose(result.agreement.array, 0.0, atol=1e-6)
    with pytest.raises(FusionError, match="spatial axes"):
        average_probabilities([one_hot[0]], GEOMETRY)


def test_label_maps_must_share_a_grid() -> None:
    other = Geometry(spacing=(2.0, 1.0), origin=(0.0, 0.0), direction=np.eye(2))
    maps = [*_maps([[0, 1]]), LabelMap(array=np.array([[0, 1]], np.uint8), geometry=other)]
    with pytest.raises(GeometryMismatchError, match="spacing"):
        majority_vote(maps)
    with pytest.raises(FusionError, match="vote"):
        combine_labels(maps[:1], method="mean")  # type: ignore[arg-type]
