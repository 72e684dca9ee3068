"""``napari-medseg train / finetune / evaluate`` on tiny files (seconds, CPU): the CLI's own
conversion of flags and files; what the runs learn is tested in tests/training."""

from __future__ import annotations

import argparse
import json

import numpy as np
import pytest

from napari_medseg.cli import evaluate, finetune, train
from napari_medseg.errors import CheckpointExistsError, MedsegError, TrainingError
from napari_medseg.io import read_label_map, write_label_map, write_scan
from napari_medseg.models import load_checkpoint
from napari_medseg.scan import Geometry, LabelMap, Scan


def _run(argv: list[str]) -> int:
    parser = argparse.ArgumentParser()
    sub = parser.add_subparsers(dest="verb", required=True)
    for module in (train, finetune, evaluate):
        module.add_parser(sub)
    args = parser.parse_args(argv)
    return int(args.func(args))


@pytest.fixture
def files(tmp_path):
    rng = np.random.default_rng(0)
    labels = np.zeros((8, 16, 16), np.uint8)
    labels[2:6, 3:13, 3:13] = 1
    labels[3:5, 6:10, 6:10] = 2
    g = Geometry.identity(3, (2.0, 1.0, 1.0))
    image = (labels * 60 + rng.normal(0, 5, labels.shape)).astype(np.float32)
    write_scan(Scan(image, g, "CT"), tmp_path / "ct.nii.gz")
    write_label_map(LabelMap(labels, g), tmp_path / "labels.nii.gz")
    mask = np.zeros_like(labels)
    mask[3] = 1
    write_label_map(LabelMap(mask, g), tmp_path / "mask.nii.gz")
    sparse = labels.copy()
    sparse[::2] = 255
    write_label_map(LabelMap(sparse, g), tmp_path / "sparse.nii.gz")
    bad = labels.copy()
    bad[0, 0, 0] = 9
    write_label_map(LabelMap(bad, g), tmp_path / "bad.nii.gz")
    return tmp_path


#: A 2D U-Net across the slices, on whole 16 x 16 slices: learns these blocks in 60 steps.
LOOP = ["--steps", "60", "--batch", "4", "--patch", "16", "16", "--validate-every", "10",
        "--lr", "1e-2", "--device", "cpu", "--quiet", "--no-augment"]
TINY = ["--dims", "2", *LOOP]


def _train(files, out, *extra: str) -> int:
    return _run(["train", "--model", "unet", "--features", "8", "16", "--images",
                 str(files / "ct.nii.gz"), "--labels", str(files / "sparse.nii.gz"),
                 "--ignore-value", "255", "--out", str(out), *TINY, *extra])


def test_train_flags_reach_the_checkpoint_and_the_segment_file(files, capsys) -> None:
    ckpt, mask = files / "m.safetensors", files / "mask_out.nrrd"
    assert _train(files, ckpt, "--classes", "3", "--normalization", "ct_window", "--window",
                  "-50", "200", "--class-names", "1=organ", "2=core", "--val",
                  str(files / "ct.nii.gz"), str(files / "labels.nii.gz"),
                  "--segment", str(mask)) == 0
    out = capsys.readouterr().out
    assert f"wrote {ckpt}" in out
    assert f"wrote {mask}" in out
    _, spec = load_checkpoint(ckpt)
    assert spec.class_names[1] == "organ"
    assert spec.out_channels == 3
    assert spec.intensity[0].window == (-50.0, 200.0)
    assert spec.options["features"] == [8, 16]
    assert (spec.spatial_dims, spec.slice_axis) == (2, 0)
    assert spec.provenance["command"].startswith("napari-medseg train")
    assert spec.provenance["heldout_metrics"][0]["classes"][0]["name"] == "organ"
    assert all(v.startswith("sha256:") for v in spec.provenance["data"].values())
    written = read_label_map(mask)
    truth = read_label_map(files / "labels.nii.gz")
    assert written.shape == truth.shape
    # the mask keeps the person's labels where they labeled (every odd slice)
    np.testing.assert_array_equal(written.array[1::2], truth.array[1::2])
    with pytest.raises(CheckpointExistsError):
        _train(files, ckpt)


def test_a_run_that_learns_nothing_saves_no_model_but_writes_the_annotation_mask(
        files, capsys) -> None:
    from napari_medseg.cli import main

    ckpt = files / "never.safetensors"
    mask = files / "never_mask.nii.gz"
    status = main(["train", "--model", "unet-3d", "--features", "4", "8", "--images",
                   str(files / "ct.nii.gz"), "--labels", str(files / "sparse.nii.gz"),
                   "--ignore-value", "255", "--out", str(ckpt), "--dims", "3", "--steps", "1",
                   "--batch", "1", "--patch", "8", "16", "16", "--device", "cpu", "--quiet",
                   "--no-augment", "--lr", "1e-5", "--segment", str(mask)])
    out = capsys.readouterr().out
    assert status == 1  # no model
    assert not ckpt.exists()
    assert "learned nothing" in out
    assert "no model was saved" in out
    assert f"wrote {mask} (the scan's mask: from your annotation alone" in out
    written = read_label_map(mask).array
    sparse = read_label_map(files / "sparse.nii.gz").array
    painted = sparse != 255
    np.testing.assert_array_equal(written[painted], sparse[painted])


def test_finetune_writes_a_new_version_or_keeps_the_parent(files, capsys) -> None:
    parent = files / "m.safetensors"
    assert _train(files, parent) == 0
    # the person's new labels move the core: the parent is wrong there, a fine-tune learns it
    labels = read_label_map(files / "labels.nii.gz")
    moved = labels.array.copy()
    moved[moved == 2] = 1
    moved[2:6, 4:8, 8:12] = 2
    write_label_map(LabelMap(moved, labels.geometry), files / "moved.nii.gz")
    tuned = files / "m2.safetensors"
    assert _run(["finetune", "--checkpoint", str(parent), "--image", str(files / "ct.nii.gz"),
                 "--labels", str(files / "moved.nii.gz"), "--compare", "--out", str(tuned),
                 *LOOP]) == 0
    assert "labeled voxels: Dice" in capsys.readouterr().out
    _, tuned_spec = load_checkpoint(tuned)
    assert tuned_spec.provenance["parent"] == str(parent)
    with pytest.raises(CheckpointExistsError):
        _run(["finetune", "--checkpoint", str(parent), "--image", str(files / "ct.nii.gz"),
              "--labels", str(files / "labels.nii.gz"), "--out", str(tuned), *LOOP])
    # labels the model already gets right: no gain, nothing written, exit status 3
    same = files / "same.safetensors"
    assert _run(["finetune", "--checkpoint", str(tuned), "--image", str(files / "ct.nii.gz"),
                 "--labels", str(files / "moved.nii.gz"), "--out", str(same), *LOOP]) == (
        finetune.KEPT_PARENT)
    assert "kept the starting model" in capsys.readouterr().out
    assert not same.exists()


def test_evaluate_prints_and_exports(files, capsys) -> None:
    assert _run(["evaluate", "--pred", str(files / "labels.nii.gz"), "--truth",
                 str(files / "labels.nii.gz"), "--json"]) == 0
    report = json.loads(capsys.readouterr().out)
    assert report["mean"]["dice"] == 1.0
    assert report["classes"][0]["volume_pred_ml"] > 0
    table = files / "table.csv"
    assert _run(["evaluate", "--pred", str(files / "sparse.nii.gz"), "--truth",
                 str(files / "labels.nii.gz"), "--csv", str(table), "--classes", "1", "2"]) == 0
    assert "Dice" in capsys.readouterr().out
    assert table.read_text().startswith("label,")


def test_finetune_refuses_bad_labels(files) -> None:
    ckpt = files / "m.safetensors"
    assert _train(files, ckpt) == 0
    with pytest.raises(TrainingError, match=r"class value\(s\) \[9\]"):
        _run(["finetune", "--checkpoint", str(ckpt), "--image", str(files / "ct.nii.gz"),
              "--labels", str(files / "bad.nii.gz"), "--out", str(files / "n.safetensors"),
              *LOOP])
    empty = files / "empty.nii.gz"
    write_label_map(LabelMap(np.zeros((8, 16, 16), np.uint8), Geometry.identity(3, (2, 1, 1))),
                    empty)
    with pytest.raises(TrainingError, match="no labeled voxel"):
        _run(["finetune", "--checkpoint", str(ckpt), "--image", str(files / "ct.nii.gz"),
              "--labels", str(files / "labels.nii.gz"), "--labeled-mask", str(empty),
              "--out", str(files / "n.safetensors"), *LOOP])
    with pytest.raises(MedsegError, match="different grids"):
        _run(["finetune", "--checkpoint", str(ckpt), "--image", str(files / "ct.nii.gz"),
              "--labels", str(_other_grid(files)), "--out", str(files / "n.safetensors"), *LOOP])
    assert not (files / "n.safetensors").exists()


def _other_grid(folder):
    path = folder / "other.nii.gz"
    write_label_map(LabelMap(np.zeros((8, 16, 16), np.uint8), Geometry.identity(3)), path)
    return path


def test_train_start_from_a_grown_checkpoint_learns_the_new_class(files, capsys) -> None:
    """scripts/grow_classes.py adds a class to a model (it still labels as before), and
    ``train --start-from`` fine-tunes it on volumes that hold the new class."""
    import importlib.util

    import torch

    from tests.conftest import REPO

    parent = files / "m.safetensors"
    labels = read_label_map(files / "labels.nii.gz")
    two = labels.array.copy()
    two[two == 2] = 1  # the parent knows one organ
    write_label_map(LabelMap(two, labels.geometry), files / "one.nii.gz")
    assert _run(["train", "--model", "unet", "--features", "8", "16", "--images",
                 str(files / "ct.nii.gz"), "--labels", str(files / "one.nii.gz"),
                 "--out", str(parent), *TINY]) == 0
    spec_path = REPO / "scripts" / "grow_classes.py"
    module_spec = importlib.util.spec_from_file_location("grow_classes", spec_path)
    grow = importlib.util.module_from_spec(module_spec)
    module_spec.loader.exec_module(grow)
    grown = files / "grown.safetensors"
    assert grow.main([str(parent), str(grown), "--add", "2=core"]) == 0
    old_model, _ = load_checkpoint(parent)
    new_model, new_spec = load_checkpoint(grown)
    assert (new_spec.out_channels, new_spec.class_names[2]) == (2 + 1, "core")
    x = torch.randn(1, new_spec.in_channels, 16, 16)
    with torch.no_grad():  # the grown network labels exactly what its parent did
        assert torch.equal(old_model(x).argmax(1), new_model(x).argmax(1))
    assert grow.main([str(parent), str(files / "bad.safetensors"), "--add", "5=x"]) == 1
    tuned = files / "tuned.safetensors"
    capsys.readouterr()
    mask = files / "network.nrrd"
    assert _run(["train", "--start-from", str(grown), "--images", str(files / "ct.nii.gz"),
                 "--labels", str(files / "labels.nii.gz"), "--out", str(tuned), "--no-combine",
                 "--segment", str(mask), *LOOP]) == 0
    _, spec = load_checkpoint(tuned)
    assert spec.provenance["parent"] == str(grown)
    assert spec.out_channels == 3
    found, truth = read_label_map(mask).array == 2, labels.array == 2
    assert 2 * (found & truth).sum() / (found.sum() + truth.sum()) > 0.5  # the new class
