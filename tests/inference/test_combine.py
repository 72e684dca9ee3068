"""The rules that combine a network's labels with the person's annotation, and the choice
among them on held-back voxels: :mod:`napari_medseg.inference.combine`."""

from __future__ import annotations

import numpy as np
import pytest
from scipy import ndimage

from napari_medseg.inference.combine import (
    DESCRIPTIONS,
    RULES,
    TIE,
    TRUST_NETWORK,
    Annotation,
    apply_rule,
    candidates,
    choose_rule,
    held_back_dice,
    keep_connected,
    with_interpolation,
)

SHAPE = (12, 32, 32)
ANNOTATED = (2, 5, 9)
HELD = 5


def _disc(radius: float, centre: tuple[float, float]) -> np.ndarray:
    yy, xx = np.indices(SHAPE[1:])
    return (yy - centre[0]) ** 2 + (xx - centre[1]) ** 2 <= radius**2


def _truth() -> np.ndarray:
    """A round structure on slices 1..10 whose radius grows like a square root (so that
    interpolation between slices 2 and 9 is close on slice 5, and a little too small)."""
    truth = np.zeros(SHAPE, np.uint8)
    for z in range(1, 11):
        truth[z][_disc(2 + 8 * np.sqrt((z - 1) / 9), (12, 12))] = 1
    return truth


def _look_alike() -> np.ndarray:
    """A bright thing far from the structure, on every slice (never annotated)."""
    return np.broadcast_to(_disc(4, (26, 26)), SHAPE)


def _slices_mask(slices: tuple[int, ...]) -> np.ndarray:
    mask = np.zeros(SHAPE, bool)
    mask[list(slices)] = True
    return mask


def _annotation(truth: np.ndarray, slices: tuple[int, ...]) -> Annotation:
    labeled = _slices_mask(slices)
    return Annotation(labels=np.where(labeled, truth, 0).astype(np.uint8), labeled=labeled,
                      axis=0, slices=slices, spacing=(1.0, 1.0, 1.0))


def _training_part() -> tuple[np.ndarray, Annotation, np.ndarray]:
    """The truth, the annotation without the held-back slice, and the held-back mask."""
    truth = _truth()
    kept = tuple(s for s in ANNOTATED if s != HELD)
    return truth, _annotation(truth, kept), _slices_mask((HELD,))


def _dice(a: np.ndarray, b: np.ndarray) -> float:
    return 2 * float((a & b).sum()) / float(a.sum() + b.sum())


# ------------------------------------------------------------------ the rules
def test_every_rule_has_a_description() -> None:
    assert set(DESCRIPTIONS) == set(RULES)


def test_keep_connected_drops_pieces_nobody_labeled_with_that_class() -> None:
    labels = np.zeros((4, 10, 10), np.uint8)
    labels[:, 1:4, 1:4] = 1  # touched by a class-1 seed
    labels[:, 6:9, 6:9] = 1  # a look-alike: never touched
    labels[:, 1:4, 6:9] = 2  # touched only by a class-1 seed: not its class
    labels[0, 4, 4] = 1  # diagonal to the first piece only: a separate piece
    seeds = np.zeros_like(labels)
    seed_mask = np.zeros(labels.shape, bool)
    seed_mask[2] = True
    seeds[2, 2, 2] = 1
    seeds[2, 2, 7] = 1
    out = keep_connected(labels, seeds, seed_mask)
    expected = np.zeros_like(labels)
    expected[:, 1:4, 1:4] = 1
    np.testing.assert_array_equal(out, expected)
    # a seed outside seed_mask does not count
    assert not keep_connected(labels, seeds, np.zeros(labels.shape, bool)).any()
    assert (labels[:, 6:9, 6:9] == 1).all()  # the input is not changed


def test_each_rule_builds_what_its_description_says() -> None:
    truth = _truth()
    annotation = _annotation(truth, ANNOTATED)
    network = truth.copy()
    network[_look_alike()] = 1  # a look-alike
    network[4] = 0  # and a miss on slice 4
    network[11][_disc(2, (12, 12))] = 1  # and an overshoot past the last annotated slice
    masks = candidates(network, annotation)
    assert set(masks) == set(RULES)
    interpolated, inside = annotation.interpolated()  # type: ignore[misc]
    # network: the network's labels
    np.testing.assert_array_equal(masks["network"], network)
    # connected: the look-alike is gone, the structure (with its overshoot) stays
    connected = masks["connected"]
    assert not connected[_look_alike()].any()
    np.testing.assert_array_equal(connected, np.where(_look_alike(), 0, network))
    # connected+interpolation: the miss on slice 4 filled by interpolation, the rest connected
    completed = masks["connected+interpolation"]
    assert not completed[_look_alike()].any()
    np.testing.assert_array_equal(completed[4], interpolated[4])
    assert (completed[4] == 1).sum() > 0.8 * (truth[4] == 1).sum()  # close to the truth
    np.testing.assert_array_equal(completed[11], connected[11])  # outside the range: network
    np.testing.assert_array_equal(completed[connected > 0], connected[connected > 0])
    # interpolation: only between the first and last annotated slice, no network at all
    only = masks["interpolation"]
    assert not only[~inside].any()
    assert not only[11].any()
    assert not only[_look_alike()].any()
    assert only[4].any()
    np.testing.assert_array_equal(only[inside], interpolated[inside])


def test_interpolation_rules_need_two_slices_and_apply_rule_falls_back() -> None:
    truth = _truth()
    one = _annotation(truth, (5,))
    network = truth.copy()
    network[_look_alike()] = 1
    assert set(candidates(network, one)) == {"network", "connected"}
    np.testing.assert_array_equal(apply_rule("interpolation", network, one),
                                  apply_rule("connected", network, one))
    with pytest.raises(ValueError, match="unknown rule"):
        apply_rule("union", network, one)


def test_apply_rule_writes_the_persons_labels_back() -> None:
    truth = _truth()
    annotation = _annotation(truth, ANNOTATED)
    network = np.zeros(SHAPE, np.uint8)
    network[1:11][np.broadcast_to(_disc(6, (12, 12)), (10, *SHAPE[1:]))] = 1  # too small
    for rule in RULES:
        mask = apply_rule(rule, network, annotation)
        np.testing.assert_array_equal(mask[annotation.labeled], truth[annotation.labeled])
        assert mask.dtype == network.dtype


def test_with_interpolation_fills_only_background_inside_the_range() -> None:
    labels = np.array([[0, 1, 0, 0]], np.uint8)
    interpolated = np.array([[2, 2, 2, 0]], np.uint8)
    inside = np.array([[True, True, False, True]])
    np.testing.assert_array_equal(with_interpolation(labels, interpolated, inside),
                                  [[2, 1, 0, 0]])


# ------------------------------------------------------------------ held_back_dice
def test_held_back_dice_per_class_and_on_the_mask_only() -> None:
    truth = np.array([1, 1, 0, 0, 2, 2, 0, 1])
    prediction = np.array([1, 0, 0, 3, 2, 2, 0, 1])
    mask = np.array([True] * 7 + [False])
    mean, per_class = held_back_dice(prediction, truth, mask)
    assert per_class == {1: pytest.approx(2 / 3), 2: 1.0, 3: 0.0}  # 3: predicted, not there
    assert mean == pytest.approx((2 / 3 + 1 + 0) / 3)
    mean, per_class = held_back_dice(prediction, truth, mask, classes=[2])
    assert per_class == {2: 1.0}
    assert mean == 1.0
    mean, per_class = held_back_dice(prediction, truth, np.zeros(8, bool))
    assert np.isnan(mean)
    assert per_class == {}


# ------------------------------------------------------------------ choose_rule
def _choose(network: np.ndarray, **kwargs: object):
    truth, annotation, held = _training_part()
    choice = choose_rule(network, annotation, truth, held, **kwargs)  # type: ignore[arg-type]
    for rule, mask in candidates(network, annotation).items():  # the scores are the masks'
        assert choice.scores[rule] == pytest.approx(held_back_dice(mask, truth, held)[0])
    assert choice.scores[choice.rule] >= max(choice.scores.values()) - TIE
    # never worse than the no-learning baseline on what was measured (up to TIE)
    assert choice.scores[choice.rule] >= choice.scores["interpolation"] - TIE
    return choice


def test_a_look_alike_is_cut_away_connected() -> None:
    network = _truth()
    network[_look_alike()] = 1
    choice = _choose(network)
    assert choice.rule == "connected"
    assert choice.scores["connected"] == pytest.approx(1.0)
    assert choice.scores["network"] < 0.95
    assert choice.scores["interpolation"] < 0.95


def test_a_structure_nobody_annotated_keeps_the_network() -> None:
    """A second piece that appears only around the held-back slice: connectivity would drop
    it, the network's labels keep it."""
    truth, annotation, held = _training_part()
    extra = np.zeros(SHAPE, bool)
    extra[4:7][np.broadcast_to(_disc(3, (26, 8)), (3, *SHAPE[1:]))] = True
    truth = np.where(extra, 1, truth).astype(np.uint8)
    network = truth.copy()
    choice = choose_rule(network, annotation, truth, held)
    assert choice.rule == "network"
    assert choice.scores["network"] == pytest.approx(1.0)
    assert choice.scores["connected"] < choice.scores["network"] - TIE


def test_a_network_with_a_hole_is_completed_by_interpolation() -> None:
    truth = _truth()
    network = truth.copy()
    network[:, :, 12:] = 0  # the network finds only the left half of the structure
    choice = _choose(network)
    assert choice.rule == "connected+interpolation"
    assert choice.scores["connected+interpolation"] > choice.scores["interpolation"] + TIE
    assert choice.scores["connected+interpolation"] > choice.scores["connected"] + TIE


def test_a_poor_network_gives_way_to_interpolation() -> None:
    truth = _truth()
    network = ndimage.binary_dilation(truth > 0, iterations=5).astype(np.uint8)  # far too big
    network[_look_alike()] = 1
    choice = _choose(network)
    assert choice.rule == "interpolation"
    assert choice.scores["interpolation"] > choice.scores["connected+interpolation"] + TIE


def test_ties_go_to_the_simpler_rule() -> None:
    """A perfect network with nothing to cut: every network rule scores 1; the first of RULES
    (connected) is chosen."""
    choice = _choose(_truth())
    assert choice.scores["network"] == choice.scores["connected"] == pytest.approx(1.0)
    assert choice.rule == RULES[0] == "connected"


def test_nothing_held_back_means_connected() -> None:
    truth, annotation, _ = _training_part()
    choice = choose_rule(truth, annotation, truth, np.zeros(SHAPE, bool))
    assert choice.rule == "connected"
    assert all(np.isnan(d) for d in choice.scores.values())


@pytest.mark.parametrize(("good", "rule"), [(True, "connected+interpolation"),
                                            (False, "interpolation")])
def test_unmeasurable_interpolation_trusts_only_a_network_that_scored(good: bool,
                                                                      rule: str) -> None:
    """Two annotated slices, one held back: the one left cannot be interpolated from, so
    the interpolation rules are not measured; the network's held-back score decides."""
    truth = _truth()
    annotation = _annotation(truth, (9,))
    held = _slices_mask((HELD,))
    network = truth.copy() if good else np.zeros(SHAPE, np.uint8)
    if not good:
        network[_look_alike()] = 1
    choice = choose_rule(network, annotation, truth, held, interpolation_later=True)
    assert "interpolation" not in choice.scores
    assert (max(choice.scores.values()) >= TRUST_NETWORK) is good
    assert choice.rule == rule
    assert choice.note
    assert choice.note in choice.summary()
    assert DESCRIPTIONS[rule] in choice.summary()
    # without the flag the same scores choose among the measured rules only
    plain = choose_rule(network, annotation, truth, held)
    assert plain.rule in ("connected", "network")
    assert not plain.note


@pytest.mark.parametrize(("good", "rule"), [(True, "connected+interpolation"),
                                            (False, "interpolation")])
def test_regions_of_the_annotated_slices_do_not_measure_interpolation(good: bool,
                                                                       rule: str) -> None:
    """Two slices, a part of each held back: interpolation would only give back the rest of
    those slices there, so it is not scored; the network's score decides as above."""
    truth = _truth()
    slices = (2, 9)
    held = np.zeros(SHAPE, bool)
    held[list(slices), 12:, :] = True
    labeled = _slices_mask(slices) & ~held
    annotation = Annotation(labels=np.where(labeled, truth, 0).astype(np.uint8),
                            labeled=labeled, axis=0, slices=slices, spacing=(1.0, 1.0, 1.0))
    network = truth.copy() if good else np.zeros(SHAPE, np.uint8)
    if not good:
        network[_look_alike()] = 1
    measured = choose_rule(network, annotation, truth, held)
    assert measured.scores["interpolation"] < 0.5  # what scoring it there would say
    choice = choose_rule(network, annotation, truth, held, interpolation_later=True,
                         measure_interpolation=False)
    assert set(choice.scores) == {"network", "connected"}
    assert choice.rule == rule
    assert choice.note


def test_dice_of_the_chosen_mask_matches_its_score() -> None:
    """The score of the chosen rule is the Dice of its mask on the held-back slice."""
    truth, annotation, held = _training_part()
    network = truth.copy()
    network[:, :, 12:] = 0
    choice = choose_rule(network, annotation, truth, held)
    chosen = candidates(network, annotation)[choice.rule]
    assert choice.scores[choice.rule] == pytest.approx(_dice(chosen[HELD] == 1,
                                                             truth[HELD] == 1))


def test_slices_where_network_and_interpolation_disagree_are_called_unsure(shared_data):
    """The brain lesion painted on slices 12 and 16: a network that found the true lesion
    disagrees with the interpolation between those slices on some slice between them (the
    status asks the person to check it); a network that agrees with the interpolation leaves
    nothing unsure, and painted slices are never called unsure."""
    from napari_medseg.inference.combine import unsure_slices
    from napari_medseg.io import read_label_map, read_scan

    scan = read_scan(shared_data / "mri_lesion" / "brain1_image.nrrd")
    truth = read_label_map(shared_data / "mri_lesion" / "brain1_label.nrrd", like=scan).array
    truth = (truth > 0).astype(np.uint8)
    labeled = np.zeros(truth.shape, bool)
    labeled[[12, 16]] = True
    annotation = Annotation(labels=np.where(labeled, truth, 0), labeled=labeled, axis=0,
                            slices=(12, 16), spacing=scan.geometry.spacing)
    unsure = unsure_slices(truth, annotation)
    assert unsure, "the true lesion and the interpolation agree everywhere?"
    assert set(unsure) <= {13, 14, 15}
    interpolated, inside = annotation.interpolated()
    assert unsure_slices(np.where(inside, interpolated, 0), annotation) == []
