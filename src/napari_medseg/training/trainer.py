"""The training / fine-tuning loop, as a generator job of typed events.

:class:`Trainer` holds a model, its :class:`~napari_medseg.models.CheckpointSpec`, labeled
volumes and :class:`~napari_medseg.training.options.TrainOptions`.  ``trainer.job()`` yields a
:class:`~napari_medseg.events.Progress` per step (``metrics``: ``loss``, ``lr``, and
``val_dice`` after each validation) and returns a :class:`TrainResult` holding the model with
its *best* weights.  The model is validated before the first step, so a fine-tuned model is
never worse than its parent on the held-back voxels.

Cancel: close the generator (napari's worker does at the next yield); then
``trainer.last_good()`` returns the best weights seen so far (by validation Dice; without
validation, those after the last finite step).  Nothing is written by the loop; saving is
:func:`napari_medseg.training.versioning.save_new_version`.

Under ``torchrun`` (a joined process group, see :mod:`napari_medseg.distributed`) the loop
runs DistributedDataParallel: ``batch_size`` is the global batch, each of N ranks draws
``batch_size / N`` patches per step from its own random streams, losses and validation Dice
are averaged over the ranks so that all take the same decisions, and rank 0 writes the
periodic checkpoints (``checkpoints=RunCheckpoints(...)``, :mod:`.resume`), from which a run
continues after a failure.

Typical use::

    trainer = Trainer.from_checkpoint("brain-tissue-t1", [volume], TrainOptions(steps=100))
    result = run_to_end(trainer.job())
    save_new_version(result, folder=user_models_dir(), name="brain-tissue-t1-ft")
"""

from __future__ import annotations

import copy
import datetime
import math
import time
from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn
from torch.nn.parallel import DistributedDataParallel

from napari_medseg import distributed
from napari_medseg.errors import TrainingError
from napari_medseg.events import Job, Log, ProgressClock
from napari_medseg.inference.catalog import find_checkpoint
from napari_medseg.inference.predictor import resolve_device
from napari_medseg.models import CheckpointSpec, create_model, load_checkpoint
from napari_medseg.training.augment import augment
from napari_medseg.training.freeze import freeze_encoder
from napari_medseg.training.labeled_volume import (
    LabeledVolume,
    hold_out,
    prepare_volume,
)
from napari_medseg.training.losses import MaskedDiceCELoss
from napari_medseg.training.options import TrainOptions
from napari_medseg.training.resume import (
    RandomState,
    RunCheckpoints,
    TrainState,
    check_identity,
    run_identity,
)
from napari_medseg.training.sampling import Batch, PatchSampler, validation_batch, volume_patch

#: Default patch caps on CPU-friendly sizes (voxels).
DEFAULT_PATCH = {2: (128, 128), 3: (64, 64, 64)}
#: Validation patches per volume.
VALIDATION_PATCHES = 4
#: Torch seeds of the ranks of a distributed run are ``seed + rank * RANK_SEED_STRIDE``.
RANK_SEED_STRIDE = 1_000_003


@dataclass
class TrainResult:
    """What a run produced. ``model`` holds the best weights, in eval mode, on the CPU.

    ``history`` has one dict per step (``step``, ``loss``, ``lr``, and ``val_dice`` where
    validated); ``best_val_dice`` is ``nan`` without validation.
    """

    model: nn.Module
    spec: CheckpointSpec
    history: list[dict[str, float]] = field(default_factory=list)
    best_val_dice: float = float("nan")
    initial_val_dice: float = float("nan")
    best_step: int = 0
    steps_done: int = 0
    stopped_early: bool = False
    seconds: float = 0.0


def _patch_size(spec: CheckpointSpec, options: TrainOptions) -> tuple[int, ...]:
    dims = spec.spatial_dims
    if options.patch_size is not None:
        if len(options.patch_size) != dims:
            msg = f"patch_size {options.patch_size} must have {dims} sizes for a {dims}D model"
            raise TrainingError(msg)
        return options.patch_size
    default = DEFAULT_PATCH[dims]
    if spec.patch_size is not None and len(spec.patch_size) == dims:
        return tuple(min(p, d) for p, d in zip(spec.patch_size, default, strict=True))
    return default


def _to_model_space(t: torch.Tensor, spatial_dims: int, slice_axis: int, lead: int
                    ) -> torch.Tensor:
    """Drop the unit slice axis of 2D-model patches (``lead`` = leading non-spatial axes)."""
    return t.squeeze(lead + slice_axis) if spatial_dims == 2 else t


class Trainer:
    """Train or fine-tune ``model`` on labeled volumes; drive it with :meth:`job`."""

    def __init__(self, model: nn.Module, spec: CheckpointSpec, volumes: Sequence[LabeledVolume],
                 options: TrainOptions | None = None, *, mode: str = "finetune",
                 provenance: dict[str, Any] | None = None,
                 validation_volumes: Sequence[LabeledVolume] = (),
                 checkpoints: RunCheckpoints | None = None) -> None:
        self.options = options or TrainOptions()
        self.checkpoints = checkpoints
        self.validation_volumes = list(validation_volumes)
        self.model = model
        self.spec = spec
        self.volumes = list(volumes)
        self.mode = mode
        self.provenance = dict(provenance or {})
        if not self.volumes:
            msg = "no labeled volume given; give at least one scan with labels"
            raise TrainingError(msg)
        self._best_state: dict[str, torch.Tensor] | None = None
        self._best_dice = float("nan")
        self._best_step = 0
        self._initial_dice = float("nan")
        self._history: list[dict[str, float]] = []
        self._steps_done = 0
        self._start = time.perf_counter()

    # ------------------------------------------------------------------ construction
    @classmethod
    def from_checkpoint(cls, checkpoint: str | Path, volumes: Sequence[LabeledVolume],
                        options: TrainOptions | None = None, *,
                        provenance: dict[str, Any] | None = None,
                        validation_volumes: Sequence[LabeledVolume] = ()) -> Trainer:
        """Fine-tune a starter model (by name) or a checkpoint file."""
        path = find_checkpoint(checkpoint)
        model, spec = load_checkpoint(path)
        parent = {"parent": str(checkpoint), "parent_file": path.name,
                  "parent_provenance_date": spec.provenance.get("date", "")}
        return cls(model, spec, volumes, options, mode="finetune",
                   provenance={**parent, **(provenance or {})},
                   validation_volumes=validation_volumes)

    @classmethod
    def from_scratch(cls, spec: CheckpointSpec, volumes: Sequence[LabeledVolume],
                     options: TrainOptions | None = None, *,
                     provenance: dict[str, Any] | None = None,
                     validation_volumes: Sequence[LabeledVolume] = (),
                     checkpoints: RunCheckpoints | None = None) -> Trainer:
        """Train a new network described by ``spec`` (architecture, options, classes...);
        ``checkpoints``: save the run periodically, or resume it (see ``training.resume``)."""
        spec.validate()
        torch.manual_seed((options or TrainOptions()).seed)
        model = create_model(spec.architecture, spatial_dims=spec.spatial_dims,
                             in_channels=spec.in_channels, out_channels=spec.out_channels,
                             **spec.options)
        return cls(model, spec, volumes, options, mode="train", provenance=provenance,
                   validation_volumes=validation_volumes, checkpoints=checkpoints)

    # ------------------------------------------------------------------ results
    def last_good(self) -> TrainResult:
        """The best weights so far (callable at any time, e.g. after a cancel)."""
        model = copy.deepcopy(self.model).to("cpu")
        if self._best_state is not None:
            model.load_state_dict(self._best_state)
        model.eval()
        for p in model.parameters():
            p.requires_grad_(True)
        provenance = {
            **self.spec.provenance,
            **self.provenance,
            "mode": self.mode,
            "steps": self._steps_done,
            "best_step": self._best_step,
            "date": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
            "val_dice": _finite(self._best_dice),
            "initial_val_dice": _finite(self._initial_dice),
            "options": _options_record(self.options),
        }
        spec = replace(self.spec, provenance=provenance)
        return TrainResult(model=model, spec=spec, history=list(self._history),
                           best_val_dice=self._best_dice, initial_val_dice=self._initial_dice,
                           best_step=self._best_step, steps_done=self._steps_done,
                           seconds=time.perf_counter() - self._start)

    # ------------------------------------------------------------------ the job
    def job(self) -> Job[TrainResult]:
        """Run the loop; yields events, returns :class:`TrainResult` (best weights)."""
        o = self.options
        self._start = time.perf_counter()
        if o.threads is not None:
            torch.set_num_threads(o.threads)
        context = distributed.current()  # torchrun: one rank of DistributedDataParallel
        device = distributed.device_for_rank(resolve_device(o.device), context)
        per_rank_batch = _per_rank_batch(o.batch_size, context)
        resumed = self._resume_state()
        rng = np.random.default_rng(o.seed)  # held-out voxels, validation: same on every rank
        generator = torch.Generator().manual_seed(o.seed + RANK_SEED_STRIDE * context.rank)
        yield Log(f"preparing {len(self.volumes)} volume(s)")
        if self.checkpoints is not None and self.checkpoints.resume and resumed is None:
            yield Log(f"no checkpoint in {self.checkpoints.folder} yet: starting at step 1")
        prepared = [prepare_volume(v, self.spec, edited_weight=o.edited_weight,
                                   slice_axis=o.slice_axis) for v in self.volumes]
        checking = [prepare_volume(v, self.spec, edited_weight=1.0, slice_axis=o.slice_axis)
                    for v in self.validation_volumes]
        for v in checking:  # separate validation volumes: every labeled voxel validates
            v.validation = v.weight > 0
        fraction = 0.0 if checking else o.validation_fraction
        n_val = hold_out(prepared, fraction, o.validation_block, rng)
        n_val += sum(int(v.validation.sum()) for v in checking)
        patch = volume_patch(_patch_size(self.spec, o), self.spec.spatial_dims, o.slice_axis)
        try:
            sampler = PatchSampler(prepared, patch, foreground_fraction=o.foreground_fraction,
                                   rng=rng if not context.is_distributed else
                                   np.random.default_rng([o.seed, context.rank]))
        except ValueError:
            msg = "no labeled voxel is left for training; label more voxels or slices"
            raise TrainingError(msg) from None
        val = validation_batch([*prepared, *checking], patch, per_volume=VALIDATION_PATCHES,
                               rng=rng)
        n_train = sum(int((v.train_weight > 0).sum()) for v in prepared)
        yield Log(f"{n_train} labeled voxels for training, {n_val} held back for validation; "
                  f"patch {patch}, device {device}")
        if val is None and o.validation_fraction > 0:
            yield Log("too few labeled voxels to hold some back: no early stopping, "
                      "the last weights are kept", level="warning")
        if context.is_distributed:
            yield Log(f"rank {context.rank} of {context.world_size}: {per_rank_batch} of the "
                      f"{o.batch_size} patches of each step")
        model = self.model.to(device)
        if o.freeze_encoder:
            frozen = freeze_encoder(model)
            yield Log(f"encoder frozen: {len(frozen)} parameter tensors")
        if resumed is not None:
            model.load_state_dict(resumed.model)
        net: nn.Module = model  # what the steps run: the model, or its DDP wrapper
        if context.is_distributed:
            net = DistributedDataParallel(
                model, device_ids=[device.index] if device.type == "cuda" else None)
        parameters = [p for p in model.parameters() if p.requires_grad]
        optimizer = torch.optim.AdamW(parameters, lr=o.learning_rate, weight_decay=o.weight_decay)
        scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, _schedule(o.steps,
                                                                           o.warmup_steps))
        loss_fn = MaskedDiceCELoss(dice_weight=o.dice_weight, ce_weight=o.ce_weight)
        clock = ProgressClock("fine-tune" if self.mode == "finetune" else "train", o.steps)
        bad_validations, first = 0, 1
        if resumed is not None:
            bad_validations, first = resumed.bad_validations, resumed.step + 1
            yield self._restore(resumed, optimizer, scheduler, sampler.rng, generator, context)
            if val is not None and bad_validations >= o.patience:
                result = self.last_good()
                result.stopped_early = True
                return result
        elif val is not None:
            self._initial_dice = distributed.mean_over_ranks(self._validate(model, val, device))
            self._keep(model, self._initial_dice, 0)
            yield clock.event(0, "validated the starting weights",
                              {"val_dice": self._initial_dice})
        for step in range(first, o.steps + 1):
            model.train()
            batch = sampler.batch(per_rank_batch)
            loss = self._step(net, batch, device, optimizer, loss_fn, generator)
            if not math.isfinite(loss):
                msg = (f"the loss became {loss} at step {step}; the learning rate "
                       f"({o.learning_rate}) may be too high or the inputs broken. Nothing was "
                       "saved and the previous model is unchanged; try a lower learning rate")
                raise TrainingError(msg)
            scheduler.step()
            self._steps_done = step
            record = {"step": float(step), "loss": loss, "lr": optimizer.param_groups[0]["lr"]}
            if val is None:
                self._keep(model, float("nan"), step)
            elif step % o.validate_every == 0 or step == o.steps:
                dice = distributed.mean_over_ranks(self._validate(model, val, device))
                record["val_dice"] = dice
                # better only by a margin (noise guard); also true while best is nan
                if not dice <= self._best_dice + o.min_improvement:
                    self._keep(model, dice, step)
                    bad_validations = 0
                else:
                    bad_validations += 1
            self._history.append(record)
            if self.checkpoints is not None and self.checkpoints.due(step, o.steps):
                self._save_state(step, model, optimizer, scheduler, bad_validations,
                                 RandomState(dict(sampler.rng.bit_generator.state),
                                             generator.get_state(), torch.get_rng_state()),
                                 context)
            yield clock.event(step, f"step {step} loss {loss:.4f}",
                              {k: v for k, v in record.items() if k != "step"})
            if val is not None and bad_validations >= o.patience:
                yield Log(f"early stop at step {step}: validation Dice has not improved for "
                          f"{o.patience} validations (best {self._best_dice:.4f} at step "
                          f"{self._best_step})")
                result = self.last_good()
                result.stopped_early = True
                return result
        return self.last_good()

    # ------------------------------------------------------------------ checkpoints
    def _identity(self) -> dict[str, Any]:
        return run_identity(self.spec, self.options, self.provenance)

    def _resume_state(self) -> TrainState | None:
        """The checkpoint to continue from (checked to belong to this run), if resuming."""
        if self.checkpoints is None:
            return None
        if not self.checkpoints.resume:
            self.checkpoints.check_fresh()
            return None
        state = self.checkpoints.load()
        if state is not None:
            check_identity(state.identity, self._identity(), self.checkpoints.folder)
        return state

    def _save_state(self, step: int, model: nn.Module, optimizer: torch.optim.Optimizer,
                    scheduler: torch.optim.lr_scheduler.LRScheduler, bad_validations: int,
                    random: RandomState, context: distributed.Context) -> None:
        """Rank 0 writes the run's state; every rank contributes its random streams."""
        randoms = distributed.gather_objects(random)
        if not context.is_main or self.checkpoints is None:
            return
        self.checkpoints.save(TrainState(
            step=step, model=model.state_dict(), optimizer=optimizer.state_dict(),
            scheduler=scheduler.state_dict(), identity=self._identity(),
            best=self._best_state, best_dice=self._best_dice, best_step=self._best_step,
            initial_dice=self._initial_dice, bad_validations=bad_validations,
            history=self._history, random=randoms))

    def _restore(self, state: TrainState, optimizer: torch.optim.Optimizer,
                 scheduler: torch.optim.lr_scheduler.LRScheduler, sample_rng: np.random.Generator,
                 generator: torch.Generator, context: distributed.Context) -> Log:
        """Put the optimiser, scheduler, random streams and records back as at ``state``."""
        optimizer.load_state_dict(state.optimizer)
        scheduler.load_state_dict(state.scheduler)
        self._best_state, self._best_dice = state.best, state.best_dice
        self._best_step, self._initial_dice = state.best_step, state.initial_dice
        self._history, self._steps_done = list(state.history), state.step
        folder = self.checkpoints.folder if self.checkpoints else "?"
        if context.rank < len(state.random):
            saved = state.random[context.rank]
            sample_rng.bit_generator.state = saved.numpy
            generator.set_state(saved.generator)
            torch.set_rng_state(saved.torch_global)
            return Log(f"resumed from step {state.step} ({folder})")
        # more processes than when saved: this rank's streams start afresh
        seed = self.options.seed
        sample_rng.bit_generator.state = np.random.default_rng(
            [seed, context.rank, state.step]).bit_generator.state
        generator.manual_seed(seed + RANK_SEED_STRIDE * context.rank + state.step)
        return Log(f"resumed from step {state.step} ({folder}); rank {context.rank} had no "
                   "saved random state (more processes than before): its patches are drawn "
                   "afresh", level="warning")

    # ------------------------------------------------------------------ internals
    def _step(self, model: nn.Module, batch: Batch, device: torch.device,
              optimizer: torch.optim.Optimizer, loss_fn: MaskedDiceCELoss,
              generator: torch.Generator) -> float:
        dims, axis = self.spec.spatial_dims, self.options.slice_axis
        image = _to_model_space(torch.from_numpy(batch.image), dims, axis, 2)
        target = _to_model_space(torch.from_numpy(batch.target), dims, axis, 1)
        weight = _to_model_space(torch.from_numpy(batch.weight), dims, axis, 1)
        image, target, weight = augment(image, target, weight, self.options.augment, generator)
        image, target, weight = image.to(device), target.to(device), weight.to(device)
        optimizer.zero_grad(set_to_none=True)
        loss = loss_fn(model(image), target, weight)
        value = distributed.mean_over_ranks(float(loss.detach()))  # all ranks decide alike
        if math.isfinite(value):
            loss.backward()
            optimizer.step()
        return value

    def _validate(self, model: nn.Module, val: Batch, device: torch.device) -> float:
        """Mean foreground Dice over the held-back voxels of the validation patches."""
        dims, axis = self.spec.spatial_dims, self.options.slice_axis
        model.eval()
        image = _to_model_space(torch.from_numpy(val.image), dims, axis, 2)
        with torch.inference_mode():
            pred = torch.cat([model(image[i : i + 2].to(device)).argmax(1).cpu()
                              for i in range(0, image.shape[0], 2)])
        pred_np = pred.numpy().reshape(val.target.shape)
        mask = val.weight > 0
        scores = []
        for k in range(1, self.spec.out_channels):
            p, t = (pred_np == k) & mask, (val.target == k) & mask
            denominator = int(p.sum() + t.sum())
            if denominator:
                scores.append(2.0 * float((p & t).sum()) / denominator)
        return float(np.mean(scores)) if scores else float("nan")

    def _keep(self, model: nn.Module, dice: float, step: int) -> None:
        self._best_state = {k: v.detach().to("cpu").clone() for k, v in
                            model.state_dict().items()}
        self._best_dice = dice
        self._best_step = step


def _per_rank_batch(batch_size: int, context: distributed.Context) -> int:
    """Patches each rank draws per step: the batch is global, shared out over the ranks, so
    N processes run the same optimisation as one process with the same options."""
    world = context.world_size
    if batch_size % world:
        lower = max(world, batch_size // world * world)
        msg = (f"a batch of {batch_size} patches cannot be shared out evenly over {world} "
               f"processes; use a multiple of {world}, e.g. --batch {lower} or "
               f"{lower + world}")
        raise TrainingError(msg)
    return batch_size // world


def _schedule(steps: int, warmup: int) -> Any:
    def factor(step: int) -> float:
        if warmup and step < warmup:
            return (step + 1) / warmup
        progress = (step - warmup) / max(1, steps - warmup)
        return 0.05 + 0.95 * 0.5 * (1 + math.cos(math.pi * min(progress, 1.0)))

    return factor


def _finite(value: float) -> float | None:
    return value if math.isfinite(value) else None


def _options_record(options: TrainOptions) -> dict[str, Any]:
    return {"steps": options.steps, "batch_size": options.batch_size,
            "patch_size": list(options.patch_size) if options.patch_size else None,
            "learning_rate": options.learning_rate, "freeze_encoder": options.freeze_encoder,
            "edited_weight": options.edited_weight, "seed": options.seed}
