"""``napari-medseg info``, ``convert`` and ``evaluate`` as a person runs them: exit codes,
one-line errors."""

from __future__ import annotations

import json
import subprocess
import sys

import numpy as np
import pytest

from napari_medseg.cli import main
from napari_medseg.io import read_label_map, read_scan
from tests.io.seg_helpers import copy_series, foreground_checkpoint


def test_info_json_describes_the_geometry(shared_data, capsys):
    path = shared_data / "mri_lesion" / "brain1_image.nrrd"
    assert main(["info", str(path), "--json"]) == 0
    info = json.loads(capsys.readouterr().out)
    scan = read_scan(path)
    assert info["shape"] == [25, 256, 256]
    assert info["spacing_mm"] == pytest.approx(list(scan.spacing))
    assert info["origin_mm"] == pytest.approx(list(scan.geometry.origin))
    assert np.allclose(info["direction"], scan.geometry.direction)
    assert info["dtype"] == "int16"


def test_info_text_and_dicom_listing(shared_data, capsys):
    assert main(["info", str(shared_data / "dicom_series_ct")]) == 0
    out = capsys.readouterr().out
    assert "(20, 512, 512)" in out
    assert "CT" in out


@pytest.mark.parametrize("suffix", [".nii.gz", ".nrrd", ".mha"])
def test_convert_keeps_geometry(shared_data, tmp_path, suffix, capsys):
    src = shared_data / "dicom_series_ct"
    out = tmp_path / f"ct{suffix}"
    assert main(["convert", str(src), str(out)]) == 0
    assert "wrote scan" in capsys.readouterr().out
    a, b = read_scan(src), read_scan(out)
    np.testing.assert_array_equal(a.array, b.array)
    assert a.geometry.is_close(b.geometry)


def test_convert_label_file_stays_labels(shared_data, tmp_path):
    src = shared_data / "ct_abdomen" / "example_seg.nii.gz"
    out = tmp_path / "seg.nrrd"
    assert main(["convert", str(src), str(out)]) == 0
    np.testing.assert_array_equal(read_label_map(out).array, read_label_map(src).array)


def test_convert_refuses_to_overwrite(shared_data, tmp_path, capsys):
    out = tmp_path / "ct.nrrd"
    out.write_bytes(b"keep me")
    src = shared_data / "ct_abdomen" / "example_ct_sm.nii.gz"
    assert main(["convert", str(src), str(out)]) == 1
    err = capsys.readouterr().err
    assert "already exists" in err
    assert "--overwrite" in err
    assert "pass --overwrite" in err  # the CLI speaks CLI
    assert "overwrite=True" not in err
    assert out.read_bytes() == b"keep me"
    assert main(["convert", str(src), str(out), "--overwrite"]) == 0
    assert read_scan(out).shape == (30, 101, 122)


def test_errors_are_one_line_without_traceback(tmp_path):
    (tmp_path / "bad.nii.gz").write_bytes(b"not gzip at all" * 20)
    proc = subprocess.run(
        [sys.executable, "-m", "napari_medseg", "info", str(tmp_path / "bad.nii.gz")],
        capture_output=True,
        text=True,
        check=False,
    )
    assert proc.returncode == 1
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1
    assert lines[0].startswith("napari-medseg info: error: bad.nii.gz")
    assert "Traceback" not in proc.stderr


# ---------------------------------------------------------------------------- DICOM-SEG
CT_LABELS = "dicom_series_ct_labels/example_seg_dicom.nii.gz"


def test_convert_labels_to_dicom_seg_on_their_series(shared_data, tmp_path, capsys):
    import pydicom

    out = tmp_path / "organs.dcm"
    series = shared_data / "dicom_series_ct"
    code = main(["convert", str(shared_data / CT_LABELS), str(out), "--reference", str(series)])
    assert code == 0
    assert "wrote label map" in capsys.readouterr().out
    ds = pydicom.dcmread(out, stop_before_pixels=True)
    assert ds.SOPClassUID == "1.2.840.10008.5.1.4.1.1.66.4"
    assert len(ds.SegmentSequence) == 31
    assert len(ds.ReferencedSeriesSequence[0].ReferencedInstanceSequence) == 20
    back = read_label_map(out, reference=series)  # the NIfTI rows run the other way
    np.testing.assert_array_equal(back.array, read_label_map(shared_data / CT_LABELS).array[
        :, ::-1, :])
    assert main(["info", str(out), "--json"]) == 0
    info = json.loads(capsys.readouterr().out)
    assert info["kind"] == "DICOM-SEG"
    assert info["modality"] == "SEG"
    assert info["shape"] == [20, 512, 512]
    assert len(info["segments"]) == 31
    assert info["provenance"]["made_by"] == "napari-medseg convert"
    assert info["provenance"]["derived_from"]["file"].endswith("example_seg_dicom.nii.gz")
    assert info["sidecar"]["matches_file"] is True


def test_convert_to_dicom_seg_needs_the_series(shared_data, tmp_path, capsys):
    out = tmp_path / "organs.dcm"
    assert main(["convert", str(shared_data / CT_LABELS), str(out)]) == 1
    err = capsys.readouterr().err
    assert "--reference SERIES_DIR" in err
    assert len(err.strip().splitlines()) == 1
    # labels on another grid than the series given: refused, nothing written
    other = shared_data / "ct_abdomen" / "example_seg.nii.gz"
    assert main(["convert", str(other), str(out), "--reference",
                 str(shared_data / "dicom_series_ct")]) == 1
    assert "do not lie on the voxels" in capsys.readouterr().err
    assert list(tmp_path.iterdir()) == []


def test_convert_dicom_seg_back_keeps_names_and_record(shared_data, tmp_path, capsys):
    from napari_medseg.io import write_label_map
    from napari_medseg.scan import LabelMap

    ct = read_scan(shared_data / "dicom_series_ct")
    array = np.zeros(ct.shape, np.uint8)
    array[3:9, 200:260, 180:240] = 5
    array[10:12, 300:320, 300:330] = 1
    seg = write_label_map(LabelMap(array=array, geometry=ct.geometry,
                                   class_names={0: "background", 1: "spleen", 5: "liver"}),
                          tmp_path / "seg.dcm", reference=ct)
    out = tmp_path / "seg.nii.gz"
    assert main(["convert", str(seg), str(out)]) == 0
    capsys.readouterr()
    back = read_label_map(out)
    np.testing.assert_array_equal(back.array, array)
    assert back.class_names == {0: "background", 1: "spleen", 5: "liver"}  # from the sidecar
    assert main(["info", str(out)]) == 0
    text = capsys.readouterr().out
    assert "liver  Liver [SCT 10200004]" in text
    assert "converted   from" in text


def test_predict_writes_dicom_seg_on_the_input_series_with_its_record(shared_data, tmp_path,
                                                                      capsys):
    import pydicom

    from napari_medseg.provenance import file_hash

    # four slices of the CT series keep the run short
    series = copy_series(shared_data / "dicom_series_ct", tmp_path / "ct", 6, 10)
    model = foreground_checkpoint(tmp_path / "liver.safetensors")
    out = tmp_path / "pred.dcm"
    code = main(["predict", "--model", str(model), "--input", str(series), "--output", str(out),
                 "--device", "cpu", "--tile", "4", "256", "256", "--overlap", "0", "--quiet"])
    assert code == 0
    ds = pydicom.dcmread(out, stop_before_pixels=True)
    (segment,) = ds.SegmentSequence
    assert segment.SegmentLabel == "liver"
    assert segment.SegmentAlgorithmType == "AUTOMATIC"
    algorithm = segment.SegmentationAlgorithmIdentificationSequence[0]
    assert algorithm.AlgorithmName == "liver"
    assert algorithm.AlgorithmVersion == file_hash(model)[7:23]
    assert int(ds.NumberOfFrames) == 4  # every voxel is "liver": one frame per slice
    assert ds.ContentDescription.startswith("liver on scan ")
    assert main(["info", str(out), "--json"]) == 0
    record = json.loads(capsys.readouterr().out)["provenance"]
    assert record["made_by"] == "napari-medseg predict"
    assert record["models"][0]["file_hash"] == file_hash(model)
    assert record["models"][0]["training"] == {"mode": "train", "steps": 1}
    assert record["scan"]["dicom"]["n_slices"] == 4
    assert record["options"]["overlap"] == 0.0


def test_predict_to_dicom_seg_from_a_nifti_scan_fails_before_the_run(shared_data, tmp_path,
                                                                     capsys):
    model = foreground_checkpoint(tmp_path / "liver.safetensors")
    scan = shared_data / "ct_abdomen" / "example_ct_sm.nii.gz"
    code = main(["predict", "--model", str(model), "--input", str(scan), "--output",
                 str(tmp_path / "pred.dcm"), "--device", "cpu", "--quiet"])
    assert code == 1
    assert "not read from a DICOM series" in capsys.readouterr().err
    assert not (tmp_path / "pred.dcm").exists()


def test_evaluate_shows_the_references_names_and_what_was_averaged(shared_data, tmp_path,
                                                                    capsys):
    from napari_medseg.io import write_label_map
    from napari_medseg.scan import LabelMap

    truth_path = shared_data / "mri_lesion" / "brain1_label.nrrd"  # a lesion mask, unnamed
    truth = read_label_map(truth_path)
    tissue = np.zeros(truth.shape, np.uint8)
    tissue[truth.array == 1] = 1  # the lesion, called grey matter by a 'tissue model'
    tissue[:, :20, :20] = 2
    pred = write_label_map(LabelMap(tissue, truth.geometry, {0: "background", 1: "grey matter",
                                                             2: "white matter"}),
                           tmp_path / "tissue.nrrd")
    assert main(["evaluate", "--pred", str(pred), "--truth", str(truth_path),
                 "--no-surface"]) == 0
    table = capsys.readouterr().out
    assert "    1  class 1 " in table  # the reference's name
    assert "1 grey matter (value)" in table
    assert "2 white matter (prediction only) *" in table
    assert "means over the reference's classes present in either map: 1 class 1" in table
    assert main(["evaluate", "--pred", str(pred), "--truth", str(truth_path), "--no-surface",
                 "--match", "name", "--json"]) == 0
    report = json.loads(capsys.readouterr().out)
    assert [c["matched_by"] for c in report["classes"]] == [
        "reference only", "prediction only", "prediction only"]
    assert report["mean"]["dice"] == 0.0  # the lesion, unmatched by name


def test_journals_lists_and_removes_old_journals(capsys) -> None:
    import os

    import numpy as np

    from napari_medseg.cli import main
    from napari_medseg.training.journal import RestoreChoice, ScanIdentity, journal_path_for
    from napari_medseg.training.journal import open_journal as open_

    identity = ScanIdentity.of_labels(np.zeros((2, 4, 4), np.uint8))
    path = journal_path_for(identity, "pred", scan_name="ct.nii.gz")
    journal, _ = open_(path, (2, 4, 4), identity=identity, scan="ct.nii.gz", labels="pred",
                       decide=lambda s: RestoreChoice.RESTORE)
    journal.record_edit([[1, 2, 3]], 4)
    assert main(["journals"]) == 0
    out = capsys.readouterr().out
    assert "ct.nii.gz / pred: 1 edited voxel and 0 reviewed slices" in out
    assert str(path) in out
    assert main(["journals", "--remove-older-than", "1"]) == 0
    assert path.exists()  # changed just now: kept
    week_ago = path.stat().st_mtime - 7 * 86400
    os.utime(path, (week_ago, week_ago))
    assert main(["journals", "--remove-older-than", "1"]) == 1  # asks for --yes without a tty
    assert path.exists()
    assert main(["journals", "--remove-older-than", "1", "--yes"]) == 0
    assert not path.exists()
