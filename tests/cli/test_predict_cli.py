"""``napari-medseg predict`` and ``models`` as a person runs them."""

from __future__ import annotations

import dataclasses
import json

import numpy as np
import pytest
import SimpleITK as sitk

from napari_medseg.cli import main
from napari_medseg.io import read_label_map, read_scan
from napari_medseg.scan import Geometry
from tests.conftest import save_tiny_ct_checkpoint


@pytest.fixture
def checkpoint(tmp_path):
    return save_tiny_ct_checkpoint(tmp_path / "tiny.safetensors",
                                   {0: "background", 1: "soft", 2: "bone"},
                                   patch_size=(16, 32, 32), target_spacing=(2.5, 1.5, 1.5))


def test_predict_writes_labels_and_probabilities_on_the_input_grid(
    shared_data, checkpoint, tmp_path, capsys
):
    scan_path = shared_data / "mri_lesion" / "brain1_image.nrrd"  # anisotropic 0.78x0.78x6.5
    out = tmp_path / "labels.nii.gz"
    probs = tmp_path / "probs.nrrd"
    code = main(["predict", "--model", str(checkpoint), "--input", str(scan_path),
                 "--output", str(out), "--probabilities", str(probs), "--device", "cpu",
                 "--tile", "16", "32", "32", "--quiet"])
    assert code == 0
    scan = read_scan(scan_path)
    labels = read_label_map(out, like=scan)  # raises if the grid moved
    assert labels.shape == scan.shape
    image = sitk.ReadImage(str(probs))
    assert image.GetNumberOfComponentsPerPixel() == 3
    p = sitk.GetArrayFromImage(image)
    np.testing.assert_allclose(p.sum(-1), 1.0, atol=1e-2)
    np.testing.assert_array_equal(p.argmax(-1), labels.array)
    # nothing is overwritten without --overwrite
    assert main(["predict", "--model", str(checkpoint), "--input", str(scan_path),
                 "--output", str(out), "--device", "cpu"]) == 1
    assert "already exists" in capsys.readouterr().err


def test_predict_errors_are_one_line(shared_data, checkpoint, tmp_path, capsys):
    scan_path = str(shared_data / "ct_abdomen" / "example_ct_sm.nii.gz")
    out = str(tmp_path / "l.nii.gz")
    assert main(["predict", "--model", str(checkpoint), "--input", scan_path,
                 "--input", scan_path, "--output", out, "--device", "cpu"]) == 1
    assert "takes 1 input channel(s) but got 2" in capsys.readouterr().err
    assert main(["predict", "--model", "nope", "--input", scan_path, "--output", out]) == 1
    assert "no checkpoint 'nope'" in capsys.readouterr().err
    not_a_checkpoint = tmp_path / "x.safetensors"
    not_a_checkpoint.write_bytes(b"\x80\x04garbage" * 10)
    assert main(["predict", "--model", str(not_a_checkpoint), "--input", scan_path,
                 "--output", out]) == 1
    assert "error" in capsys.readouterr().err


def test_models_lists_zoo_and_checkpoints(capsys, tmp_path, monkeypatch, checkpoint):
    monkeypatch.setenv("NAPARI_MEDSEG_MODELS", str(checkpoint.parent))
    assert main(["models", "--json"]) == 0
    listing = json.loads(capsys.readouterr().out)
    names = {m["name"] for m in listing["zoo"]}
    assert {"unet", "segnet", "deeplab-v3plus", "vnet"} <= names
    assert any(c["name"] == "tiny" and not c["builtin"] for c in listing["checkpoints"])


def _crop(path, folder):
    """A small real scan (a corner of ``path``'s middle slices) written as NIfTI."""
    from napari_medseg.io import write_scan

    scan = read_scan(path)
    z = scan.shape[0] // 2
    g = scan.geometry
    moved = Geometry(spacing=g.spacing, origin=tuple(g.index_to_world([z - 6, 20, 20])),
                     direction=g.direction)
    small = dataclasses.replace(scan, array=scan.array[z - 6:z + 6, 20:84, 20:84].copy(),
                                geometry=moved)
    name = path.name.split("_")[0] + "_crop.nii.gz"
    return write_scan(small, folder / name)


def test_predict_warns_when_the_model_does_not_fit_and_strict_refuses(
    shared_data, checkpoint, tmp_path, capsys
):
    mr = str(_crop(shared_data / "mri_lesion" / "brain1_image.nrrd", tmp_path))  # MR, CT model
    out = tmp_path / "labels.nii.gz"
    common = ["predict", "--model", str(checkpoint), "--input", mr, "--device", "cpu",
              "--tile", "16", "32", "32", "--quiet"]
    assert main([*common, "--output", str(out), "--strict"]) == 1
    err = capsys.readouterr().err
    assert "warning: [other-modality] brain1_crop is MR" in err
    assert "error: strict: tiny does not fit brain1_crop (other-modality, spacing)" in err
    assert not out.exists()  # refused before any work
    # without --strict the person may insist: it runs, the warning stays on stderr
    assert main([*common, "--output", str(out)]) == 0
    assert "warning: [other-modality]" in capsys.readouterr().err
    assert out.exists()


def test_strict_runs_a_model_that_fits_and_modality_overrides_the_guess(
    shared_data, checkpoint, tmp_path, capsys
):
    ct = str(_crop(shared_data / "ct_abdomen" / "example_ct_sm.nii.gz", tmp_path))
    out = tmp_path / "ct.nii.gz"
    assert main(["predict", "--model", str(checkpoint), "--input", ct, "--output", str(out),
                 "--device", "cpu", "--quiet", "--strict"]) == 0
    err = capsys.readouterr().err
    assert "info: [fit-unknown]" in err  # an older checkpoint: a note, no refusal
    assert "warning" not in err
    # the person says the scan is MR: the check believes them
    assert main(["predict", "--model", str(checkpoint), "--input", ct, "--output",
                 str(tmp_path / "as_mr.nii.gz"), "--modality", "MR", "--strict"]) == 1
    assert "MR (given by the caller) but tiny was trained on CT" in capsys.readouterr().err


def test_one_scan_and_a_cohort_are_fit_checked_alike(shared_data, checkpoint, tmp_path,
                                                     capsys):
    """The same fit check runs inside the segment job and the cohort job: an MR scan given to
    a CT model warns in both; with --strict the one scan is refused and the cohort's case
    fails with the same reason, while a case that fits is segmented."""
    mr = _crop(shared_data / "mri_lesion" / "brain1_image.nrrd", tmp_path)
    ct = _crop(shared_data / "ct_abdomen" / "example_ct_sm.nii.gz", tmp_path)
    common = ["--model", str(checkpoint), "--device", "cpu", "--tile", "16", "32", "32",
              "--quiet"]
    assert main(["predict", *common, "--input", str(mr), "--output",
                 str(tmp_path / "one.nii.gz"), "--strict"]) == 1
    one = capsys.readouterr().err
    manifest = tmp_path / "cases.txt"
    manifest.write_text(f"{mr}\n{ct}\n")
    out = tmp_path / "out"
    assert main(["predict", *common, "--input-list", str(manifest), "--output-dir", str(out),
                 "--strict"]) == 1
    cohort = capsys.readouterr().err
    refusal = "strict: tiny does not fit brain1_crop (other-modality, spacing)"
    assert refusal in one
    assert refusal in cohort
    summary = json.loads((out / "summary.json").read_text())
    status = {c["case_id"]: c["status"] for c in summary["cases"]}
    assert status == {"brain1_crop": "failed", "example_crop": "done"}
    # without --strict the cohort segments both and records the warning with the case
    assert main(["predict", *common, "--input-list", str(manifest), "--output-dir",
                 str(tmp_path / "lenient")]) == 0
    assert "brain1_crop: tiny: [other-modality]" in capsys.readouterr().err
    cases = json.loads((tmp_path / "lenient" / "summary.json").read_text())["cases"]
    warned = {c["case_id"]: bool(c["fit_warnings"]) for c in cases}
    assert warned == {"brain1_crop": True, "example_crop": False}
