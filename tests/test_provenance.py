"""Provenance records: what they say about scans, models, edits; their parent chains."""

from __future__ import annotations

import json

import numpy as np
import pytest

from napari_medseg.inference import PredictOptions
from napari_medseg.inference.records import model_record, prediction_record
from napari_medseg.provenance import (
    ProvenanceError,
    ProvenanceRecord,
    content_hash,
    file_hash,
    note_untracked_changes,
    with_edits,
)
from napari_medseg.scan import Geometry, LabelMap, Scan
from tests.conftest import save_tiny_ct_checkpoint

CLASSES = {0: "background", 1: "liver"}


@pytest.fixture
def scan() -> Scan:
    rng = np.random.default_rng(3)
    return Scan(array=rng.normal(0, 100, (6, 16, 16)).astype(np.int16),
                geometry=Geometry.identity(3, (3.0, 1.0, 1.0)), modality="CT")


def test_a_prediction_record_names_scan_model_options(scan, tmp_path):
    checkpoint = save_tiny_ct_checkpoint(tmp_path / "tiny.safetensors", CLASSES)
    labels = LabelMap(array=(scan.array > 0).astype(np.uint8), geometry=scan.geometry)
    record = prediction_record([scan], [checkpoint], PredictOptions(tta=True), made_by="tests",
                               labels=labels)
    assert record.scan is not None
    assert record.scan.content_hash == content_hash(scan.array, geometry=scan.geometry)
    assert record.scan.shape == (6, 16, 16)
    (model,) = record.models
    assert model.file_hash == file_hash(checkpoint)
    assert model.architecture == "unet"
    assert model.class_names == CLASSES
    assert record.options["tta"] is True
    assert record.options["postprocess"] == {"largest_component": False, "fill_holes": False,
                                             "min_size": 0}
    assert record.result_hash == content_hash(labels.array)
    assert "napari-medseg" in record.software
    assert "numpy" in record.software
    again = ProvenanceRecord.from_json(record.to_json())
    assert again == record
    assert json.loads(record.to_json())["format"] == "napari-medseg provenance"


def test_fine_tune_parents_are_followed_nearest_first(tmp_path):
    grand = save_tiny_ct_checkpoint(tmp_path / "base.safetensors", CLASSES,
                                    provenance={"mode": "train", "steps": 300,
                                                "date": "2026-01-01"})
    # the fields Trainer.from_checkpoint writes: parent, parent_file, parent_provenance_date
    parent = save_tiny_ct_checkpoint(tmp_path / "base-ft-v1.safetensors", CLASSES,
                                     provenance={"mode": "finetune", "steps": 40,
                                                 "parent": str(grand),
                                                 "parent_provenance_date": "2026-01-01",
                                                 "date": "2026-02-01"})
    child = save_tiny_ct_checkpoint(tmp_path / "base-ft-v2.safetensors", CLASSES,
                                    provenance={"mode": "finetune", "steps": 20,
                                                "parent": str(parent),
                                                "parent_provenance_date": "2026-02-01",
                                                "date": "2026-03-01"})
    record = model_record(child)
    assert record.training["steps"] == 20
    assert [p["file_hash"] for p in record.lineage] == [file_hash(parent), file_hash(grand)]
    assert [p["mode"] for p in record.lineage] == ["finetune", "train"]
    grand.unlink()  # a parent that is no longer on this machine is said to be missing
    record = model_record(child)
    assert [p["date"] for p in record.lineage] == ["2026-02-01", "2026-01-01"]
    assert record.lineage[-1] == {"name": str(grand), "date": "2026-01-01", "found": False}


def test_edits_are_slices_along_an_axis_and_calling_again_adds_nothing_twice(scan):
    record = ProvenanceRecord(made_by="tests", created="2026-01-01T00:00:00+00:00")
    edited = np.zeros(scan.shape, bool)
    edited[1, 3, 3] = edited[4, 0:2, 0:2] = True
    reviewed = np.zeros(scan.shape, bool)
    reviewed[2] = True
    once = with_edits(record, edited=edited, reviewed=reviewed)
    assert once.edits is not None
    assert once.edits.edited_slices == (1, 4)
    assert once.edits.reviewed_slices == (2,)
    assert with_edits(once, edited=edited, reviewed=reviewed) == once  # the tracker's growing masks
    edited[5, 0, 0] = True
    assert with_edits(once, edited=edited).edits.edited_slices == (1, 4, 5)
    assert with_edits(record, edited=edited, axis=2).edits.edited_slices == (0, 1, 3)
    with pytest.raises(ValueError, match="along axis 0, not 2"):
        with_edits(once, edited=edited, axis=2)


def test_summary_fits_a_dicom_content_description(scan, tmp_path):
    checkpoint = save_tiny_ct_checkpoint(
        tmp_path / ("a-model-with-a-rather-long-name-for-a-dicom-field-" * 2 + ".safetensors"),
        CLASSES)
    record = prediction_record([scan], [checkpoint], PredictOptions(), made_by="tests")
    edited = np.zeros(scan.shape, bool)
    edited[0, 0, 0] = True
    text = with_edits(record, edited=edited).summary(64)
    assert len(text) <= 64
    assert text.startswith("a-model-with")
    short = prediction_record([scan], [save_tiny_ct_checkpoint(tmp_path / "m.safetensors",
                                                               CLASSES)], {}, made_by="tests")
    summary = with_edits(short, edited=edited).summary(64)
    assert summary == (f"m on scan {short.scan.content_hash[7:15]}; 1 slice(s) edited")


def test_changes_nobody_recorded_are_noted(scan):
    labels = LabelMap(array=(scan.array > 0).astype(np.uint8), geometry=scan.geometry)
    record = ProvenanceRecord(made_by="tests", created="2026-01-01T00:00:00+00:00",
                              result_hash=content_hash(labels.array))
    assert note_untracked_changes(record, labels) == record
    painted = labels.array.copy()
    painted[0, 0, 0] = 1 - painted[0, 0, 0]
    noted = note_untracked_changes(record, LabelMap(array=painted, geometry=scan.geometry))
    assert noted.edits is not None
    assert noted.edits.untracked_changes
    assert "edits not tracked" in noted.summary(64)


def test_records_that_are_not_ours_are_refused():
    with pytest.raises(ProvenanceError, match="not a napari-medseg provenance record"):
        ProvenanceRecord.from_json('{"made_by": "x"}')
    with pytest.raises(ProvenanceError, match="not valid JSON"):
        ProvenanceRecord.from_json("{")
    with pytest.raises(ProvenanceError, match="newer"):
        ProvenanceRecord.from_json(json.dumps({"format": "napari-medseg provenance",
                                               "format_version": 99}))


def test_one_file_identity_for_every_record(tmp_path) -> None:
    """The same bytes under two names are one file; a folder never looks like a file."""
    a, b = tmp_path / "a.nii.gz", tmp_path / "b.nii.gz"
    a.write_bytes(b"the same bytes")
    b.write_bytes(b"the same bytes")
    assert file_hash(a) == file_hash(b)
    assert file_hash(a).startswith("sha256:")
    folder = tmp_path / "series"
    folder.mkdir()
    (folder / "1.dcm").write_bytes(b"the same bytes")
    assert file_hash(folder).startswith("sha256-folder:")
    (folder / "2.dcm").write_bytes(b"x")
    before = file_hash(folder)
    (folder / "2.dcm").write_bytes(b"y")
    assert file_hash(folder) != before
    from napari_medseg.cli import train

    assert train.file_hash is file_hash  # the CLI's data records use the same identity
