"""The convert verb's core job: one read, scan or label map by content, nothing clobbered."""

from __future__ import annotations

import numpy as np
import pytest

from napari_medseg.errors import OutputExistsError, UnsupportedFormatError
from napari_medseg.events import run_to_end
from napari_medseg.io import read_label_map, read_scan, write_label_map, write_scan
from napari_medseg.io.convert import ConvertOptions, convert, convert_job
from napari_medseg.scan import Geometry, LabelMap, Scan


@pytest.fixture
def files(tmp_path):
    geometry = Geometry(spacing=(2.0, 0.8, 0.8), origin=(10.0, -5.0, 3.0),
                        direction=np.diag([1.0, -1.0, -1.0]))
    rng = np.random.default_rng(0)
    scan = Scan(rng.normal(0, 100, (6, 10, 12)).astype(np.int16), geometry, "CT")
    labels = LabelMap((scan.array > 50).astype(np.uint8) * 2, geometry,
                      {0: "background", 2: "bright"})
    return (write_scan(scan, tmp_path / "ct.nrrd"),
            write_label_map(labels, tmp_path / "seg.nrrd"), tmp_path)


def test_a_scan_stays_a_scan_and_labels_stay_labels(files):
    ct, seg, folder = files
    result = convert(ct, folder / "ct.nii.gz")
    assert (result.kind, result.shape, result.spacing) == ("scan", (6, 10, 12), (2.0, 0.8, 0.8))
    a, b = read_scan(ct), read_scan(result.path)
    np.testing.assert_array_equal(a.array, b.array)
    assert a.geometry.is_close(b.geometry)
    labels = convert(seg, folder / "seg.mha")
    assert labels.kind == "label map"
    back = read_label_map(labels.path)
    assert back.class_names == {0: "background", 2: "bright"}  # names travel NRRD -> MHA
    np.testing.assert_array_equal(back.array, read_label_map(seg).array)


def test_the_kind_can_be_forced(files):
    _ct, seg, folder = files
    assert convert(seg, folder / "as_scan.nrrd", ConvertOptions(labels=False)).kind == "scan"
    assert convert(seg, folder / "as_labels.nrrd",
                   ConvertOptions(labels=True)).kind == "label map"


def test_an_existing_output_is_refused_before_anything_is_read(files):
    ct, _seg, folder = files
    out = folder / "out.nrrd"
    out.write_bytes(b"keep me")
    job = convert_job(folder / "missing.nii.gz", out)  # the input is never opened
    with pytest.raises(OutputExistsError, match="already exists"):
        run_to_end(job)
    assert out.read_bytes() == b"keep me"
    with pytest.raises(UnsupportedFormatError):
        convert(ct, folder / "out.png")
    assert convert(ct, out, ConvertOptions(overwrite=True)).path == out
    assert read_scan(out).shape == (6, 10, 12)


def test_nan_voxels_are_refused_or_filled(tmp_path):
    array = np.ones((4, 5, 6), np.float32)
    array[1, 2, 3] = np.nan
    path = write_scan(Scan(array, Geometry.identity(3)), tmp_path / "nan.nrrd")
    from napari_medseg.errors import UnsupportedScanError

    with pytest.raises(UnsupportedScanError, match="NaN"):
        convert(path, tmp_path / "a.nrrd")
    filled = convert(path, tmp_path / "b.nrrd", ConvertOptions(nan_policy="fill"))
    assert np.isfinite(read_scan(filled.path).array).all()


def test_dicom_seg_output_needs_its_series_and_is_checked_before_reading(files):
    from napari_medseg.errors import MedsegError
    from napari_medseg.io.dicom_seg import MissingReferenceError

    _ct, seg, folder = files
    job = convert_job(folder / "missing.nii.gz", folder / "seg.dcm")  # never opened
    with pytest.raises(MissingReferenceError, match="--reference SERIES_DIR"):
        run_to_end(job)
    with pytest.raises(MedsegError, match=r"is for DICOM-SEG input or output \(\.dcm\)"):
        convert(seg, folder / "seg.mha", ConvertOptions(reference=str(folder)))
    with pytest.raises(MedsegError, match="a DICOM-SEG holds a label map"):
        convert(seg, folder / "seg.dcm", ConvertOptions(labels=False, reference=str(folder)))
    assert sorted(p.name for p in folder.iterdir()) == ["ct.nrrd", "seg.nrrd"]


def test_labels_to_dicom_seg_and_back_keep_names_and_record(shared_data, tmp_path):
    from napari_medseg.io import read_label_file
    from tests.io.seg_helpers import copy_series

    series = copy_series(shared_data / "dicom_series_ct", tmp_path / "ct", 6, 10)
    ct = read_scan(series)
    array = np.zeros(ct.shape, np.uint8)
    array[1:3, 200:260, 180:240] = 5
    nifti = write_label_map(LabelMap(array, ct.geometry, {0: "background", 5: "liver",
                                                          7: "lesion"}),
                            tmp_path / "organs.nii.gz")  # names in the sidecar (NIfTI)
    out = convert(nifti, tmp_path / "organs.dcm", ConvertOptions(reference=str(series)))
    assert (out.kind, out.shape, out.n_classes) == ("label map", ct.shape, 2)
    assert out.notes == ("not written, no voxel: 7 (lesion)",)
    back = convert(out.path, tmp_path / "back.nrrd")  # a DICOM-SEG input: read as labels
    assert back.kind == "label map"
    found = read_label_file(back.path)
    np.testing.assert_array_equal(found.labels.array, array)
    assert found.labels.class_names[5] == "liver"
    assert (found.terms[5].type.scheme, found.terms[5].type.value) == ("SCT", "10200004")
    assert found.provenance is not None
    assert found.provenance.made_by == "napari-medseg convert"
    assert found.provenance.derived_from["file"] == str(out.path)
