"""``napari-medseg fuse`` end to end on small real brains written to a temporary folder."""

from __future__ import annotations

import numpy as np
import pytest

from napari_medseg.cli import main
from napari_medseg.fusion import load_transform
from napari_medseg.io import read_label_map, read_scan, write_label_map, write_scan
from napari_medseg.scan import Geometry, LabelMap, Scan
from tests.fusion.conftest import remap_contrast


@pytest.fixture
def pair(tmp_path, colin_3mm):
    """fixed.nii.gz: a 3 mm brain; moving.nrrd: a second contrast, cropped by two slices at
    each end (another field of view) and placed 12 mm up in its header, so that its anatomy
    sits 6 mm above the fixed one; labels.nrrd: its brain mask."""
    g = colin_3mm.geometry
    moving_geometry = Geometry(
        spacing=g.spacing, origin=(g.origin[0] + 12.0, *g.origin[1:]), direction=g.direction
    )
    moving = Scan(array=remap_contrast(colin_3mm.array)[2:-2], geometry=moving_geometry)
    mask = LabelMap(array=(moving.array > 0).astype(np.uint8), geometry=moving_geometry)
    paths = {
        "fixed": write_scan(colin_3mm, tmp_path / "fixed.nii.gz"),
        "moving": write_scan(moving, tmp_path / "moving.nrrd"),
        "labels": write_label_map(mask, tmp_path / "labels.nrrd"),
    }
    return tmp_path, paths


def test_register_and_fuse_writes_everything(pair, capsys) -> None:
    tmp, p = pair
    argv = [
        "fuse", "--fixed", str(p["fixed"]), "--moving", str(p["moving"]),
        "--register", "rigid", "--method", "wavelet", "--output", str(tmp / "fused.nii.gz"),
        "--transform-out", str(tmp / "t.tfm"), "--resampled-out", str(tmp / "b_on_a.nii.gz"),
        "--moving-labels", str(p["labels"]), "--labels-out", str(tmp / "l_on_a.nrrd"),
        "--quality", "--quiet",
    ]  # fmt: skip
    assert main(argv) == 0
    out = capsys.readouterr().out
    assert "registered (rigid)" in out
    assert "Q^AB/F" in out
    fixed = read_scan(p["fixed"])
    fused = read_scan(tmp / "fused.nii.gz")
    assert fused.same_grid(fixed)
    resampled = read_scan(tmp / "b_on_a.nii.gz")
    assert resampled.same_grid(fixed)
    labels = read_label_map(tmp / "l_on_a.nrrd")
    brain = fixed.array > 0.1 * fixed.array.max()
    found = labels.array > 0
    dice = 2 * np.logical_and(found, brain).sum() / (found.sum() + brain.sum())
    assert dice > 0.9
    # the anatomy 6 mm higher is found: fixed -> moving adds 6 mm to z (ITK order x, y, z)
    transform = load_transform(tmp / "t.tfm")
    moved = np.asarray(transform.TransformPoint((0.0, 0.0, 0.0)))
    assert moved[2] == pytest.approx(6.0, abs=1.0)

    # the saved transform reproduces the resampled scan without searching again
    again = [
        "fuse", "--fixed", str(p["fixed"]), "--moving", str(p["moving"]),
        "--transform-in", str(tmp / "t.tfm"), "--output", str(tmp / "fused2.nii.gz"),
        "--resampled-out", str(tmp / "b_on_a2.nii.gz"), "--quiet",
    ]  # fmt: skip
    assert main(again) == 0
    np.testing.assert_allclose(read_scan(tmp / "b_on_a2.nii.gz").array, resampled.array, atol=1e-3)


def test_existing_output_is_refused_before_any_work(pair, capsys) -> None:
    tmp, p = pair
    out = tmp / "fused.nii.gz"
    out.write_bytes(b"precious")
    argv = ["fuse", "--fixed", str(p["fixed"]), "--moving", str(p["moving"]),
            "--output", str(out), "--resampled-out", str(tmp / "r.nii.gz")]  # fmt: skip
    assert main(argv) == 1
    assert "already exists" in capsys.readouterr().err
    assert out.read_bytes() == b"precious"
    assert not (tmp / "r.nii.gz").exists()


def test_no_overlap_is_one_clear_line_and_writes_nothing(tmp_path, capsys) -> None:
    array = np.random.default_rng(0).random((8, 8, 8)).astype(np.float32)
    a = Scan(array=array, geometry=Geometry.identity(3))
    far = Geometry(spacing=(1.0,) * 3, origin=(900.0, 0.0, 0.0), direction=np.eye(3))
    write_scan(a, tmp_path / "a.nii.gz")
    write_scan(Scan(array=array, geometry=far), tmp_path / "b.nii.gz")
    argv = ["fuse", "--fixed", str(tmp_path / "a.nii.gz"), "--moving",
            str(tmp_path / "b.nii.gz"), "--output", str(tmp_path / "f.nii.gz")]  # fmt: skip
    assert main(argv) == 1
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1
    assert "do not overlap" in err
    assert "899.5" in err
    assert not (tmp_path / "f.nii.gz").exists()


def test_option_conflicts(pair, capsys) -> None:
    tmp, p = pair
    base = ["fuse", "--fixed", str(p["fixed"]), "--moving", str(p["moving"]),
            "--output", str(tmp / "f.nii.gz")]  # fmt: skip
    assert main([*base, "--labels-out", str(tmp / "l.nrrd")]) == 1
    assert "go together" in capsys.readouterr().err
    assert main([*base, "--transform-out", str(tmp / "t.json")]) == 1
    assert "must end in" in capsys.readouterr().err
    assert main([*base, "--transform-in", str(tmp / "t.tfm"), "--register", "rigid"]) == 1
    assert "--register none" in capsys.readouterr().err
