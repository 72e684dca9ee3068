"""The train verb as one core job: labeled scans in, a measured model and the scan's mask out.

``napari-medseg train``, ``napari-medseg finetune``, the Train tab and the Correct tab all run
:func:`train_job`; they only turn files or layers into :class:`LabeledVolume` objects and
:class:`~napari_medseg.training.plan.LearnOptions`, and the :class:`LearnResult` into files or
layers.  In order:

1. **plan** (:mod:`.plan`): the network, contract, patch, batch and width, and the steps that
   fit the budget, from a few steps measured on this machine;
2. **train** (:class:`.Trainer`): on the annotated voxels, holding back a slice (or regions)
   to measure the run, then giving it back to training (``fold_in``);
3. **judge**: a run that learned nothing (from scratch: it does not reproduce its own
   annotation, or scores nothing on what was held back; fine-tune: no validated gain over the
   starting model) is never saved - from scratch it is an error saying why, a fine-tune keeps
   its parent and says so;
4. **segment the scan** (the first volume): the network's labels combined with the annotation
   by the rule that scored best on the held-back voxels (:mod:`.combine`), checked for the
   "one class everywhere" failure, with the slices to correct next (:mod:`.suggest`);
5. **save** the model as a new version (never over a file), its provenance holding the plan,
   the held-back scores and the rule.

>>> result = run_to_end(train_job([volume], LearnOptions(budget_s=120)))
>>> result.model_path, result.mask, result.summary()
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import numpy as np
import torch

from napari_medseg.errors import TrainingError
from napari_medseg.events import Job, Log, PlanReady, Progress, Stage
from napari_medseg.inference.catalog import find_checkpoint
from napari_medseg.inference.combine import (
    DESCRIPTIONS,
    Annotation,
    RuleChoice,
    build_mask,
    choose_rule,
    unsure_slices,
)
from napari_medseg.inference.extent import Cut
from napari_medseg.inference.fit import describe_training_data
from napari_medseg.inference.options import PredictOptions
from napari_medseg.inference.predictor import Predictor
from napari_medseg.interactive.slices import AnnotationMask
from napari_medseg.models import CheckpointSpec, load_checkpoint
from napari_medseg.models.scan_annotation import ScanAnnotation
from napari_medseg.provenance import content_hash
from napari_medseg.scan import LabelMap
from napari_medseg.training.annotation import ValidationPlan, describe_annotation
from napari_medseg.training.labeled_volume import LabeledVolume
from napari_medseg.training.plan import LearnOptions, TrainingPlan, plan_training
from napari_medseg.training.resume import RunCheckpoints
from napari_medseg.training.suggest import SliceSuggestion, rank_slices
from napari_medseg.training.trainer import MIN_HELD_BACK_DICE, Trainer, TrainResult, Verdict
from napari_medseg.training.versioning import save_new_version

#: A foreground class labeling more than this share of the scan (while the annotation gives it
#: less than half that) is the "whole scan is one class" failure: such a model is refused.
EVERYWHERE = 0.6
#: Probabilities are kept for the slice ranking up to this many values (classes x voxels).
MAX_PROBABILITY_VALUES = 200_000_000


@dataclass(kw_only=True)
class SaveTarget:
    """Where a trained model goes: exactly ``path`` (refused if it exists), else the next
    free ``<name>-v<N>.safetensors`` in ``folder`` (default: the user models folder)."""

    path: Path | None = None
    folder: Path | None = None
    name: str | None = None


@dataclass
class LearnResult:
    """What a train job produced.

    ``model_path`` is ``None`` when nothing was saved (a fine-tune that did not beat its
    parent, or no :class:`SaveTarget`); ``mask`` is the whole-volume mask of the first scan
    (``None`` when not asked or not learned), ``network`` the network's own labels there;
    ``rule`` how they were combined, with every rule's held-back score; ``suggestions`` the
    slices to correct next.
    """

    model_path: Path | None
    spec: CheckpointSpec
    train: TrainResult
    plan: TrainingPlan
    verdict: Verdict
    kept_parent: bool = False
    mask: LabelMap | None = None
    network: LabelMap | None = None
    rule: RuleChoice | None = None
    suggestions: list[SliceSuggestion] = field(default_factory=list)
    heldout_scores: list[dict[str, Any]] = field(default_factory=list)
    seconds: float = 0.0
    annotation: AnnotationMask | None = None  # the mask of the annotation alone (no model)
    beyond: str = ""  # where the mask reaches past the painted slices, in words
    #: unpainted slices between the painted ones where the network and interpolation disagree
    unsure: tuple[int, ...] = ()
    #: what was stopped past the end painted slices (a strand leaving the object), largest
    #: first
    stopped: tuple[Cut, ...] = ()

    @property
    def learned(self) -> bool:
        return self.verdict.learned

    def summary(self) -> str:
        """One or two lines for the status line and the terminal."""
        names = dict(self.spec.class_names)
        if self.annotation is not None:
            return (f"the network learned nothing ({'; '.join(self.verdict.reasons)}), so no "
                    f"model was saved. Your mask: {self.annotation.describe()}")
        if self.kept_parent:
            return f"kept the starting model: {'; '.join(self.verdict.reasons)}"
        parts = []
        scores = self.rule.scores if self.rule is not None else {}
        interp = scores.get("interpolation")
        chosen = scores.get(self.rule.rule) if self.rule is not None else None
        if (interp is not None and chosen is not None and np.isfinite(interp)
                and np.isfinite(chosen)):
            learned = ", ".join(str(n) for v, n in sorted(names.items()) if v)
            parts.append(f"learned {learned}: the mask agrees with your held-back slice at "
                         f"{chosen:.2f} Dice (shape interpolation alone: {interp:.2f})")
        else:
            parts.append(self.verdict.summary(names))
        if self.rule is not None:
            parts.append(f"mask: {DESCRIPTIONS[self.rule.rule]}")
        parts.extend(cut.describe(names) for cut in self.stopped[:2])
        if self.beyond:
            parts.append(self.beyond)
        if (self.stopped or self.beyond) and self.suggestions:
            parts.append(f"look at slice {self.suggestions[0].index} first")
        if self.unsure:
            parts.append(f"check {_slice_list(self.unsure)}: the network and the interpolation "
                         "between your slices disagree there")
        if self.model_path is not None:
            parts.append(f"saved {self.model_path.name}")
        return "; ".join(parts)


def _held_back_annotation(volume: LabeledVolume, plan: ValidationPlan | None,
                          layout_axis: int | None, slices: Sequence[int]) -> Annotation:
    labeled = volume.labeled_mask()
    held = plan.mask if plan is not None else np.zeros(labeled.shape, dtype=bool)
    kept = [s for s in slices if plan is None or s not in plan.slices]
    return Annotation(labels=volume.labels.array, labeled=labeled & ~held, axis=layout_axis,
                      slices=tuple(kept), spacing=volume.grid.geometry.spacing)


def _predict(model: torch.nn.Module, spec: CheckpointSpec, volume: LabeledVolume,
             plan: TrainingPlan, *, probabilities: bool, stage: str) -> Job[Any]:
    predictor = Predictor(model, spec, device=plan.device)
    window = spec.patch_size if spec.spatial_dims == 2 else None
    options = PredictOptions(device=plan.device, tile=window, overlap=0.25 if window else 0.5,
                             keep_probabilities=probabilities)
    prediction = None
    job = predictor.predict_job(volume.scans, options)
    while True:
        try:
            event = next(job)
        except StopIteration as stop:
            prediction = stop.value
            break
        if isinstance(event, Progress):
            yield replace(event, stage=stage)
        else:
            yield event
    return prediction


def _check_not_everywhere(mask: np.ndarray, volume: LabeledVolume, names: dict[int, str]
                          ) -> None:
    """Refuse a mask where one foreground class covers most of the scan though the annotation
    gives it much less (the failure of a network that learned nothing)."""
    labeled = volume.labeled_mask()
    counts = np.bincount(mask.ravel().astype(np.int64))
    total = mask.size
    for c in range(1, counts.size):
        share = counts[c] / total
        annotated = (volume.labels.array[labeled] == c).mean() if labeled.any() else 0.0
        if share > EVERYWHERE and annotated < share / 2:
            msg = (f"the trained model labels {share:.0%} of the scan as "
                   f"{names.get(c, f'class {c}')!r} while your annotation gives it "
                   f"{annotated:.0%} of the annotated voxels: it has not learned the structure, "
                   "so nothing was saved; annotate more slices (or check the labels match the "
                   "scan) and train again")
            raise TrainingError(msg)


def _slice_list(slices: Sequence[int]) -> str:
    """``slice 7``, ``slices 7, 9`` or ``slices 7-9``."""
    ordered = sorted(slices)
    if len(ordered) == 1:
        return f"slice {ordered[0]}"
    if ordered == list(range(ordered[0], ordered[-1] + 1)):
        return f"slices {ordered[0]}-{ordered[-1]}"
    return "slices " + ", ".join(str(s) for s in ordered)


#: Slices past the painted range the mask may reach before the status says so: none - a
#: slice the person did not paint past their last one is where nothing checks the mask (a
#: 99-voxel blob on the slice before a lesion's first painted slice went unsaid with 1).
PAST_SLICES = 0


def past_annotation(labels: np.ndarray, axis: int, slices: Sequence[int]
                    ) -> tuple[str, int | None]:
    """Where the mask reaches past the first and last painted slice (more than
    :data:`PAST_SLICES`), in words, and the first such slice to check (``None``: it stays)."""
    along = np.nonzero((labels > 0).any(axis=tuple(a for a in range(labels.ndim)
                                                    if a != axis)))[0]
    if along.size == 0:
        return "", None
    low, high = min(slices), max(slices)
    below = along[along < low - PAST_SLICES]
    above = along[along > high + PAST_SLICES]
    parts = []
    if above.size:
        span = _slice_list(range(int(above.min()), int(above.max()) + 1))
        parts.append(f"{int(above.max()) - high} slice(s) past your last painted slice ({span})")
    if below.size:
        span = _slice_list(range(int(below.min()), int(below.max()) + 1))
        parts.append(f"{low - int(below.min())} slice(s) before your first painted slice "
                     f"({span})")
    if not parts:
        return "", None
    first = int(above.min()) if above.size else int(below.max())
    return ("the mask reaches " + " and ".join(parts) + ": nothing you painted checks it "
            "there"), first


def _annotation_mask(volume: LabeledVolume, names: dict[int, str]
                     ) -> tuple[AnnotationMask, LabelMap] | None:
    """The best mask the annotation alone gives (painted slices grown by the interactive
    engine, or interpolated), when it has whole painted slices; else ``None``."""
    from napari_medseg.interactive.slices import best_annotation_mask

    labeled = volume.labeled_mask()
    layout = describe_annotation(labeled, volume.labels.array)
    if layout.axis is None or layout.dense or not layout.slices:
        return None
    best = best_annotation_mask(volume.scans[0], volume.labels.array, labeled, layout.slices,
                                layout.axis)
    mask = LabelMap(array=best.labels.astype(volume.labels.array.dtype),
                    geometry=volume.grid.geometry, class_names=names)
    return best, mask


def save_cancelled(trainer: Trainer, save: SaveTarget) -> Path | None:
    """After a Cancel: save the best *validated* weights so far when they are worth keeping
    (from scratch: a held-back Dice of at least ``MIN_HELD_BACK_DICE``; a fine-tune: a
    validated gain over its parent), else nothing; returns the new file or ``None``."""
    result = trainer.last_good()
    measured = np.isfinite(result.best_val_dice)
    if trainer.mode == "finetune":
        keep = measured and result.best_step > 0
    else:
        keep = measured and result.best_step > 0 and result.best_val_dice >= MIN_HELD_BACK_DICE
    if not keep:
        return None
    return save_new_version(result, path=save.path, folder=save.folder,
                            name=save.name or result.spec.architecture)


def train_job(volumes: Sequence[LabeledVolume], options: LearnOptions | None = None, *,
              start_from: str | Path | None = None, save: SaveTarget | None = None,
              segment: bool = True, class_names: dict[int, str] | None = None,
              provenance: dict[str, Any] | None = None,
              validation_volumes: Sequence[LabeledVolume] = (),
              checkpoints: RunCheckpoints | None = None,
              n_classes: int | None = None,
              on_trainer: Callable[[Trainer], None] | None = None) -> Job[LearnResult]:
    """Plan, train, judge, segment the first scan and save (see the module docstring).

    ``start_from``: a checkpoint (file or starter name) to fine-tune / continue from;
    ``save``: where the model goes (``None``: not saved); ``segment``: build the first
    scan's mask; ``provenance``: extra records for the checkpoint (command, data hashes);
    ``validation_volumes``: other labeled scans to measure the run on (instead of held-back
    voxels), scored at the end (``heldout_scores``, also in the provenance); ``checkpoints``:
    save the run's state periodically / resume it; ``n_classes``: classes of a new model
    (default: the largest labeled value + 1); ``on_trainer`` is called with the trainer as it
    starts (a GUI keeps it to save the best weights after a Cancel: :func:`save_cancelled`).
    """
    options = options or LearnOptions()
    started = time.perf_counter()
    volumes = list(volumes)
    start_spec: CheckpointSpec | None = None
    start_model = None
    start_file: Path | None = None
    if start_from is not None:
        start_file = find_checkpoint(start_from)
        start_model, start_spec = load_checkpoint(start_file)
        yield Log(f"starting from {start_file.name}")
    plan = yield from plan_training(volumes, options, start=start_spec, class_names=class_names,
                                    n_classes=n_classes)
    for note in plan.notes:
        yield Log(note)
    yield PlanReady(message=f"plan: {plan.summary()}", summary=plan.summary(),
                    train_s=plan.train_s, segment_s=plan.segment_s)
    record = {"plan": plan.summary(), "plan_notes": list(plan.notes), **(provenance or {})}
    if start_model is not None:
        trainer = Trainer(start_model, plan.spec, volumes, plan.train, mode="finetune",
                          provenance={"parent": str(start_from),
                                      "parent_file": start_file.name if start_file else "",
                                      **record},
                          validation_volumes=validation_volumes, checkpoints=checkpoints)
    else:
        trainer = Trainer.from_scratch(plan.spec, volumes, plan.train, provenance=record,
                                       validation_volumes=validation_volumes,
                                       checkpoints=checkpoints)
    if on_trainer is not None:
        on_trainer(trainer)
    result = yield from trainer.job()
    verdict = result.verdict or Verdict(learned=False, reasons=["the run did not finish"])
    names = dict(result.spec.class_names)
    if not verdict.learned and start_model is None:
        msg = f"the run learned nothing, so no model was saved: {'; '.join(verdict.reasons)}"
        fallback = _annotation_mask(volumes[0], names) if segment else None
        if fallback is None:
            raise TrainingError(msg)
        own, own_mask = fallback
        yield Log(f"{msg}; the mask is made from your annotation alone: {own.describe()}",
                  level="warning")
        return LearnResult(model_path=None, spec=result.spec, train=result, plan=plan,
                           verdict=verdict, mask=own_mask, annotation=own,
                           seconds=time.perf_counter() - started)
    if not verdict.learned:
        yield Log(f"kept the starting model: {'; '.join(verdict.reasons)}", level="warning")
        return LearnResult(model_path=None, spec=result.spec, train=result, plan=plan,
                           verdict=verdict, kept_parent=True,
                           seconds=time.perf_counter() - started)
    mask = network = None
    rule = None
    beyond = ""
    unsure: list[int] = []
    stopped: list[Cut] = []
    suggestions: list[SliceSuggestion] = []
    spec = result.spec
    if segment:
        volume = volumes[0]
        layout = describe_annotation(volume.labeled_mask(), volume.labels.array,
                                     axis=spec.slice_axis if spec.spatial_dims == 2 else None)
        plan_v = result.plans[0] if result.plans else None
        if options.combine and plan_v is not None and result.validated_state is not None:
            validated = plan_model(result, result.validated_state)
            held = yield from _predict(validated, spec, volume, plan, probabilities=False,
                                       stage=Stage.MEASURE)
            annotation = _held_back_annotation(volume, plan_v, layout.axis, layout.slices)
            rule = choose_rule(held.labels.array, annotation, volume.labels.array, plan_v.mask,
                               interpolation_later=layout.axis is not None
                               and len(layout.slices) >= 2,
                               measure_interpolation=plan_v.kind == "slices")
            yield Log(f"combining with your annotation: {rule.summary()}")
        keep = volume.scans[0].array.size * spec.out_channels <= MAX_PROBABILITY_VALUES
        prediction = yield from _predict(result.model, spec, volume, plan, probabilities=keep,
                                         stage=Stage.SEGMENT)
        network_labels = prediction.labels.array
        full = Annotation(labels=volume.labels.array, labeled=volume.labeled_mask(),
                          axis=layout.axis, slices=layout.slices,
                          spacing=volume.grid.geometry.spacing)
        chosen = rule.rule if rule is not None else ("connected" if options.combine
                                                     else "network")
        combined, cuts = build_mask(chosen, network_labels, full)
        stopped = sorted(cuts, key=lambda cut: -cut.voxels)
        for cut in stopped:
            yield Log(cut.describe(names))
        # The network's own labels are checked whatever the rule: under "interpolation" (chosen
        # because the network scored poorly) the mask looked fine while the saved model
        # labeled the whole scan one class - the model EVERYWHERE says is refused.
        _check_not_everywhere(network_labels, volume, names)
        if chosen != "network":
            _check_not_everywhere(combined, volume, names)
        interpolated = full.interpolated()
        if layout.axis is not None:
            suggestions = rank_slices(
                layout.axis, layout.slices, probabilities=prediction.probabilities,
                labels=combined, interpolated=interpolated[0] if interpolated else None,
                inside=interpolated[1] if interpolated else None)
        mask = LabelMap(array=combined, geometry=volume.grid.geometry, class_names=names)
        network = LabelMap(array=network_labels, geometry=volume.grid.geometry,
                           class_names=names)
        if layout.axis is not None and layout.slices:
            unsure = unsure_slices(network_labels, full)
            suggestions[:0] = [SliceSuggestion(axis=layout.axis, index=s, uncertain=0.0,
                                               disagreeing=0) for s in unsure[:1]]
            beyond, first_past = past_annotation(combined, layout.axis, layout.slices)
            if first_past is not None:
                suggestions.insert(0, SliceSuggestion(axis=layout.axis, index=first_past,
                                                      uncertain=0.0, disagreeing=0))
            # where the mask was stopped is the first place to check
            suggestions[:0] = [SliceSuggestion(axis=layout.axis, index=cut.first, uncertain=0.0,
                                               disagreeing=0) for cut in stopped[:1]]
            firsts: dict[int, SliceSuggestion] = {}  # each slice once, first place wins
            for suggestion in suggestions:
                firsts.setdefault(suggestion.index, suggestion)
            suggestions = list(firsts.values())
    heldout = []
    if validation_volumes:
        yield Log(f"scoring the {len(validation_volumes)} validation scan(s)")
        heldout = score_volumes(result.model, spec, validation_volumes, plan.device)
    provenance_out = dict(spec.provenance)
    if heldout:
        provenance_out["heldout_metrics"] = heldout
    if rule is not None:
        provenance_out["mask_rule"] = rule.rule
        provenance_out["held_back_rule_dice"] = {
            k: (v if np.isfinite(v) else None) for k, v in rule.scores.items()}
    own_scan = None
    if segment and mask is not None and layout.axis is not None and not layout.dense:
        first = volumes[0].scans[0]
        own_scan = ScanAnnotation.of(
            np.where(volumes[0].labeled_mask(), volumes[0].labels.array, 0), layout.slices,
            layout.axis, scan_hash=content_hash(first.array, geometry=first.geometry),
            rule=chosen)
    data_record = spec.training_data
    if start_spec is None or data_record is None:  # a new model records its training data
        data_record = describe_training_data([v.scans for v in volumes],
                                             intensity=spec.intensity)
    spec = replace(spec, provenance=provenance_out, training_data=data_record,
                   scan_annotation=own_scan if own_scan is not None else spec.scan_annotation)
    result.spec = spec
    path: Path | None = None
    if save is not None:
        name = save.name or (Path(str(start_from)).name.removesuffix(".safetensors") + "-ft"
                             if start_from is not None else spec.architecture)
        path = save_new_version(result, path=save.path, folder=save.folder, name=name)
        yield Log(f"saved {path}")
    return LearnResult(model_path=path, spec=spec, train=result, plan=plan, verdict=verdict,
                       mask=mask, network=network, rule=rule, suggestions=suggestions,
                       heldout_scores=heldout, seconds=time.perf_counter() - started,
                       beyond=beyond if segment and mask is not None else "",
                       unsure=tuple(unsure) if segment and mask is not None else (),
                       stopped=tuple(stopped) if segment and mask is not None else ())


def score_volumes(model: torch.nn.Module, spec: CheckpointSpec,
                  volumes: Sequence[LabeledVolume], device: str) -> list[dict[str, Any]]:
    """Per-class Dice/IoU/HD95 of ``model`` on the labeled voxels of each of ``volumes``."""
    from napari_medseg.metrics import evaluate_arrays

    predictor = Predictor(model, spec, device=device)
    scores = []
    for volume in volumes:
        prediction = predictor.predict(volume.scans, PredictOptions(device=device))
        mask = volume.labeled_mask()
        evaluation = evaluate_arrays(
            prediction.labels.array, volume.labels.array, volume.grid.geometry.spacing,
            classes=list(range(1, spec.out_channels)), class_names=dict(spec.class_names),
            mask=None if mask.all() else mask)
        scores.append({"scan": volume.scans[0].name, **evaluation.to_dict()})
    return scores


def plan_model(result: TrainResult, state: dict[str, torch.Tensor]) -> torch.nn.Module:
    """A copy of the result's network holding ``state`` (e.g. the validated weights)."""
    import copy

    model = copy.deepcopy(result.model)
    model.load_state_dict(state)
    return model.eval()
