"""The training loop: real K-slice fine-tune, cancel keeps the last good weights, NaN loss,
versioned saving that never overwrites."""

from __future__ import annotations

import errno

import numpy as np
import pytest
import torch

from napari_medseg.errors import CheckpointExistsError, TrainingError
from napari_medseg.events import Log, Progress, run_to_end
from napari_medseg.inference import PredictOptions, Predictor
from napari_medseg.metrics import mean_dice
from napari_medseg.models import create_model, load_checkpoint, save_checkpoint
from napari_medseg.scan import Geometry, LabelMap, Scan
from napari_medseg.training import (
    AugmentOptions,
    LabeledVolume,
    Trainer,
    TrainOptions,
    TrainResult,
    next_version_path,
    save_new_version,
)
from tests.training.conftest import tiny_spec


def _synthetic() -> LabeledVolume:
    rng = np.random.default_rng(1)
    labels = np.zeros((10, 16, 16), np.uint8)
    labels[2:8, 3:13, 3:13] = 1
    labels[4:6, 6:10, 6:10] = 2
    g = Geometry.identity(3)
    scan = Scan((labels * 50 + rng.normal(0, 5, labels.shape)).astype(np.float32), g, "MR")
    return LabeledVolume([scan], LabelMap(labels, g))


def _quick(**kwargs: object) -> TrainOptions:
    base: dict[str, object] = {"steps": 6, "batch_size": 1, "patch_size": (8, 16, 16),
                               "validate_every": 2, "augment": AugmentOptions.none(),
                               "device": "cpu"}
    return TrainOptions(**{**base, **kwargs})  # type: ignore[arg-type]


def test_fine_tune_on_k_corrected_slices_improves_untouched_slices(brain_4mm, tmp_path) -> None:
    """A person copies the truth into K=5 axial slices and marks them reviewed; fine-tuning
    must raise the Dice on the slices nobody touched."""
    scan, truth = brain_4mm
    spec = tiny_spec()
    torch.manual_seed(0)
    start = create_model("unet-3d", spatial_dims=3, in_channels=1, out_channels=3,
                         features=(8, 16, 32))
    parent = save_checkpoint(start, spec, tmp_path / "start.safetensors")
    options = PredictOptions(device="cpu", tile=(32, 32, 32))
    before_labels = Predictor.load(parent, device="cpu").predict(scan, options).labels.array
    corrected = before_labels.copy()
    slices = np.linspace(0, scan.shape[0] - 1, 7)[1:-1].round().astype(int)
    reviewed = np.zeros(scan.shape, bool)
    reviewed[slices] = True
    corrected[reviewed] = truth.array[reviewed]
    volume = LabeledVolume([scan], LabelMap(corrected, scan.geometry, truth.class_names),
                           labeled=reviewed)
    trainer = Trainer.from_checkpoint(parent, [volume], TrainOptions(
        steps=60, batch_size=2, patch_size=(32, 32, 32), learning_rate=1e-2, validate_every=20,
        augment=AugmentOptions.none(), device="cpu", seed=0))
    events = []
    result = run_to_end(trainer.job(), events.append)
    assert any(isinstance(e, Progress) and "val_dice" in e.metrics for e in events)
    after_labels = Predictor([result.model], result.spec, device="cpu").predict(
        scan, options).labels.array
    untouched = ~reviewed
    before = mean_dice(before_labels, truth.array, [1, 2], mask=untouched)
    after = mean_dice(after_labels, truth.array, [1, 2], mask=untouched)
    assert after > before + 0.2, (before, after)
    assert after > 0.5
    assert result.spec.provenance["parent"] == str(parent)


def test_cancel_keeps_the_last_good_weights() -> None:
    spec = tiny_spec((4, 8))
    trainer = Trainer.from_scratch(spec, [_synthetic()], _quick(steps=50, validation_fraction=0.3))
    job = trainer.job()
    seen = 0
    for event in job:
        if isinstance(event, Progress) and event.done >= 3:
            break
        seen += 1
    job.close()  # what napari's worker does on Cancel
    result = trainer.last_good()
    assert isinstance(result, TrainResult)
    assert result.steps_done == 3
    assert result.best_step in (0, 2)
    assert not result.model.training
    assert seen > 0


def test_no_real_improvement_returns_the_starting_weights() -> None:
    spec = tiny_spec((4, 8))
    torch.manual_seed(0)
    start = create_model(spec.architecture, spatial_dims=spec.spatial_dims,
                         in_channels=spec.in_channels, out_channels=spec.out_channels,
                         **spec.options)
    before = {k: v.clone() for k, v in start.state_dict().items()}
    trainer = Trainer(start, spec, [_synthetic()],
                      _quick(steps=4, validate_every=2, validation_fraction=0.3,
                             min_improvement=2.0))  # a Dice cannot rise by 2
    result = run_to_end(trainer.job())
    assert result.steps_done == 4
    assert result.best_step == 0
    after = result.model.state_dict()
    for key, value in before.items():
        torch.testing.assert_close(after[key], value)


def test_nan_loss_stops_with_a_clear_message(monkeypatch) -> None:
    import napari_medseg.training.trainer as trainer_module

    class NanLoss(torch.nn.Module):
        def __init__(self, **_: object) -> None:
            super().__init__()

        def forward(self, logits, target, weight):  # type: ignore[no-untyped-def]
            return logits.sum() * float("nan")

    monkeypatch.setattr(trainer_module, "MaskedDiceCELoss", NanLoss)
    trainer = Trainer.from_scratch(tiny_spec((4, 8)), [_synthetic()], _quick())
    with pytest.raises(TrainingError, match="loss became nan at step 1"):
        run_to_end(trainer.job())
    assert trainer.last_good().model is not None


def test_train_returns_logs_and_history() -> None:
    trainer = Trainer.from_scratch(tiny_spec((4, 8)), [_synthetic()], _quick(freeze_encoder=True))
    events: list[object] = []
    result = run_to_end(trainer.job(), events.append)
    assert any(isinstance(e, Log) and "encoder frozen" in e.message for e in events)
    assert len(result.history) == result.steps_done <= 6
    assert result.spec.provenance["mode"] == "train"


def test_versioned_saving_never_overwrites(tmp_path, monkeypatch) -> None:
    trainer = Trainer.from_scratch(tiny_spec((4, 8)), [_synthetic()], _quick(steps=1))
    result = run_to_end(trainer.job())
    first = save_new_version(result, folder=tmp_path, name="brain-ft")
    second = save_new_version(result, folder=tmp_path, name="brain-ft-v1")
    assert (first.name, second.name) == ("brain-ft-v1.safetensors", "brain-ft-v2.safetensors")
    assert next_version_path(tmp_path, "brain-ft").name == "brain-ft-v3.safetensors"
    with pytest.raises(CheckpointExistsError):
        save_new_version(result, path=first)
    _model, spec = load_checkpoint(second)
    assert spec.provenance["steps"] == 1

    import napari_medseg.models.checkpoint as checkpoint_module

    def full_disk(*args: object, **kwargs: object) -> None:
        raise OSError(errno.ENOSPC, "No space left on device")

    before = first.read_bytes()
    monkeypatch.setattr(checkpoint_module, "save_file", full_disk)
    with pytest.raises(TrainingError, match="disk full"):
        save_new_version(result, folder=tmp_path, name="brain-ft")
    assert first.read_bytes() == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["brain-ft-v1.safetensors",
                                                         "brain-ft-v2.safetensors"]
