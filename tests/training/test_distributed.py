"""Training on several processes (torchrun, gloo on CPU) and resuming a run after a failure."""

from __future__ import annotations

import json
import math
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import torch
from safetensors.torch import load_file

from napari_medseg import distributed
from napari_medseg.cli import main
from napari_medseg.distributed import Context, DistributedError
from napari_medseg.errors import TrainingError
from napari_medseg.events import Log, Progress, run_to_end
from napari_medseg.inference import PredictOptions, Predictor
from napari_medseg.io import read_label_map, read_scan, write_label_map, write_scan
from napari_medseg.metrics import mean_dice
from napari_medseg.models import CheckpointSpec, IntensityContract, create_model, load_checkpoint
from napari_medseg.scan import Geometry, LabelMap, Scan
from napari_medseg.training import AugmentOptions, LabeledVolume, Trainer, TrainOptions
from napari_medseg.training.loop_state import LoopState, Phase
from napari_medseg.training.resume import RunCheckpoints
from napari_medseg.training.trainer import _per_rank_batch


@pytest.fixture(scope="module")
def bone(shared_data, tmp_path_factory) -> Path:
    """A real head CT crop (16 x 64 x 64 voxels, every 4th in-plane) and its bone mask."""
    folder = tmp_path_factory.mktemp("bone")
    ct = read_scan(shared_data / "ct_head" / "head_ct.nii.gz")
    mask = read_label_map(shared_data / "ct_head" / "head_ct_bone_threshold.nii.gz", like=ct)
    g = ct.geometry
    grid = Geometry((g.spacing[0], g.spacing[1] * 4, g.spacing[2] * 4), g.origin, g.direction)
    region = np.s_[40:56, ::4, ::4]
    write_scan(Scan(ct.array[region].copy(), grid, "CT"), folder / "ct.nii.gz")
    write_label_map(LabelMap(mask.array[region].astype(np.uint8), grid,
                             {0: "background", 1: "bone"}), folder / "bone.nii.gz")
    return folder


@pytest.fixture
def restore_threads():
    threads = torch.get_num_threads()
    yield
    torch.set_num_threads(threads)


def torchrun(args: list[str], cwd: Path, **popen: object) -> subprocess.Popen:
    """``torchrun --standalone --nproc_per_node 2 -m napari_medseg ARGS`` in its own session
    (so that the test can kill the launcher with its workers, like a failed node)."""
    command = [sys.executable, "-m", "torch.distributed.run", "--standalone",
               "--nproc_per_node", "2", "-m", "napari_medseg", *args]
    return subprocess.Popen(command, cwd=cwd, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            text=True, start_new_session=True, **popen)  # type: ignore[call-overload]


def _finish(process: subprocess.Popen, timeout: float = 240) -> tuple[int, str, str]:
    try:
        out, err = process.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        os.killpg(process.pid, signal.SIGKILL)
        out, err = process.communicate()
        pytest.fail(f"torchrun did not finish in {timeout} s:\n{err[-3000:]}")
    return process.returncode, out, err


def _train_args(bone: Path, out: Path, *extra: str, features: str = "8 16",
                patch: str = "16 32 32") -> list[str]:
    return ["train", "--model", "unet-3d", "--features", *features.split(), "--images",
            str(bone / "ct.nii.gz"), "--labels", str(bone / "bone.nii.gz"), "--normalization",
            "ct_window", "--window", "-200", "1000", "--patch", *patch.split(), "--batch", "2",
            "--lr", "5e-3", "--validate-every", "10", "--patience", "100", "--device", "cpu",
            "--no-augment", "--out", str(out), *extra]


def _dice(checkpoint: Path, bone: Path) -> float:
    scan = read_scan(bone / "ct.nii.gz")
    truth = read_label_map(bone / "bone.nii.gz", like=scan)
    labels = Predictor.load(checkpoint, device="cpu").predict(
        scan, PredictOptions(device="cpu")).labels
    return mean_dice(labels.array, truth.array, [1])


# ---------------------------------------------------------------------- rank helpers
def test_context_comes_from_torchrun_environment() -> None:
    assert distributed.from_environment({}) == Context()
    context = distributed.from_environment(
        {"RANK": "3", "WORLD_SIZE": "4", "LOCAL_RANK": "1", "LOCAL_WORLD_SIZE": "2"})
    assert (context.rank, context.world_size, context.local_rank) == (3, 4, 1)
    assert context.is_distributed
    assert not context.is_main
    with pytest.raises(DistributedError, match="do not fit WORLD_SIZE=2"):
        distributed.from_environment({"RANK": "2", "WORLD_SIZE": "2"})
    with pytest.raises(DistributedError, match="not an integer"):
        distributed.from_environment({"WORLD_SIZE": "two"})
    # CUDA without an index is this rank's GPU; a single process keeps what it was given
    gpus = max(1, torch.cuda.device_count())
    assert distributed.device_for_rank(torch.device("cuda"), context) == torch.device(
        "cuda", 1 % gpus)
    assert distributed.device_for_rank(torch.device("cuda"), Context()) == torch.device("cuda")
    assert distributed.threads_per_process(Context()) is None
    cores = distributed.available_cores()
    assert distributed.threads_per_process(context) == max(1, cores // 2)


def test_single_process_collectives_are_identities() -> None:
    with distributed.process_group() as context:  # no WORLD_SIZE: nothing is joined
        assert context == Context()
        assert distributed.mean_over_ranks(2.5) == 2.5
        assert distributed.gather_objects({"a": 1}) == [{"a": 1}]
        distributed.barrier()


def test_process_group_without_rendezvous_says_how_to_launch(monkeypatch) -> None:
    monkeypatch.setenv("WORLD_SIZE", "2")
    monkeypatch.setenv("RANK", "0")
    monkeypatch.delenv("MASTER_ADDR", raising=False)
    monkeypatch.delenv("MASTER_PORT", raising=False)
    with pytest.raises(DistributedError, match="launch with torchrun"), \
            distributed.process_group():
        pass


def test_the_global_batch_is_shared_out_over_the_ranks() -> None:
    assert _per_rank_batch(4, Context(world_size=2)) == 2
    assert _per_rank_batch(3, Context()) == 3
    with pytest.raises(TrainingError, match=r"use a multiple of 2, e\.g\. --batch 2 or 4"):
        _per_rank_batch(3, Context(world_size=2))


# ---------------------------------------------------------------------- resume, in-process
def _bone_volume(bone: Path) -> LabeledVolume:
    scan = read_scan(bone / "ct.nii.gz")
    return LabeledVolume([scan], read_label_map(bone / "bone.nii.gz", like=scan))


def _bone_spec() -> CheckpointSpec:
    return CheckpointSpec(
        architecture="unet-3d", spatial_dims=3, in_channels=1, out_channels=2,
        options={"features": [4, 8]}, class_names={0: "background", 1: "bone"},
        intensity=[IntensityContract(modality="CT", normalization="ct_window",
                                     window=(-200, 1000))])


def _options(**kwargs: object) -> TrainOptions:
    base: dict[str, object] = {"steps": 8, "batch_size": 2, "patch_size": (8, 16, 16),
                               "validate_every": 2, "patience": 100, "device": "cpu",
                               "threads": 1, "augment": AugmentOptions()}
    return TrainOptions(**{**base, **kwargs})  # type: ignore[arg-type]


def test_a_resumed_run_continues_from_the_saved_step_as_if_never_stopped(
        bone, tmp_path, restore_threads) -> None:
    volume = _bone_volume(bone)
    uninterrupted = run_to_end(Trainer.from_scratch(_bone_spec(), [volume], _options()).job())

    folder = tmp_path / "run.checkpoints"
    job = Trainer.from_scratch(_bone_spec(), [volume], _options(),
                               checkpoints=RunCheckpoints(folder=folder, every=3)).job()
    for event in job:  # a failure (here: a cancel) during step 7
        if isinstance(event, Progress) and event.done == 7:
            job.close()
    assert [p.name for p in folder.iterdir()] == ["step-000006"]  # only the newest is kept
    record = json.loads((folder / "step-000006" / "state.json").read_text())
    assert record["loop"]["step"] == 6
    assert record["scheduler"]["last_epoch"] == 6
    tensors = load_file(str(folder / "step-000006" / "state.safetensors"))
    assert any(k.startswith("optimizer.") and k.endswith(".exp_avg") for k in tensors)

    events: list[object] = []
    resumed = run_to_end(Trainer.from_scratch(
        _bone_spec(), [volume], _options(),
        checkpoints=RunCheckpoints(folder=folder, every=3, resume=True)).job(), events.append)
    assert Log(f"resumed from step 6 ({folder})") in events
    assert [e.done for e in events if isinstance(e, Progress)] == [7, 8]
    assert resumed.steps_done == 8
    assert [h["loss"] for h in resumed.history] == [h["loss"] for h in uninterrupted.history]
    for key, value in uninterrupted.model.state_dict().items():
        torch.testing.assert_close(resumed.model.state_dict()[key], value, rtol=0, atol=0)


def test_checkpoints_of_another_run_are_never_used_or_overwritten(
        bone, tmp_path, restore_threads) -> None:
    volume = _bone_volume(bone)
    folder = tmp_path / "run.checkpoints"
    job = Trainer.from_scratch(_bone_spec(), [volume], _options(),
                               checkpoints=RunCheckpoints(folder=folder, every=2)).job()
    for event in job:
        if isinstance(event, Progress) and event.done == 3:
            job.close()
    with pytest.raises(TrainingError, match="holds a checkpoint of an earlier run"):
        run_to_end(Trainer.from_scratch(_bone_spec(), [volume], _options(),
                                        checkpoints=RunCheckpoints(folder=folder)).job())
    with pytest.raises(TrainingError, match=r"different run \(it differs in options.learning"):
        run_to_end(Trainer.from_scratch(
            _bone_spec(), [volume], _options(learning_rate=0.01),
            checkpoints=RunCheckpoints(folder=folder, resume=True)).job())
    # a run with nothing to resume from starts at step 1 and says so
    events: list[object] = []
    run_to_end(Trainer.from_scratch(
        _bone_spec(), [volume], _options(steps=2),
        checkpoints=RunCheckpoints(folder=tmp_path / "empty", resume=True)).job(), events.append)
    assert any("starting at step 1" in getattr(e, "message", "") for e in events)


# ---------------------------------------------------------------------- torchrun
def test_two_process_training_killed_resumed_matches_one_process(
        bone, tmp_path, restore_threads) -> None:
    """DDP on 2 CPU processes (gloo): killed after a checkpoint, resumed with --resume, and
    the model is as good as one process's with the same options (same global batch)."""
    single = tmp_path / "single.safetensors"
    assert main([*_train_args(bone, single, "--steps", "25", "--threads", "1"), "--quiet"]) == 0

    out = tmp_path / "ddp.safetensors"
    folder = tmp_path / "ddp.checkpoints"
    args = _train_args(bone, out, "--steps", "25", "--checkpoint-every", "5")
    process = torchrun(args, cwd=tmp_path)
    deadline = time.monotonic() + 240
    while not list(folder.glob("step-*")):
        assert process.poll() is None, "the run ended before its first checkpoint"
        assert time.monotonic() < deadline, "no checkpoint appeared"
        time.sleep(0.02)
    process.send_signal(signal.SIGTERM)  # preempted: torchrun stops both ranks
    _, _, err = _finish(process)
    assert not out.exists(), err[-3000:]
    saved = max(int(p.name.split("-")[1]) for p in folder.glob("step-*"))
    assert 5 <= saved < 25
    state = json.loads((folder / f"step-{saved:06d}" / "state.json").read_text())
    assert len(state["numpy_random"]) == 2  # each rank's own patch stream...
    assert state["numpy_random"][0] != state["numpy_random"][1]  # ...a different one

    code, stdout, err = _finish(torchrun([*args, "--resume"], cwd=tmp_path))
    assert code == 0, err[-3000:]
    assert f"resumed from step {saved} ({folder})" in err
    assert err.count("rank 0 of 2: 1 of the 2 patches") == 1  # rank 1 is quiet
    assert "rank 1 of 2" not in err
    assert stdout.count("wrote ") == 1
    assert not folder.exists()  # removed once the model is saved
    _, spec = load_checkpoint(out)
    assert spec.provenance["processes"] == 2
    assert spec.provenance["steps"] == 25
    dice_single, dice_ddp = _dice(single, bone), _dice(out, bone)
    assert dice_single > 0.6
    assert dice_ddp > 0.6
    assert abs(dice_single - dice_ddp) < 0.15, (dice_single, dice_ddp)


@pytest.mark.parametrize(("phase", "mode", "extra"), [
    (Phase.PLAIN, "train", {"validation": "none"}),
    (Phase.PLAIN, "finetune", {"validation": "none"}),
    (Phase.VALIDATE, "train", {}),
    (Phase.FOLD_IN, "train", {}),
])
def test_a_run_killed_in_any_phase_resumes_to_the_same_result(
        bone, tmp_path, restore_threads, phase, mode, extra) -> None:
    """Killed while in ``phase`` (with a checkpoint every step), resumed: the same steps,
    losses, validations, best step, fold-in, verdict and weights as a run never stopped; the
    saved record is the loop's whole state (``LoopState``), phase included."""
    scan = read_scan(bone / "ct.nii.gz")
    labels = read_label_map(bone / "bone.nii.gz", like=scan)
    labeled = np.zeros(scan.shape, bool)
    labeled[::3] = True  # every third slice annotated: a slice is held back to validate
    volume = LabeledVolume([scan], labels, labeled=labeled)
    options = _options(steps=12, fold_in=0.5, validate_every=2, **extra)

    def trainer(checkpoints: RunCheckpoints | None = None) -> Trainer:
        if mode == "train":
            return Trainer.from_scratch(_bone_spec(), [volume], options, checkpoints=checkpoints)
        torch.manual_seed(0)  # the "starting model" of a fine-tune: the same weights each time
        model = create_model(_bone_spec().architecture, spatial_dims=3, in_channels=1,
                             out_channels=2, **_bone_spec().options)
        return Trainer(model, _bone_spec(), [volume], options, mode="finetune",
                       checkpoints=checkpoints)

    uninterrupted = run_to_end(trainer().job())
    folder = tmp_path / "run.checkpoints"
    first = trainer(RunCheckpoints(folder=folder, every=1))
    job = first.job()
    kill_at = None
    for event in job:
        if isinstance(event, Progress) and event.done > 1 and first.loop.phase is phase:
            kill_at = event.done
            job.close()
    assert kill_at is not None, f"the run never reached {phase}"
    record = json.loads((folder / f"step-{kill_at:06d}" / "state.json").read_text())
    assert record["loop"]["phase"] == phase.value
    assert record["loop"]["step"] == kill_at

    again = trainer(RunCheckpoints(folder=folder, every=1, resume=True))
    resumed = run_to_end(again.job())
    assert resumed.steps_done == uninterrupted.steps_done
    assert resumed.fold_in_step == uninterrupted.fold_in_step
    assert resumed.best_step == uninterrupted.best_step
    assert [(h["loss"], h.get("val_dice")) for h in resumed.history] == [
        (h["loss"], h.get("val_dice")) for h in uninterrupted.history]
    assert resumed.verdict == uninterrupted.verdict
    for key, value in uninterrupted.model.state_dict().items():
        torch.testing.assert_close(resumed.model.state_dict()[key], value, rtol=0, atol=0)
    if uninterrupted.validated_state is not None:
        for key, value in uninterrupted.validated_state.items():
            torch.testing.assert_close(resumed.validated_state[key], value, rtol=0, atol=0)


def test_the_loop_record_round_trips_through_json() -> None:
    loop = LoopState(phase=Phase.FOLD_IN, step=7, end_step=12, best_dice=0.8, best_step=4,
                     bad_validations=1, fold_in_step=6, stopped_early=True,
                     best_per_class={1: 0.8}, initial_fit={1: float("nan")},
                     history=[{"step": 1.0, "loss": 0.5, "val_dice": float("nan")}])
    back = LoopState.from_json(json.loads(json.dumps(loop.to_json())))
    assert back.phase is Phase.FOLD_IN
    assert math.isnan(back.initial_dice)
    assert math.isnan(back.initial_fit[1])
    assert math.isnan(back.history[0]["val_dice"])
    back.initial_fit[1], back.history[0]["val_dice"] = 0.0, 0.0
    loop.initial_fit[1], loop.history[0]["val_dice"] = 0.0, 0.0
    back.initial_dice = loop.initial_dice = 0.0
    assert back == loop

