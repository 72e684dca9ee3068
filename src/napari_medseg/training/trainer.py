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
import numpy.typing as npt
import torch
from torch import nn
from torch.nn.parallel import DistributedDataParallel

from napari_medseg import distributed
from napari_medseg.errors import TrainingError
from napari_medseg.events import Job, Log, ProgressClock, Stage
from napari_medseg.inference.catalog import find_checkpoint
from napari_medseg.inference.combine import held_back_dice
from napari_medseg.models import CheckpointSpec, create_model, load_checkpoint
from napari_medseg.models.device import resolve_device
from napari_medseg.training.annotation import (
    ValidationPlan,
    describe_annotation,
    plan_validation,
)
from napari_medseg.training.augment import augment
from napari_medseg.training.freeze import freeze_encoder
from napari_medseg.training.labeled_volume import (
    LabeledVolume,
    PreparedVolume,
    hold_out,
    prepare_volume,
)
from napari_medseg.training.loop_state import LoopState, Phase
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
#: Validation windows per volume (they cover the held-back voxels up to this many).
VALIDATION_WINDOWS = 24
#: From scratch, a class whose Dice on its own annotated voxels stays below this is not learned.
MIN_FIT_DICE = 0.5
#: From scratch, a best held-back Dice below this means the model learned nothing useful.
MIN_HELD_BACK_DICE = 0.1
#: Torch seeds of the ranks of a distributed run are ``seed + rank * RANK_SEED_STRIDE``.
RANK_SEED_STRIDE = 1_000_003


@dataclass
class Verdict:
    """Whether a run learned something, measured, in words a person reads.

    ``learned``: the model is worth keeping (from scratch: it fits its own annotation and,
    where something was held back, scores on it; fine-tune: it beat its parent on the held-back
    voxels by ``min_improvement``).  ``fit_dice`` / ``held_back_dice`` map each foreground
    class to its Dice on the training voxels / on the held-back voxels; ``reasons`` say what
    failed (empty when ``learned``).
    """

    learned: bool
    fit_dice: dict[int, float] = field(default_factory=dict)
    held_back_dice: dict[int, float] = field(default_factory=dict)
    reasons: list[str] = field(default_factory=list)

    def summary(self, names: dict[int, str] | None = None) -> str:
        names = names or {}
        if self.learned:
            parts = ", ".join(f"{names.get(c, c)} {d:.2f}" for c, d in
                              (self.held_back_dice or self.fit_dice).items())
            where = "held-back" if self.held_back_dice else "annotated"
            return f"learned: Dice on the {where} voxels {parts}" if parts else "learned"
        return "learned nothing: " + "; ".join(self.reasons)


@dataclass
class TrainResult:
    """What a run produced. ``model`` holds the final weights, in eval mode, on the CPU.

    ``history`` has one dict per step (``step``, ``loss``, ``lr``, and ``val_dice`` where
    validated); ``best_val_dice`` is ``nan`` without validation.  ``validated_state`` holds the
    weights that were best on the held-back voxels *before* they were given back to training
    (``fold_in``), so the caller can measure other choices (how to combine the network with the
    annotation) on voxels that model has not seen; ``None`` without validation.  ``plans`` are
    the validation plans of the training volumes (``None`` for a volume with none).
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
    fold_in_step: int = 0
    validated_state: dict[str, torch.Tensor] | None = None
    plans: list[ValidationPlan | None] = field(default_factory=list)
    verdict: Verdict | None = None

    @property
    def improved(self) -> bool:
        """A validated gain over the starting weights (always true without validation)."""
        return self.best_step != 0 or not math.isfinite(self.best_val_dice)


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
    """2D-model patches as the model takes them: the slice axis of a target (``lead`` = 1)
    dropped; for an image (``lead`` = 2, ``(B, C, Z, Y, X)``) its ``2k + 1`` slices folded into
    the channels (each channel's slices ``-k..k`` in a row, as inference stacks them)."""
    if spatial_dims != 2:
        return t
    if lead == 1:
        return t.squeeze(lead + slice_axis)
    moved = t.movedim(2 + slice_axis, 2)  # (B, C, S, a, b)
    return moved.reshape(moved.shape[0], moved.shape[1] * moved.shape[2], *moved.shape[3:])


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
        #: the loop's record: phase, steps, best Dice, history... (saved and resumed whole)
        self.loop = LoopState()
        self._best_state: dict[str, torch.Tensor] | None = None
        self._validated_state: dict[str, torch.Tensor] | None = None
        self._plans: list[ValidationPlan | None] = []
        self._final: dict[str, torch.Tensor] | None = None
        self._verdict: Verdict | None = None
        self._start = time.perf_counter()

    @property
    def stopped_early(self) -> bool:
        return self.loop.stopped_early

    @property
    def slice_axis(self) -> int:
        """The axis 2D patches are cut across: the checkpoint's, else the options'."""
        return self.spec.slice_axis if self.spec.slice_axis is not None else (
            self.options.slice_axis)

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
        """The final weights of a finished run, else the best validated so far (callable at
        any time, e.g. after a cancel)."""
        model = copy.deepcopy(self.model).to("cpu")
        state = self._final if self._final is not None else self._best_state
        if state is not None:
            model.load_state_dict(state)
        model.eval()
        for p in model.parameters():
            p.requires_grad_(True)
        verdict = self._verdict
        provenance = {
            **self.spec.provenance,
            **self.provenance,
            "mode": self.mode,
            "steps": self.loop.step,
            "best_step": self.loop.best_step,
            "fold_in_step": self.loop.fold_in_step,
            "date": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
            "val_dice": _finite(self.loop.best_dice),
            "initial_val_dice": _finite(self.loop.initial_dice),
            "validation": [p.reason if p is not None else "none" for p in self._plans],
            "options": _options_record(self.options),
        }
        if verdict is not None:
            provenance["held_back_dice"] = {str(k): v for k, v in verdict.held_back_dice.items()}
            provenance["fit_dice"] = {str(k): v for k, v in verdict.fit_dice.items()}
        spec = replace(self.spec, provenance=provenance)
        return TrainResult(model=model, spec=spec, history=list(self.loop.history),
                           best_val_dice=self.loop.best_dice,
                           initial_val_dice=self.loop.initial_dice,
                           best_step=self.loop.best_step, steps_done=self.loop.step,
                           seconds=time.perf_counter() - self._start,
                           fold_in_step=self.loop.fold_in_step,
                           validated_state=self._validated_state, plans=list(self._plans),
                           verdict=verdict)

    # ------------------------------------------------------------------ the job
    def _held_back(self, volume: LabeledVolume) -> ValidationPlan | None:
        """The validation plan of one training volume (``"auto"`` validation)."""
        labeled = volume.labeled_mask()
        axis = self.slice_axis if self.spec.spatial_dims == 2 else None
        layout = describe_annotation(labeled, volume.labels.array, axis=axis)
        plan = plan_validation(layout, labeled, volume.labels.array)
        return plan if plan.kind != "none" else None

    def _prepare(self, rng: np.random.Generator) -> tuple[list[PreparedVolume],
                                                          list[PreparedVolume], int]:
        o = self.options
        axis = self.slice_axis
        checking = [prepare_volume(v, self.spec, edited_weight=1.0, slice_axis=axis)
                    for v in self.validation_volumes]
        for v in checking:  # separate validation volumes: every labeled voxel validates
            v.validation = v.weight > 0
        validate_here = not checking and o.validation_fraction > 0 and o.validation != "none"
        self._plans = [self._held_back(v) if validate_here and o.validation == "auto" else None
                       for v in self.volumes]
        prepared = [prepare_volume(v, self.spec, edited_weight=o.edited_weight, slice_axis=axis,
                                   held_back=plan.mask if plan is not None else None)
                    for v, plan in zip(self.volumes, self._plans, strict=True)]
        n_val = sum(int(v.validation.sum()) for v in prepared)
        if validate_here and o.validation == "blocks":
            n_val = hold_out(prepared, o.validation_fraction, o.validation_block, rng)
        n_val += sum(int(v.validation.sum()) for v in checking)
        return prepared, checking, n_val

    def job(self) -> Job[TrainResult]:
        """Run the loop; yields events, returns :class:`TrainResult`.

        With held-back voxels the run has two parts: steps ``1..`` train on the rest and keep
        the weights best on the held-back voxels (early stopping after ``patience`` validations
        without a gain of ``min_improvement``); then, with ``fold_in`` > 0 and a validated gain,
        the last ``fold_in`` share of the steps continues from those weights with every labeled
        voxel.  The result carries a :class:`Verdict`.
        """
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
        prepared, checking, n_val = self._prepare(rng)
        for plan in self._plans:
            if plan is not None:
                yield Log(f"validation: {plan.reason}")
        context_k = self.spec.context_slices if self.spec.spatial_dims == 2 else 0
        axis = self.slice_axis
        patch = volume_patch(_patch_size(self.spec, o), self.spec.spatial_dims, axis)
        sampler_rng = (rng if not context.is_distributed
                       else np.random.default_rng([o.seed, context.rank]))

        def sampler_for(volumes: list[PreparedVolume]) -> PatchSampler:
            try:
                return PatchSampler(volumes, patch, foreground_fraction=o.foreground_fraction,
                                    rng=sampler_rng, context=context_k, slice_axis=axis)
            except ValueError:
                msg = "no labeled voxel is left for training; label more voxels or slices"
                raise TrainingError(msg) from None

        sampler = sampler_for(prepared)
        val = validation_batch([*prepared, *checking], patch, per_volume=VALIDATION_WINDOWS,
                               rng=rng, context=context_k, slice_axis=axis)
        n_train = sum(int((v.train_weight > 0).sum()) for v in prepared)
        yield Log(f"{n_train} labeled voxels for training, {n_val} held back for validation; "
                  f"patch {patch}{f' with {context_k} context slice(s)' if context_k else ''}, "
                  f"device {device}")
        if val is None and o.validation_fraction > 0 and o.validation != "none":
            yield Log("too few labeled voxels to hold some back: the run cannot measure itself "
                      "on unseen voxels; it is judged on how well it fits its own annotation",
                      level="warning")
        for plan in self._plans:
            if plan is not None and plan.unmeasured:
                names = ", ".join(self.spec.class_names.get(c, str(c)) for c in
                                  sorted(plan.unmeasured))
                yield Log(f"class(es) {names} cannot be held back (too few annotated voxels "
                          "or slices): they are trained but not measured", level="warning")
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
        fold_steps = round(o.fold_in * o.steps) if val is not None and not checking else 0
        validated_steps = o.steps - fold_steps
        scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, _schedule(validated_steps,
                                                                           o.warmup_steps))
        loss_fn = MaskedDiceCELoss(dice_weight=o.dice_weight, ce_weight=o.ce_weight)
        clock = ProgressClock(Stage.FINETUNE if self.mode == "finetune" else Stage.TRAIN,
                              o.steps)
        deadline = (self._start + o.time_limit_s) if o.time_limit_s is not None else None
        loop = self.loop
        first_step = (resumed.step if resumed is not None else 0) + 1
        if resumed is not None:
            self.loop = loop = resumed.loop
            if loop.phase is Phase.FOLD_IN:
                # the fold-in trains on every voxel from the best validated weights
                sampler = sampler_for(_given_back(prepared))
                scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer,
                                                              _fold_schedule(fold_steps))
                self._validated_state = resumed.best
            yield self._restore(resumed, optimizer, scheduler, sampler.rng, generator, context)
        else:
            loop.phase = Phase.VALIDATE if val is not None else Phase.PLAIN
            loop.end_step = o.steps
            if loop.phase is Phase.PLAIN:
                loop.initial_fit = self._fit(model, prepared, device)
            if val is not None:
                loop.initial_dice, loop.best_per_class = self._validate(model, val, device)
                loop.initial_dice = distributed.mean_over_ranks(loop.initial_dice)
                if self.mode == "finetune":  # the parent is a candidate; random weights are not
                    self._keep(model, loop.initial_dice, 0)
                yield clock.event(0, "validated the starting weights",
                                  {"val_dice": loop.initial_dice})
        while loop.step < loop.end_step:
            step = loop.step = loop.step + 1
            model.train()
            loss = self._step(net, sampler.batch(per_rank_batch), device, optimizer, loss_fn,
                              generator)
            if not math.isfinite(loss):
                msg = (f"the loss became {loss} at step {step}; the learning rate "
                       f"({o.learning_rate}) may be too high or the inputs broken. Nothing was "
                       "saved and the previous model is unchanged; try a lower learning rate")
                raise TrainingError(msg)
            scheduler.step()
            record = {"step": float(step), "loss": loss, "lr": optimizer.param_groups[0]["lr"]}
            if loop.phase is Phase.PLAIN:
                self._keep(model, float("nan"), step)
            elif loop.phase is Phase.VALIDATE and (step % o.validate_every == 0
                                                   or step >= validated_steps):
                dice, per_class = self._validate(model, val, device)  # type: ignore[arg-type]
                dice = distributed.mean_over_ranks(dice)
                record["val_dice"] = dice
                # better only by a margin (noise guard); also true while best is nan
                if not dice <= loop.best_dice + o.min_improvement:
                    self._keep(model, dice, step)
                    loop.best_per_class = per_class
                    loop.bad_validations = 0
                else:
                    loop.bad_validations += 1
            loop.history.append(record)
            if self.checkpoints is not None and self.checkpoints.due(step, o.steps):
                self._save_state(model, optimizer, scheduler,
                                 RandomState(dict(sampler.rng.bit_generator.state),
                                             generator.get_state(), torch.get_rng_state()),
                                 context)
            folding = loop.phase is Phase.FOLD_IN
            shown = {k: v for k, v in record.items() if k != "step"}
            # from the fold-in on, the held-back voxels train too
            yield clock.event(step, f"step {step} loss {loss:.4f}"
                              f"{' (all annotations)' if folding else ''}", shown,
                              fold_in=folding)
            late = deadline is not None and time.perf_counter() > deadline
            if loop.phase is not Phase.VALIDATE:
                if late:
                    yield Log(f"time limit reached at step {step}", level="warning")
                    break
                continue
            patience_out = loop.bad_validations >= o.patience
            if not (patience_out or late or step >= validated_steps):
                continue
            why = (f"validation Dice has not improved for {o.patience} validations"
                   if patience_out else "time limit reached" if late else "validated part done")
            yield Log(f"{why} at step {step} (best {loop.best_dice:.4f} at step "
                      f"{loop.best_step})")
            loop.stopped_early = patience_out or late
            no_gain = self.mode == "finetune" and loop.best_step == 0
            if fold_steps == 0 or self._best_state is None or no_gain:
                break
            # give the held-back voxels back to training, from the best validated weights
            self._validated_state = dict(self._best_state)
            model.load_state_dict(self._best_state)
            loop.phase, loop.fold_in_step = Phase.FOLD_IN, step + 1
            loop.end_step = step + fold_steps
            scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, _fold_schedule(fold_steps))
            sampler = sampler_for(_given_back(prepared))
            if deadline is not None:  # the fold-in keeps its share of the time
                per_step = (time.perf_counter() - self._start) / max(step - first_step + 1, 1)
                deadline = time.perf_counter() + 1.5 * per_step * fold_steps
            yield Log(f"steps {step + 1}-{loop.end_step}: every annotated voxel trains (the "
                      "held-back ones too), from the best validated weights")
        if loop.phase is not Phase.VALIDATE:
            self._final = _state_of(model)
        if self._validated_state is None and loop.phase is Phase.VALIDATE:
            self._validated_state = self._best_state
        final = copy.deepcopy(model)
        if self._final is None and self._best_state is not None:
            final.load_state_dict(self._best_state)
        self._verdict = self._judge(final, prepared, device)
        result = self.last_good()
        result.stopped_early = self.stopped_early
        return result

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

    def _save_state(self, model: nn.Module, optimizer: torch.optim.Optimizer,
                    scheduler: torch.optim.lr_scheduler.LRScheduler,
                    random: RandomState, context: distributed.Context) -> None:
        """Rank 0 writes the run's state; every rank contributes its random streams."""
        randoms = distributed.gather_objects(random)
        if not context.is_main or self.checkpoints is None:
            return
        self.checkpoints.save(TrainState(
            loop=self.loop, model=model.state_dict(), optimizer=optimizer.state_dict(),
            scheduler=scheduler.state_dict(), identity=self._identity(),
            best=self._best_state, random=randoms))

    def _restore(self, state: TrainState, optimizer: torch.optim.Optimizer,
                 scheduler: torch.optim.lr_scheduler.LRScheduler, sample_rng: np.random.Generator,
                 generator: torch.Generator, context: distributed.Context) -> Log:
        """Put the optimiser, scheduler, best weights and random streams back as at ``state``
        (the loop's record is ``state.loop`` itself)."""
        optimizer.load_state_dict(state.optimizer)
        scheduler.load_state_dict(state.scheduler)
        self._best_state = state.best
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
        dims, axis = self.spec.spatial_dims, self.slice_axis
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

    def _labels_of(self, model: nn.Module, batch: Batch, device: torch.device
                   ) -> npt.NDArray[np.int64]:
        """The model's argmax over ``batch``'s windows, shaped like ``batch.target``."""
        dims, axis = self.spec.spatial_dims, self.slice_axis
        model.eval()
        image = _to_model_space(torch.from_numpy(batch.image), dims, axis, 2)
        with torch.inference_mode():
            pred = torch.cat([model(image[i : i + 2].to(device)).argmax(1).cpu()
                              for i in range(0, image.shape[0], 2)])
        return pred.numpy().reshape(batch.target.shape)

    def _validate(self, model: nn.Module, val: Batch, device: torch.device
                  ) -> tuple[float, dict[int, float]]:
        """Mean and per-class Dice on the held-back voxels of the validation windows, over
        the foreground classes present there in the truth or the prediction (a class
        predicted where there is none scores 0: a model that labels everything fails)."""
        return held_back_dice(self._labels_of(model, val, device), val.target, val.weight > 0)

    def _fit(self, model: nn.Module, prepared: Sequence[PreparedVolume], device: torch.device
             ) -> dict[int, float]:
        """Per-class Dice of ``model`` on (windows around) the voxels it trains on."""
        fit = validation_batch(_given_back(prepared, as_validation=True),
                               volume_patch(_patch_size(self.spec, self.options),
                                            self.spec.spatial_dims, self.slice_axis),
                               per_volume=VALIDATION_WINDOWS,
                               rng=np.random.default_rng(self.options.seed + 1),
                               context=self.spec.context_slices if self.spec.spatial_dims == 2
                               else 0, slice_axis=self.slice_axis)
        if fit is None:
            return {}
        return held_back_dice(self._labels_of(model, fit, device), fit.target, fit.weight > 0)[1]

    def _judge(self, model: nn.Module, prepared: Sequence[PreparedVolume],
               device: torch.device) -> Verdict:
        """Whether the result learned something (see :class:`Verdict`)."""
        o = self.options
        fit = self._fit(model, prepared, device)
        held = dict(self.loop.best_per_class)
        names = self.spec.class_names
        reasons: list[str] = []
        validated = math.isfinite(self.loop.best_dice)
        if self.mode == "finetune":
            if validated:
                learned = self.loop.best_step > 0
                if not learned:
                    reasons.append(
                        f"the held-back voxels did not improve by {o.min_improvement} over the "
                        f"starting weights (Dice {self.loop.initial_dice:.3f}) in "
                        f"{self.loop.step} steps; the starting model is kept")
            else:
                before = float(np.mean(list(self.loop.initial_fit.values()))) if (
                    self.loop.initial_fit) else float("nan")
                after = float(np.mean(list(fit.values()))) if fit else float("nan")
                learned = not (math.isfinite(before) and math.isfinite(after)
                               and after <= before + o.min_improvement)
                if not learned:
                    reasons.append(f"the annotated voxels did not improve (Dice {before:.3f} -> "
                                   f"{after:.3f}); the starting model is kept")
            return Verdict(learned=learned, fit_dice=fit, held_back_dice=held, reasons=reasons)
        unfit = [c for c, d in fit.items() if d < MIN_FIT_DICE]
        if fit and len(unfit) == len(fit):
            shown = ", ".join(f"{names.get(c, c)} {fit[c]:.2f}" for c in unfit)
            reasons.append(f"it does not reproduce its own annotation (Dice {shown} on the "
                           f"annotated voxels, below {MIN_FIT_DICE}); label more, check that the "
                           "labels match the scan, or give it more time")
        if validated and self.loop.best_dice < MIN_HELD_BACK_DICE:
            reasons.append(f"on the held-back voxels it scores Dice {self.loop.best_dice:.3f} at "
                           f"best (below {MIN_HELD_BACK_DICE}): it has not learned what to find")
        return Verdict(learned=not reasons, fit_dice=fit, held_back_dice=held, reasons=reasons)

    def _keep(self, model: nn.Module, dice: float, step: int) -> None:
        self._best_state = _state_of(model)
        self.loop.best_dice = dice
        self.loop.best_step = step


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


def _fold_schedule(steps: int) -> Any:
    """The fold-in's learning-rate factor: a cosine from 0.3 to 0.02 of the peak over
    ``steps`` (it continues from trained weights: no warm-up, no large steps)."""
    def factor(step: int) -> float:
        progress = min(step / max(1, steps), 1.0)
        return 0.02 + 0.28 * 0.5 * (1 + math.cos(math.pi * progress))

    return factor


def _given_back(volumes: Sequence[PreparedVolume], *, as_validation: bool = False
                ) -> list[PreparedVolume]:
    """The volumes with their held-back voxels given back to training (``as_validation``:
    with every labeled voxel marked as validation, to score a model on what it trained on)."""
    return [replace(v, validation=(v.weight > 0) if as_validation else
                    np.zeros_like(v.validation)) for v in volumes]


def _state_of(model: nn.Module) -> dict[str, torch.Tensor]:
    return {k: v.detach().to("cpu").clone() for k, v in model.state_dict().items()}


def _finite(value: float) -> float | None:
    return value if math.isfinite(value) else None


def _options_record(options: TrainOptions) -> dict[str, Any]:
    return {"steps": options.steps, "batch_size": options.batch_size,
            "patch_size": list(options.patch_size) if options.patch_size else None,
            "learning_rate": options.learning_rate, "freeze_encoder": options.freeze_encoder,
            "edited_weight": options.edited_weight, "seed": options.seed}
