"""The train verb end to end on a tiny synthetic scan (seconds on a CPU):
:func:`napari_medseg.training.job.train_job` learns a structure from three annotated slices,
refuses runs that learned nothing or label the whole scan, and never overwrites a file."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from torch import nn

from napari_medseg.errors import CheckpointExistsError, TrainingError
from napari_medseg.events import Log, run_to_end
from napari_medseg.inference.combine import RULES, TIE
from napari_medseg.metrics import mean_dice
from napari_medseg.models import load_checkpoint
from napari_medseg.scan import Geometry, LabelMap, Scan
from napari_medseg.training import job as job_module
from napari_medseg.training import trainer as trainer_module
from napari_medseg.training.job import EVERYWHERE, SaveTarget, train_job
from napari_medseg.training.labeled_volume import LabeledVolume
from napari_medseg.training.plan import LearnOptions
from tests.training.conftest import torch_threads

SHAPE = (12, 32, 32)
ANNOTATED = [3, 6, 9]
#: A 2.5D U-Net 8..16 for 120 steps of 4 patches (about 2 s of one CPU core).
OPTIONS = {"features": (8, 16), "steps": 120, "batch_size": 4, "augment": False,
           "device": "cpu", "threads": 1, "seed": 0}


@pytest.fixture(scope="module", autouse=True)
def _one_thread():
    """One torch thread (also for the plan's measured steps, before the trainer sets it)."""
    with torch_threads(1):
        yield


def _truth() -> np.ndarray:
    """An ellipsoid on slices 2..10 (a tenth of the scan)."""
    z, y, x = np.indices(SHAPE)
    return (((z - 6) / 5) ** 2 + ((y - 15) / 8) ** 2 + ((x - 17) / 7) ** 2 <= 1).astype(np.uint8)


def _annotated() -> np.ndarray:
    labeled = np.zeros(SHAPE, bool)
    labeled[ANNOTATED] = True
    return labeled


def _volume(labels: np.ndarray | None = None, image: np.ndarray | None = None
            ) -> LabeledVolume:
    """The ellipsoid, bright in noise, with ``labels`` (default: the truth) on three slices."""
    truth = _truth()
    if image is None:
        image = truth * 100.0 + np.random.default_rng(0).normal(0, 20, SHAPE)
    labeled = _annotated()
    values = np.where(labeled, truth if labels is None else labels, 0).astype(np.uint8)
    geometry = Geometry.identity(3)
    return LabeledVolume([Scan(image.astype(np.float32), geometry, "MR")],
                         LabelMap(values, geometry, {0: "background", 1: "blob"}),
                         labeled=labeled)


def _train(volume: LabeledVolume, save: SaveTarget | None = None, events: list | None = None,
           **options: object):
    job = train_job([volume], LearnOptions(**{**OPTIONS, **options}), save=save)  # type: ignore[arg-type]
    return run_to_end(job, events.append if events is not None else None)


@pytest.fixture(scope="module")
def learned(tmp_path_factory):
    """One run saved into a folder that already holds ``blob-v1``: (result, events, folder,
    the bytes of ``blob-v1``)."""
    folder = tmp_path_factory.mktemp("models")
    earlier = folder / "blob-v1.safetensors"
    earlier.write_bytes(b"an earlier model")
    events: list = []
    with pytest.MonkeyPatch.context() as patch:  # set up before the suite's per-test isolation
        patch.setenv("NAPARI_MEDSEG_MODELS", str(tmp_path_factory.mktemp("user-models")))
        result = _train(_volume(), SaveTarget(folder=folder, name="blob"), events)
    return result, events, folder, earlier.read_bytes()


def test_learns_the_structure_on_slices_nobody_annotated(learned) -> None:
    result, _, _, _ = learned
    truth = _truth()
    unseen = ~_annotated()
    assert result.learned
    assert result.mask is not None
    assert result.network is not None
    mask = result.mask.array
    assert mask.shape == SHAPE
    assert 0 < (mask > 0).mean() < 0.5  # neither empty nor the whole scan
    # a random mask with the same share of foreground scores about that share
    share = float((mask[unseen] > 0).mean())
    chance = 2 * share * truth[unseen].mean() / (share + truth[unseen].mean())
    dice = mean_dice(mask, truth, [1], mask=unseen)
    assert chance < 0.2
    assert dice > 0.6, dice
    network = mean_dice(result.network.array, truth, [1], mask=unseen)
    assert network > 0.5, network  # the network itself learned, not only the interpolation
    # the person's slices are kept as they were
    np.testing.assert_array_equal(mask[_annotated()], truth[_annotated()])


def test_the_mask_rule_was_measured_on_the_held_back_slice(learned) -> None:
    result, events, _, _ = learned
    assert result.rule is not None
    assert result.rule.rule in RULES
    scores = result.rule.scores
    assert np.isfinite(scores[result.rule.rule])
    assert scores[result.rule.rule] >= max(d for d in scores.values() if np.isfinite(d)) - TIE
    if np.isfinite(scores.get("interpolation", np.nan)):
        assert scores[result.rule.rule] >= scores["interpolation"] - TIE
    assert result.train.plans[0] is not None
    assert result.train.plans[0].slices == (6,)  # the inner annotated slice
    assert any(isinstance(e, Log) and "combining with your annotation" in e.message
               for e in events)
    assert all(s.index not in ANNOTATED for s in result.suggestions)


def test_saves_a_new_version_next_to_an_earlier_one(learned) -> None:
    result, events, folder, earlier = learned
    assert result.model_path == folder / "blob-v2.safetensors"
    assert (folder / "blob-v1.safetensors").read_bytes() == earlier == b"an earlier model"
    assert sorted(p.name for p in folder.iterdir()) == ["blob-v1.safetensors",
                                                        "blob-v2.safetensors"]
    assert any(isinstance(e, Log) and e.message.startswith("saved ") for e in events)
    _, spec = load_checkpoint(result.model_path)
    assert spec.spatial_dims == 2
    assert spec.provenance["mask_rule"] == result.rule.rule  # type: ignore[union-attr]
    assert spec.scan_annotation is not None
    assert tuple(spec.scan_annotation.slices) == tuple(ANNOTATED)


class _Constant(nn.Module):
    """A 'network' that outputs the same logits everywhere: it cannot learn a structure."""

    def __init__(self, out_channels: int) -> None:
        super().__init__()
        self.bias = nn.Parameter(torch.zeros(out_channels))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        shape = (1, -1, *([1] * (x.ndim - 2)))
        return self.bias.view(shape).expand(x.shape[0], -1, *x.shape[2:])


def test_a_network_that_cannot_learn_saves_nothing(monkeypatch, tmp_path) -> None:
    monkeypatch.setattr(trainer_module, "create_model",
                        lambda name, *, spatial_dims, in_channels, out_channels, **kw:
                        _Constant(out_channels))
    result = _train(_volume(), SaveTarget(folder=tmp_path, name="blob"))
    assert list(tmp_path.iterdir()) == []  # no model saved
    assert result.model_path is None
    assert not result.learned
    assert "learned nothing" in result.summary()
    assert "no model was saved" in result.summary()
    # ... but the person keeps the best mask their own annotation gives
    assert result.annotation is not None
    assert result.annotation.describe() in result.summary()
    labeled = _annotated()
    np.testing.assert_array_equal(result.mask.array[labeled], _volume().labels.array[labeled])
    truth = _truth() > 0
    got = result.mask.array > 0
    assert 2 * (got & truth).sum() / (got.sum() + truth.sum()) > 0.8
    with pytest.raises(TrainingError, match="learned nothing"):  # no mask asked: an error
        run_to_end(train_job([_volume()], LearnOptions(**OPTIONS), segment=False))


def test_labels_that_do_not_match_the_scan_save_nothing(tmp_path) -> None:
    """Random labels (a tenth of the annotated voxels) on a scan without noise: nothing in
    the image tells labeled voxels from others."""
    noise = np.random.default_rng(5).random(SHAPE) < 0.1
    volume = _volume(labels=noise.astype(np.uint8), image=_truth() * 100.0)
    result = _train(volume, SaveTarget(folder=tmp_path, name="noise"))
    assert "does not reproduce its own annotation" in result.summary()
    assert result.model_path is None
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize(("combine", "stages"), [
    (False, ("segment",)),
    (True, ("segment",)),  # the validated network is sound: the mask rule uses the network
    (True, ("measure", "segment")),  # it scores poorly on the held-back slice: interpolation
])
def test_a_model_labeling_the_whole_scan_is_refused(monkeypatch, tmp_path, combine: bool,
                                                    stages: tuple[str, ...]) -> None:
    """The network labels every voxel foreground (its prediction replaced at ``stages``);
    whatever mask rule is chosen, the model is refused and nothing is saved."""
    predict = job_module._predict

    def everywhere(*args, **kwargs):
        prediction = yield from predict(*args, **kwargs)
        if kwargs["stage"] in stages:
            prediction.labels.array[...] = 1
        return prediction

    monkeypatch.setattr(job_module, "_predict", everywhere)
    annotated = (_truth()[_annotated()] == 1).mean()
    assert annotated < EVERYWHERE / 2  # what makes "everywhere" a failure here
    with pytest.raises(TrainingError, match="labels 100% of the scan as 'blob'"):
        _train(_volume(), SaveTarget(folder=tmp_path, name="blob"), combine=combine)
    assert list(tmp_path.iterdir()) == []


def test_an_existing_path_is_never_overwritten(tmp_path) -> None:
    target = tmp_path / "mine.safetensors"
    target.write_bytes(b"a model someone keeps")
    with pytest.raises(CheckpointExistsError, match="never replaces"):
        _train(_volume(), SaveTarget(path=target))
    assert target.read_bytes() == b"a model someone keeps"
    assert [p.name for p in tmp_path.iterdir()] == ["mine.safetensors"]


def test_a_mask_past_the_painted_slices_is_said_and_suggested_first() -> None:
    from napari_medseg.training.job import past_annotation

    labels = np.zeros((40, 8, 8), np.uint8)
    labels[15:39, 2:5, 2:5] = 1  # painted on 16, 20, 24; the mask runs on to slice 38
    said, first = past_annotation(labels, 0, (16, 20, 24))
    assert "14 slice(s) past your last painted slice (slices 25-38)" in said
    assert "1 slice(s) before your first painted slice (slice 15)" in said  # even one slice
    assert first == 25
    within = np.zeros((40, 8, 8), np.uint8)
    within[16:25] = 1
    assert past_annotation(within, 0, (16, 20, 24)) == ("", None)


def test_the_plan_comes_as_a_typed_event() -> None:
    from napari_medseg.events import PlanReady

    events: list[object] = []
    result = run_to_end(train_job([_volume()], LearnOptions(**OPTIONS)), events.append)
    plans = [e for e in events if isinstance(e, PlanReady)]
    assert len(plans) == 1
    assert plans[0].summary == result.plan.summary()
    # the time left a front end shows after the training steps: the scan's segmenting
    assert plans[0].train_s == pytest.approx(result.plan.train.steps * result.plan.step_s)
    assert plans[0].segment_s == pytest.approx(2 * result.plan.inference_s)
    assert plans[0].segment_s > 0
    assert plans[0].train_s + plans[0].segment_s == pytest.approx(result.plan.eta_s)
    assert "to segment the scan" in plans[0].summary


def test_a_mask_following_a_strand_past_the_last_painted_slice_is_stopped_and_said() -> None:
    """The ellipsoid goes on, past its end, as a bright strand 3 voxels wide straight up 13
    slices (a vessel leaving a nodule).  Painted on 3, 6 and 9 (the strand never painted),
    the network learns "bright" and labels the strand; the mask stops a few slices past
    slice 9, the status says where and Next slice goes there first."""
    shape = (24, 32, 32)
    z, y, x = np.indices(shape)
    truth = (((z - 6) / 5) ** 2 + ((y - 15) / 8) ** 2 + ((x - 17) / 7) ** 2 <= 1)
    strand = (z >= 9) & ((y - 15) ** 2 + (x - 17) ** 2 <= 2)
    image = (truth | strand) * 100.0 + np.random.default_rng(0).normal(0, 20, shape)
    labeled = np.zeros(shape, bool)
    labeled[ANNOTATED] = True
    geometry = Geometry.identity(3, spacing=(3.0, 1.0, 1.0))
    volume = LabeledVolume([Scan(image.astype(np.float32), geometry, "MR")],
                           LabelMap(np.where(labeled, truth, 0).astype(np.uint8), geometry,
                                    {0: "background", 1: "blob"}), labeled=labeled)
    result = _train(volume, steps=200)
    assert result.network is not None
    assert result.mask is not None
    assert result.network.array[16:].sum() > 0  # the network did follow the strand
    kept = np.nonzero(result.mask.array.any(axis=(1, 2)))[0]
    assert kept.max() <= 9 + 3  # the tip (slice 10) and one thin slice, +1 slack
    assert [c.painted for c in result.stopped] == [9]
    first = result.stopped[0].first
    assert first == kept.max() + 1  # a straight strand is stopped whole past its reach
    assert result.suggestions[0].index == first
    said = result.summary()
    assert "left out" in said
    assert f"look at slice {first} first" in said
    assert "of 'blob'" in said
