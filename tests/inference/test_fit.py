"""The fit check on real scans: one test per rule, the training-data record, suggestions."""

from __future__ import annotations

import dataclasses
import json

import numpy as np
import pytest

from napari_medseg.geometry.resample import resample_to
from napari_medseg.inference.catalog import builtin_dir, list_checkpoints
from napari_medseg.inference.fit import (
    RULES,
    FitReport,
    body_size_mm,
    check_fit,
    check_model,
    describe_training_data,
    intensity_distance,
    suggest_model,
)
from napari_medseg.io import read_scan
from napari_medseg.io.modality import read_modality
from napari_medseg.models import CheckpointSpec, IntensityContract, create_model, save_checkpoint
from napari_medseg.models.checkpoint import read_header
from napari_medseg.models.training_record import Spread
from napari_medseg.scan import Geometry, Scan

CT_WINDOW = IntensityContract(modality="CT", normalization="ct_window", window=(-1000, 1500))
MR_PERCENTILES = IntensityContract(modality="MR", normalization="percentile",
                                   percentiles=(0.5, 99.5))


@pytest.fixture(scope="module")
def scans(shared_data):
    paths = {"ct_head": "ct_head/head_ct.nii.gz", "ct_abdomen": "ct_abdomen/example_ct_sm.nii.gz",
             "brain1": "mri_lesion/brain1_image.nrrd", "mni": "brain_template/"
             "mni_icbm152_t1_tal_nlin_sym_09a_converted.nii.gz",
             "ch2": "colin27/ch2.nii.gz", "ch2bet": "colin27/ch2bet.nii.gz",
             "mr_pd": "dicom_series_mr"}
    return {name: read_scan(shared_data / path) for name, path in paths.items()}


def _slab(scan: Scan, start: int, stop: int) -> Scan:
    g = scan.geometry
    geometry = Geometry(spacing=g.spacing, origin=tuple(g.index_to_world([start, 0, 0])),
                        direction=g.direction)
    return dataclasses.replace(scan, array=scan.array[start:stop].copy(), geometry=geometry)


def _spec(contract: IntensityContract, record=None, **changes) -> CheckpointSpec:
    return CheckpointSpec(architecture="unet", spatial_dims=3, in_channels=1, out_channels=3,
                          options={"features": [4, 8, 16]}, intensity=[contract],
                          target_spacing=(2.0, 2.0, 2.0), training_data=record, **changes)


@pytest.fixture(scope="module")
def head_ct_spec(scans):
    """A CT model 'trained' on the head CT's slices 0-71 (as head-ct-tissue was)."""
    record = describe_training_data([_slab(scans["ct_head"], 0, 72)], intensity=[CT_WINDOW])
    return _spec(CT_WINDOW, record)


@pytest.fixture(scope="module")
def brain_t1_spec(scans):
    """An MR model 'trained' on two slabs of the skull-stripped ICBM152 T1 (as
    brain-tissue-t1 was)."""
    record = describe_training_data([_slab(scans["mni"], 0, 88), _slab(scans["mni"], 136, 189)],
                                    intensity=[MR_PERCENTILES])
    return _spec(MR_PERCENTILES, record)


def _rules(report: FitReport, severity: str | None = None) -> set[str]:
    return {f.rule for f in report.findings if severity is None or f.severity == severity}


# --------------------------------------------------------------------------- the record
def test_the_record_describes_the_training_scans(scans, brain_t1_spec, head_ct_spec):
    brain = brain_t1_spec.training_data
    assert brain.n_scans == 2
    (channel,) = brain.channels
    # slabs of the skull-stripped template keep what was told of it
    assert (channel.modality, channel.mr_contrast, channel.skull_stripped) == ("MR", "T1", True)
    assert brain.spacing_mm.median == (1.0, 1.0, 1.0)
    assert brain.extent_mm.low == (53.0, 233.0, 197.0)  # the thinner slab: 53 slices
    # percentile normalisation maps the 99.5th percentile of the whole scan to 1
    assert 0.6 < channel.normalised.median[3] < 0.9
    assert channel.raw.low[0] <= channel.raw.median[0] <= channel.raw.high[0]
    ct = head_ct_spec.training_data.channels[0]
    assert ct.modality == "CT"
    assert -200 < ct.raw.median[3] < 100  # median body voxel: soft tissue in HU
    assert ct.normalised.median[3] == pytest.approx((ct.raw.median[3] + 1000) / 2500, abs=0.01)


def test_a_skull_stripped_training_set_is_recorded_as_such(scans):
    record = describe_training_data([scans["mni"], scans["ch2bet"]], intensity=[MR_PERCENTILES])
    assert record.channels[0].skull_stripped is True
    mixed = describe_training_data([scans["mni"], scans["ch2"]], intensity=[MR_PERCENTILES])
    assert mixed.channels[0].skull_stripped is None  # not all the same: not claimed


def test_the_record_round_trips_through_a_checkpoint(head_ct_spec, tmp_path):
    model = create_model("unet", spatial_dims=3, in_channels=1, out_channels=3,
                         features=(4, 8, 16))
    path = save_checkpoint(model, head_ct_spec, tmp_path / "m.safetensors")
    _, spec = read_header(path)
    assert spec.training_data == head_ct_spec.training_data
    plain = save_checkpoint(model, dataclasses.replace(head_ct_spec, training_data=None),
                            tmp_path / "old.safetensors")
    # a checkpoint without a record writes no such key: older versions read it as before
    assert "training_data" not in json.loads(_spec_json(plain))
    assert read_header(plain)[1].training_data is None


def _spec_json(path) -> str:
    from safetensors import safe_open

    with safe_open(str(path), "pt") as f:
        return f.metadata()["medseg_spec"]


def test_describe_training_data_refuses_inconsistent_input(scans):
    with pytest.raises(ValueError, match="at least one"):
        describe_training_data([])
    with pytest.raises(ValueError, match="same number of channel"):
        describe_training_data([[scans["mni"]], [scans["mni"], scans["ch2"]]])
    with pytest.raises(ValueError, match="intensity contracts"):
        describe_training_data([scans["mni"]], intensity=[MR_PERCENTILES, MR_PERCENTILES])


def test_body_size_tells_head_from_abdomen(scans, shared_data):
    head = body_size_mm(scans["ct_head"])
    abdomen = body_size_mm(scans["ct_abdomen"])
    arms_down = body_size_mm(read_scan(shared_data / "dicom_series_ct"))
    assert 150 < head < 230
    assert abdomen > 1.3 * head
    assert arms_down < 1.3 * abdomen  # the arms beside the body do not make it another region


# --------------------------------------------------------------------------- one test per rule
def _without_record(name: str) -> CheckpointSpec:
    """A starter's spec as checkpoints made before the record had it."""
    _, spec = read_header(builtin_dir() / f"{name}.safetensors")
    return dataclasses.replace(spec, training_data=None)


def test_fit_unknown_for_a_checkpoint_without_record_which_still_runs(scans):
    spec = _without_record("head-ct-tissue")
    report = check_fit(spec, scans["ct_head"], model="head-ct-tissue")
    assert _rules(report) == {"fit-unknown"}
    assert report.fits  # a note, not a warning: it runs, also with --strict
    assert "no record of its training data" in report.findings[0].message


def test_other_modality_ct_starter_on_an_mr(scans):
    report = check_model("head-ct-tissue", scans["brain1"])
    assert "other-modality" in _rules(report, "warning")
    finding = next(f for f in report.findings if f.rule == "other-modality")
    assert "brain1_image is MR" in finding.message
    assert "trained on CT scans" in finding.message
    assert report.suggestion is not None
    assert report.suggestion.startswith("brain-tissue-t1")  # the MR starter, never a CT one


def test_other_modality_brain_t1_starter_on_a_ct(scans):
    report = check_model("brain-tissue-t1", scans["ct_abdomen"])
    assert "other-modality" in _rules(report, "warning")
    assert report.suggestion.startswith("upper-abdomen-ct-organs")  # the CT model for it


def test_modality_unknown_warns_and_suggests_nothing(scans):
    brain = scans["brain1"]
    rng = np.random.default_rng(0)
    processed = brain.array.astype(np.float32) * 0.37 + rng.random(brain.shape, np.float32)
    guess = read_modality(processed, {})
    scan = dataclasses.replace(brain, array=processed, modality=guess.modality,
                               modality_reason=guess.reason)
    assert scan.modality == "unknown"
    report = check_model("brain-tissue-t1", scan)
    assert "modality-unknown" in _rules(report, "warning")
    assert "could not be told" in report.warnings[0].message
    assert "unknown, so no model is suggested" in report.suggestion


def test_intensity_and_skull_a_t1_with_skull_on_a_skull_stripped_model(scans, brain_t1_spec):
    with_skull = check_fit(brain_t1_spec, scans["ch2"], model="brain-t1")
    assert {"intensity", "skull"} <= _rules(with_skull, "warning")
    assert with_skull.distance > 0.25
    # another subject's skull-stripped T1 (never seen) fits: no warning, no note
    stripped = check_fit(brain_t1_spec, scans["ch2bet"], model="brain-t1")
    assert stripped.findings == []
    assert stripped.distance < 0.05


def test_other_contrast_pd_series_on_a_t1_model(scans, brain_t1_spec):
    report = check_fit(brain_t1_spec, scans["mr_pd"], model="brain-t1")
    assert "other-contrast" in _rules(report, "warning")
    assert "PD MR but brain-t1 was trained on T1" in next(
        f.message for f in report.findings if f.rule == "other-contrast")


def test_spacing_thick_slices_of_the_same_scan(scans, head_ct_spec):
    ct = scans["ct_head"]
    assert "spacing" not in _rules(check_fit(head_ct_spec, ct))
    g = ct.geometry
    thick = resample_to(ct, Geometry(spacing=(6.0, *g.spacing[1:]), origin=g.origin,
                                     direction=g.direction), shape=(27, *ct.shape[1:]))
    report = check_fit(head_ct_spec, thick, model="head-ct")
    assert "spacing" in _rules(report, "warning")
    assert "voxels up to 6 mm" in next(f.message for f in report.findings if f.rule == "spacing")


def test_spacing_without_record_uses_the_models_spacing(scans):
    spec = _without_record("brain-tissue-t1")
    report = check_fit(spec, scans["brain1"], model="brain-tissue-t1")  # 6.5 mm slices, 2 mm
    assert _rules(report, "warning") == {"spacing"}


def test_field_of_view_a_head_model_on_an_abdomen_and_on_a_crop(scans, head_ct_spec):
    abdomen = check_fit(head_ct_spec, scans["ct_abdomen"], model="head-ct")
    assert "field-of-view" in _rules(abdomen, "warning")
    ct = scans["ct_head"]
    crop = dataclasses.replace(ct, array=ct.array[:, 100:150, 100:150].copy())  # 48 mm square
    report = check_fit(head_ct_spec, crop, model="head-ct")
    assert "field-of-view" in _rules(report, "info")
    assert report.fits


def test_the_training_scan_itself_fits(scans, head_ct_spec, brain_t1_spec):
    assert check_fit(head_ct_spec, scans["ct_head"]).findings == []
    assert check_fit(brain_t1_spec, scans["mni"]).findings == []


def test_intensity_distance_is_zero_within_the_training_spread():
    train = Spread(median=(0, 1, 2, 3, 4, 5, 6), low=(0, 0.5, 1.5, 2.5, 3.5, 4.5, 6),
                   high=(0, 1.5, 2.5, 3.5, 4.5, 5.5, 6))
    assert intensity_distance((0, 1.4, 1.6, 3.2, 4.4, 4.6, 6), train) == 0.0
    # every inner percentile 1.5 off: 1.0 beyond the half-spread 0.5, range 4 -> 0.25
    assert intensity_distance((0, 2.5, 3.5, 4.5, 5.5, 6.5, 6), train) == pytest.approx(0.25)


# --------------------------------------------------------------------------- suggestions
def test_suggestions_never_cross_modality(scans):
    ct_only = [e for e in list_checkpoints() if e.name == "head-ct-tissue"]
    none = suggest_model(scans["brain1"], ct_only)
    assert none.entry is None
    assert "no installed model was trained on MR scans" in none.message
    assert "Train tab" in none.message
    pet = dataclasses.replace(scans["brain1"], modality="PT")
    assert suggest_model(pet).entry is None
    assert suggest_model(scans["ct_head"]).entry.name == "head-ct-tissue"
    assert suggest_model(scans["ct_abdomen"]).entry.name == "upper-abdomen-ct-organs"
    assert suggest_model(scans["ch2bet"]).entry.name == "brain-tissue-t1"


def test_the_best_fitting_checkpoint_wins(scans, head_ct_spec, tmp_path):
    model = create_model("unet", spatial_dims=3, in_channels=1, out_channels=3,
                         features=(4, 8, 16))
    head = save_checkpoint(model, head_ct_spec, tmp_path / "head.safetensors")
    abdomen_record = describe_training_data([scans["ct_abdomen"]], intensity=[CT_WINDOW])
    abdomen = save_checkpoint(model, _spec(CT_WINDOW, abdomen_record),
                              tmp_path / "abdomen.safetensors")
    from napari_medseg.inference.catalog import CheckpointEntry

    entries = [CheckpointEntry("head", head, False), CheckpointEntry("abdomen", abdomen, False)]
    assert suggest_model(scans["ct_abdomen"], entries).entry.name == "abdomen"
    assert suggest_model(scans["ct_head"], entries).entry.name == "head"
    report = check_model(head, scans["ct_abdomen"], entries=entries)
    assert report.suggestion.startswith("abdomen was trained on CT scans like this one")


# --------------------------------------------------------------------------- the report
def test_the_report_is_a_json_record_and_a_refusal(scans):
    report = check_model("head-ct-tissue", scans["brain1"])
    data = json.loads(json.dumps(report.to_dict()))
    assert data["fits"] is False
    assert data["model"] == "head-ct-tissue"
    assert {f["rule"] for f in data["findings"]} <= set(RULES)
    assert any(line.startswith("warning: [other-modality]") for line in report.lines())
    refusal = report.refusal("--strict")
    assert refusal.startswith("--strict: head-ct-tissue does not fit brain1_image")
    assert "other-modality" in refusal
    assert "without --strict" in refusal


def test_the_default_choice_without_a_scan_never_crosses_modality():
    from napari_medseg.inference.fit import choose_model

    assert choose_model("MR").name == "brain-tissue-t1"
    assert choose_model("CT").name == "head-ct-tissue"
    assert choose_model("unknown") is None  # not "the first model there is"
    assert choose_model("PT") is None


def test_the_record_script_adds_a_record_to_an_older_checkpoint(scans, tmp_path):
    import importlib.util

    from napari_medseg.io import write_scan
    from napari_medseg.provenance import file_hash
    from tests.conftest import REPO

    source = importlib.util.spec_from_file_location(
        "record_training_data", REPO / "scripts" / "record_training_data.py")
    script = importlib.util.module_from_spec(source)
    source.loader.exec_module(script)
    train = write_scan(_slab(scans["ct_head"], 0, 40), tmp_path / "train.nii.gz")
    other = write_scan(_slab(scans["ct_head"], 40, 80), tmp_path / "other.nii.gz")
    model = create_model("unet", spatial_dims=3, in_channels=1, out_channels=3,
                         features=(4, 8, 16))
    old = save_checkpoint(model, _spec(CT_WINDOW, provenance={"data": {
        "/elsewhere/train.nii.gz": file_hash(train)}}), tmp_path / "old.safetensors")
    assert script.main([str(old), "--images", str(other)]) == 1  # not what it learned from
    new = tmp_path / "new.safetensors"
    assert script.main([str(old), "--images", str(train), "--out", str(new)]) == 0
    _, spec = read_header(new)
    expected = describe_training_data([read_scan(train)], intensity=[CT_WINDOW])
    assert spec.training_data == expected
    assert read_header(old)[1].training_data is None  # --out leaves the original alone


def test_the_starters_carry_their_record_and_say_what_the_issue_found(scans, sample_volumes):
    for name in ("brain-tissue-t1", "head-ct-tissue", "upper-abdomen-ct-organs"):
        assert read_header(builtin_dir() / f"{name}.safetensors")[1].training_data is not None
    # brain-tissue-t1 learned T1 scans drawn with and without a skull: both forms of another
    # subject's T1 fit, and the record claims neither (skull stripping: not one or the other)
    record = read_header(builtin_dir() / "brain-tissue-t1.safetensors")[1].training_data
    assert (record.channels[0].mr_contrast, record.channels[0].skull_stripped) == ("T1", None)
    assert check_model("brain-tissue-t1", scans["ch2"]).findings == []
    assert check_model("brain-tissue-t1", scans["ch2bet"]).findings == []
    assert "other-contrast" in _rules(check_model("brain-tissue-t1", scans["mr_pd"]), "warning")
    # the bundled abdominal CT is no head: head-ct-tissue says so and offers the organ model
    sample = check_model("head-ct-tissue", read_scan(sample_volumes / "ct_abdomen.nii.gz"))
    assert "field-of-view" in _rules(sample, "warning")
    assert sample.suggestion.startswith("upper-abdomen-ct-organs was trained on CT scans like")
    organs = check_model("upper-abdomen-ct-organs",
                         read_scan(sample_volumes / "ct_abdomen.nii.gz"))
    assert organs.fits
    assert organs.warnings == []
