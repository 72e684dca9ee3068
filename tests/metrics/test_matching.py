"""Evaluate pairs classes by value and by name, shows the reference's names, and averages
over the reference's classes present in either map only."""

from __future__ import annotations

import json

import numpy as np
import pytest

from napari_medseg.io import read_label_map, read_scan
from napari_medseg.metrics import evaluate, evaluate_arrays
from napari_medseg.metrics.matching import has_own_name, match_classes, name_key
from napari_medseg.scan import LabelMap

#: Some organ values of the TotalSegmentator example (shared data README).
ORGANS = {0: "background", 1: "spleen", 2: "kidney_right", 3: "kidney_left", 5: "liver",
          6: "stomach"}


@pytest.fixture(scope="module")
def organs(shared_data):
    labels = read_label_map(shared_data / "ct_abdomen" / "example_seg.nii.gz")
    array = np.where(np.isin(labels.array, list(ORGANS)), labels.array, 0).astype(np.uint8)
    return LabelMap(array=array, geometry=labels.geometry, class_names=dict(ORGANS))


def test_a_tissue_model_against_a_tumour_mask_the_issues_case(shared_data):
    """The reference (a lesion mask, no class names) keeps its names; the model's second
    class, which the reference does not have, is shown but not averaged."""
    folder = shared_data / "mri_lesion"
    truth = read_label_map(folder / "brain1_label.nrrd")
    scan = read_scan(folder / "brain1_image.nrrd")
    tissue = np.zeros(scan.shape, np.uint8)  # a crude 'tissue model': two intensity bands
    tissue[scan.array > np.percentile(scan.array, 50)] = 1
    tissue[scan.array > np.percentile(scan.array, 85)] = 2
    pred = LabelMap(array=tissue, geometry=truth.geometry,
                    class_names={0: "background", 1: "grey matter", 2: "white matter"})
    result = evaluate(pred, truth, surface=False)
    rows = {r.label: r for r in result.rows}
    assert rows[1].name == "class 1"  # the reference's, not "grey matter"
    assert (rows[1].pred_label, rows[1].pred_name, rows[1].matched_by) == (
        1, "grey matter", "value")
    assert rows[2].matched_by == "prediction only"
    assert not rows[2].averaged
    assert [r.label for r in result.averaged] == [1]
    assert result.mean("dice") == pytest.approx(rows[1].dice)
    assert "not averaged: 2 white matter (prediction only" in result.averaging_note()


def test_classes_are_matched_by_name_when_values_differ(organs):
    relabel = {5: 1, 1: 2, 3: 7}  # liver, spleen and left kidney under other values
    array = np.zeros_like(organs.array)
    for old, new in relabel.items():
        array[organs.array == old] = new
    pred = LabelMap(array=array, geometry=organs.geometry,
                    class_names={0: "background", 1: "Liver", 2: "SPLEEN", 7: "left kidney"})
    result = evaluate(pred, organs, surface=False)
    rows = {r.label: r for r in result.rows}
    for value, name in ((5, "liver"), (1, "spleen"), (3, "kidney_left")):
        assert rows[value].name == name
        assert rows[value].matched_by == "name"
        assert rows[value].dice == 1.0
    assert rows[5].pred_label == 1
    # the reference's kidney_right and stomach: present, not predicted -> Dice 0, averaged
    assert rows[2].matched_by == "reference only"
    assert rows[2].dice == 0.0
    assert rows[2].averaged
    assert result.mean("dice") == pytest.approx(3 / 5)


def test_same_value_other_name_is_no_match_unless_asked(organs):
    pred = LabelMap(array=organs.array.copy(), geometry=organs.geometry,
                    class_names={**ORGANS, 5: "pancreas"})  # value 5 called otherwise
    result = evaluate(pred, organs, surface=False)
    rows = [(r.label, r.name, r.matched_by) for r in result.rows if r.label == 5]
    assert rows == [(5, "liver", "reference only"), (5, "pancreas", "prediction only")]
    by_value = evaluate(pred, organs, surface=False, match="value")
    liver = next(r for r in by_value.rows if r.label == 5)
    assert (liver.matched_by, liver.dice, liver.pred_name) == ("value", 1.0, "pancreas")


def test_a_named_class_absent_from_both_maps_is_listed_not_averaged(organs):
    truth = LabelMap(array=organs.array, geometry=organs.geometry,
                     class_names={**ORGANS, 9: "gallbladder"})  # named, not in this crop
    result = evaluate(organs, truth, surface=False)
    gallbladder = next(r for r in result.rows if r.label == 9)
    assert np.isnan(gallbladder.dice)
    assert not gallbladder.averaged
    assert "9 gallbladder (absent from both maps)" in result.averaging_note()
    data = json.loads(result.to_json())
    assert data["averaged_labels"] == [1, 2, 3, 5, 6]
    assert data["mean"]["dice"] == 1.0


def test_one_protocol_as_before_for_training_scores():
    pred = np.array([[0, 1, 1], [2, 2, 0]])
    truth = np.array([[0, 1, 0], [2, 2, 2]])
    result = evaluate_arrays(pred, truth, (1.0, 1.0), classes=[1, 2, 3],
                             class_names={0: "bg", 1: "a", 2: "b", 3: "c"}, surface=False)
    assert [(r.label, r.name, r.matched_by) for r in result.rows] == [
        (1, "a", "value and name"), (2, "b", "value and name"), (3, "c", "value and name")]
    assert result.rows[0].dice == pytest.approx(2 / 3)
    assert result.rows[1].dice == pytest.approx(0.8)
    assert not result.rows[2].averaged  # in neither map
    assert result.mean("dice") == pytest.approx((2 / 3 + 0.8) / 2)


def test_name_normalisation():
    assert name_key("Gray Matter") == name_key("grey_matter") == name_key("GM")
    assert name_key("kidney_left") == name_key("Left Kidney") == name_key("kidney L")
    assert name_key("tumor") == name_key("Tumour")
    assert name_key("liver") != name_key("spleen")
    assert not has_own_name(3, "class 3")
    assert not has_own_name(3, "")
    assert has_own_name(3, "class 4")  # a name that says another value is a name
    with pytest.raises(ValueError, match="match must be"):
        match_classes([1], {}, [1], {}, match="fuzzy")
