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
