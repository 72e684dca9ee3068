"""Class names, coded terms and the provenance sidecar survive every format we write."""

from __future__ import annotations

import json

import numpy as np
import pytest
import SimpleITK as sitk

from napari_medseg.errors import GeometryMismatchError, ScanWriteError
from napari_medseg.io import read_label_file, read_sidecar, sidecar_path, write_label_map
from napari_medseg.io.reorient import onto_grid
from napari_medseg.provenance import ProvenanceRecord, content_hash, with_edits
from napari_medseg.scan import Geometry, LabelMap
from napari_medseg.terminology import Code, SegmentTerm, term_for

SUFFIXES = (".nii.gz", ".nii", ".nrrd", ".nhdr", ".mha", ".mhd")
NAMES = {0: "background", 1: "liver", 2: "kidney_left", 4: "my odd structure"}
#: A term of our own for class 4 (not what the table would give the name).
CUSTOM = SegmentTerm(category=Code("49755003", "SCT", "Morphologically Abnormal Structure"),
                     type=Code("4147007", "SCT", "Mass"), colour=(10, 200, 30))


@pytest.fixture
def labels() -> LabelMap:
    array = np.zeros((6, 20, 24), np.uint8)
    array[1:3, 2:8, 3:9] = 1
    array[2:5, 10:15, 12:20] = 2
    array[4, 0:3, 0:3] = 4
    geometry = Geometry(spacing=(2.5, 0.8, 0.7), origin=(10.0, -20.0, 30.0),
                        direction=np.eye(3))
    return LabelMap(array=array, geometry=geometry, class_names=dict(NAMES))


@pytest.mark.parametrize("suffix", SUFFIXES)
def test_names_and_codes_survive_every_format(labels, suffix, tmp_path):
    path = write_label_map(labels, tmp_path / f"seg{suffix}", terms={4: CUSTOM})
    found = read_label_file(path)
    np.testing.assert_array_equal(found.labels.array, labels.array)
    assert found.labels.class_names == NAMES
    assert found.terms[1].type == Code("10200004", "SCT", "Liver")
    assert found.terms[2].type.meaning == "Kidney"
    assert found.terms[2].modifier == Code("7771000", "SCT", "Left")
    assert found.terms[4] == CUSTOM
    # NIfTI has no place for names: they are in the sidecar; the others keep them in the
    # header and need no sidecar
    has_sidecar = sidecar_path(path).exists()
    assert has_sidecar == suffix.startswith(".nii")


def test_nifti_with_default_names_stays_one_file(tmp_path):
    array = np.zeros((3, 4, 5), np.uint8)
    array[1, 1, 1] = 3
    path = write_label_map(LabelMap(array=array, geometry=Geometry.identity(3)),
                           tmp_path / "plain.nii.gz")
    assert [p.name for p in tmp_path.iterdir()] == [path.name]
    assert read_label_file(path).labels.class_names == {0: "background", 3: "class 3"}


def _record() -> ProvenanceRecord:
    return ProvenanceRecord(made_by="tests", created="2026-01-01T00:00:00+00:00",
                            options={"tta": True})


@pytest.mark.parametrize("suffix", [".nii.gz", ".nrrd", ".mhd"])
def test_provenance_sidecar_round_trip_and_change_detection(labels, suffix, tmp_path):
    reviewed = np.zeros(labels.shape, bool)
    reviewed[2] = True
    record = with_edits(_record(), reviewed=reviewed)
    path = write_label_map(labels, tmp_path / f"seg{suffix}", provenance=record)
    sidecar = read_sidecar(path)
    assert sidecar is not None
    assert sidecar.provenance == record
    assert sidecar.labels_file == path.name
    assert sidecar.matches(read_label_file(path).labels)
    assert sidecar.grid_geometry is not None
    assert sidecar.grid_geometry.is_close(labels.geometry)
    changed = labels.array.copy()
    changed[0, 0, 0] = 2
    write_label_map(LabelMap(array=changed, geometry=labels.geometry, class_names=NAMES),
                    tmp_path / f"other{suffix}")
    assert not sidecar.matches(read_label_file(tmp_path / f"other{suffix}").labels)


def test_replacing_a_file_without_record_removes_its_stale_sidecar(labels, tmp_path):
    path = write_label_map(labels, tmp_path / "seg.nrrd", provenance=_record())
    assert sidecar_path(path).exists()
    write_label_map(labels, path, overwrite=True)  # NRRD holds the names: no sidecar needed
    assert not sidecar_path(path).exists()  # it described the file just replaced


def test_a_failed_label_write_puts_the_old_sidecar_back(labels, tmp_path, monkeypatch):
    path = write_label_map(labels, tmp_path / "seg.nii.gz", provenance=_record())
    before_labels, before_sidecar = path.read_bytes(), sidecar_path(path).read_bytes()

    def full_disk(*_args, **_kwargs):
        msg = "No space left on device"
        raise RuntimeError(msg)

    monkeypatch.setattr(sitk, "WriteImage", full_disk)
    newer = ProvenanceRecord(made_by="a later run", created="2026-02-02T00:00:00+00:00")
    with pytest.raises(ScanWriteError, match="No space left on device"):
        write_label_map(labels, path, provenance=newer, overwrite=True)
    assert path.read_bytes() == before_labels
    assert sidecar_path(path).read_bytes() == before_sidecar
    with pytest.raises(ScanWriteError):
        write_label_map(labels, tmp_path / "new.nii.gz", provenance=newer)
    assert sorted(p.name for p in tmp_path.iterdir()) == [path.name, sidecar_path(path).name]


def test_a_damaged_sidecar_does_not_stop_the_labels(labels, tmp_path):
    path = write_label_map(labels, tmp_path / "seg.nii.gz")
    sidecar_path(path).write_text("{not json")
    found = read_label_file(path)
    np.testing.assert_array_equal(found.labels.array, labels.array)
    assert "not valid JSON" in found.sidecar_problem
    assert found.labels.class_names == {0: "background", 1: "class 1", 2: "class 2",
                                        4: "class 4"}
    sidecar_path(path).write_text(json.dumps({"format": "something else"}))
    assert "not a napari-medseg label sidecar" in read_label_file(path).sidecar_problem


def test_terminology_table():
    assert term_for("Liver").type.value == "10200004"
    assert term_for("grey_matter").type == term_for("gray matter").type
    assert term_for("grey matter").type.value == "389081007"
    assert term_for("white matter").type.value == "389080008"
    assert term_for("soft tissue").category.meaning == "Tissue"
    assert term_for("bone").type.value == "3138006"
    assert term_for("tumour").type.value == "108369006"
    assert term_for("lesion").category.value == "49755003"
    right = term_for("right kidney")
    assert right.type.value == "64033007"
    assert right.modifier is not None
    assert right.modifier.meaning == "Right"
    assert term_for("urinary_bladder").type == term_for("bladder").type
    unknown = term_for("class 7", 7)
    assert unknown.is_generic
    assert term_for("left right kidney").is_generic  # two sides: no guess


# ---------------------------------------------------------------------------- reorient
def test_labels_in_another_axis_order_go_onto_the_grid_unchanged():
    rng = np.random.default_rng(0)
    grid = Geometry(spacing=(2.0, 0.5, 0.7), origin=(5.0, 6.0, 7.0), direction=np.eye(3))
    shape = (4, 5, 6)
    truth = rng.integers(0, 4, shape).astype(np.uint8)
    # the same voxels stored with the axes reversed (x, y, z) and y running backwards
    stored = np.flip(np.transpose(truth, (2, 1, 0)), axis=1)
    direction = np.zeros((3, 3))
    direction[2, 0], direction[1, 1], direction[0, 2] = 1.0, -1.0, 1.0
    origin = grid.index_to_world([0, shape[1] - 1, 0])
    other = Geometry(spacing=(0.7, 0.5, 2.0), origin=tuple(origin), direction=direction)
    np.testing.assert_array_equal(onto_grid(LabelMap(stored, other), grid, shape), truth)
    moved = Geometry(spacing=other.spacing, origin=tuple(origin + 0.3), direction=direction)
    with pytest.raises(GeometryMismatchError, match="do not lie on the voxels"):
        onto_grid(LabelMap(stored, moved), grid, shape)


def test_content_hash_ignores_the_storage_type_not_the_values():
    a = np.zeros((3, 4, 5), np.uint8)
    a[1, 2, 3] = 7
    assert content_hash(a) == content_hash(a.astype(np.uint16)) == content_hash(a.astype(np.int64))
    b = a.copy()
    b[0, 0, 0] = 1
    assert content_hash(b) != content_hash(a)
    assert content_hash(a.reshape(3, 20)) != content_hash(a)  # the shape counts too


def test_an_orphan_sidecar_of_ours_is_replaced(labels, tmp_path):
    """A label file deleted to be made again (a cohort restart) leaves its sidecar: that one
    describes nothing any more and is replaced; a file of another kind under its name is not."""
    path = write_label_map(labels, tmp_path / "seg.nii.gz", provenance=_record())
    path.unlink()
    newer = ProvenanceRecord(made_by="the rerun", created="2026-02-02T00:00:00+00:00")
    write_label_map(labels, path, provenance=newer)
    sidecar = read_sidecar(path)
    assert sidecar is not None
    assert sidecar.provenance == newer
