"""``napari-medseg train``: train a new model from scratch on (sparsely) labeled volumes.

    napari-medseg train --model ARCH --images SCAN [SCAN ...] --labels LABELS [LABELS ...]
        [--labeled-mask MASK [MASK ...] | --ignore-value V] [--val SCAN LABELS ...]
        --out CKPT [--features F ...] [--spacing MM ...] [--patch P ...] [--steps N]
        [--normalization ...] [--class-names 0=background 1=liver ...]

Each ``--images`` entry is one volume (one channel), paired in order with ``--labels`` (and
``--labeled-mask``).  A voxel is unlabeled when it lies outside its labeled mask (non-zero =
labeled) or equals ``--ignore-value``; unlabeled voxels are ignored by the loss, so a few
annotated slices are enough to start.  ``--val SCAN LABELS`` (repeatable) volumes are used for
early stopping instead of held-back labeled voxels and are scored at the end (Dice per class,
recorded in the checkpoint's provenance).

Launched by ``torchrun --nproc_per_node N -m napari_medseg train ...`` the same command trains
with DistributedDataParallel (NCCL on GPUs, gloo on CPU): ``--batch`` stays the global batch,
each process draws ``batch / N`` patches per step, so the run follows the same optimisation as
one process (``--batch`` must be a multiple of N); rank 0 logs and writes.  Every
``--checkpoint-every`` steps the run's state goes to ``--checkpoint-dir`` (default: ``OUT``'s
name + ``.checkpoints``); after a failure the same command with ``--resume`` continues from
there.  See docs/cluster.md.
"""

from __future__ import annotations

import argparse
import hashlib
import shlex
import sys
from pathlib import Path
from typing import Any

from napari_medseg.errors import MedsegError


def add_common_training_arguments(p: argparse.ArgumentParser) -> None:
    """Options shared by ``train`` and ``finetune``."""
    group = p.add_mutually_exclusive_group()
    group.add_argument("--labeled-mask", type=Path, nargs="+",
                       help="mask(s) of labeled voxels (non-zero = labeled), one per volume")
    group.add_argument("--ignore-value", type=int,
                       help="label value meaning 'unlabeled' (e.g. 255)")
    p.add_argument("--steps", type=int, default=200, help="optimiser steps (default 200)")
    p.add_argument("--batch", type=int, default=2, help="patches per step (default 2)")
    p.add_argument("--patch", type=int, nargs="+", help="patch size in voxels (Z Y X or Y X)")
    p.add_argument("--lr", type=float, default=1e-3, help="AdamW learning rate (default 1e-3)")
    p.add_argument("--val-fraction", type=float, default=0.1,
                   help="share of labeled voxels held back for early stopping (default 0.1)")
    p.add_argument("--validate-every", type=int, default=25, help="steps between validations")
    p.add_argument("--patience", type=int, default=4,
                   help="validations without improvement before stopping (default 4)")
    p.add_argument("--slice-axis", type=int, default=0, choices=(0, 1, 2),
                   help="2D models: array axis slices are taken along (0 = axial)")
    p.add_argument("--no-augment", action="store_true", help="no data augmentation")
    p.add_argument("--device", default="auto", help="auto (default), cpu, cuda, cuda:N, mps")
    p.add_argument("--threads", type=int, help="CPU threads for torch")
    p.add_argument("--seed", type=int, default=0, help="random seed (default 0)")
    p.add_argument("--quiet", action="store_true", help="no progress output")


def add_parser(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser("train", help="train a new model on (sparsely) labeled volumes")
    p.add_argument("--model", required=True, help="architecture (see napari-medseg models)")
    p.add_argument("--images", type=Path, nargs="+", required=True, help="scans, one per volume")
    p.add_argument("--labels", type=Path, nargs="+", required=True,
                   help="label maps, one per scan, on the scan's grid")
    p.add_argument("--val", type=Path, nargs=2, action="append", metavar=("SCAN", "LABELS"),
                   help="validation volume (repeatable): early stopping and final scores")
    p.add_argument("--out", type=Path, required=True, help="new checkpoint (.safetensors)")
    p.add_argument("--spatial-dims", type=int, default=3, choices=(2, 3))
    p.add_argument("--features", type=int, nargs="+", help="network widths, finest first")
    p.add_argument("--classes", type=int, help="number of classes incl. background "
                   "(default: largest label value + 1)")
    p.add_argument("--class-names", nargs="+", metavar="VALUE=NAME",
                   help="class names, e.g. 0=background 1='grey matter'")
    p.add_argument("--modality", default="CT", help="modality of the input (CT, MR...)")
    p.add_argument("--normalization", default="percentile",
                   choices=("ct_window", "percentile", "zscore", "none"))
    p.add_argument("--window", type=float, nargs=2, help="ct_window: LOW HIGH in HU")
    p.add_argument("--percentiles", type=float, nargs=2, default=(0.5, 99.5),
                   help="percentile normalization: LOW HIGH (default 0.5 99.5)")
    p.add_argument("--spacing", type=float, nargs="+",
                   help="target spacing in mm (Z Y X); scans are resampled to it")
    p.add_argument("--checkpoint-every", type=int, default=50, metavar="N",
                   help="save the run's state every N steps for --resume (0: never; default 50)")
    p.add_argument("--checkpoint-dir", type=Path,
                   help="folder of the run's checkpoints (default: OUT's name + .checkpoints)")
    p.add_argument("--resume", action="store_true",
                   help="continue from the last checkpoint in --checkpoint-dir, if there is one")
    add_common_training_arguments(p)
    p.set_defaults(func=run)


# --------------------------------------------------------------------------- shared helpers
def file_hash(path: Path) -> str:
    """``sha256:<hex>`` of a file (a folder: of its sorted file names and contents)."""
    digest = hashlib.sha256()
    files = sorted(p for p in path.rglob("*") if p.is_file()) if path.is_dir() else [path]
    for f in files:
        digest.update(f.name.encode())
        with f.open("rb") as handle:
            for chunk in iter(lambda: handle.read(1 << 20), b""):
                digest.update(chunk)
    return f"sha256:{digest.hexdigest()}"


def read_volumes(images: list[list[Path]], labels: list[Path], masks: list[Path] | None,
                 ignore_value: int | None) -> list[Any]:
    """:class:`LabeledVolume` objects from files (each ``images`` entry: the channels)."""
    from napari_medseg.io import read_label_map, read_scan
    from napari_medseg.training import LabeledVolume

    if len(labels) != len(images):
        msg = f"{len(images)} volume(s) but {len(labels)} label file(s): give one per volume"
        raise MedsegError(msg)
    if masks is not None and len(masks) != len(images):
        msg = f"{len(images)} volume(s) but {len(masks)} labeled mask(s): give one per volume"
        raise MedsegError(msg)
    volumes = []
    for i, (channels, label_path) in enumerate(zip(images, labels, strict=True)):
        scans = [read_scan(p) for p in channels]
        label_map = read_label_map(label_path, like=scans[0])
        mask = read_label_map(masks[i], like=scans[0]).array != 0 if masks else None
        volumes.append(LabeledVolume(scans, label_map, labeled=mask, ignore_value=ignore_value))
    return volumes


def train_options(args: argparse.Namespace) -> Any:
    from napari_medseg.training import AugmentOptions, TrainOptions

    try:
        return TrainOptions(
            steps=args.steps, batch_size=args.batch,
            patch_size=tuple(args.patch) if args.patch else None, learning_rate=args.lr,
            validation_fraction=args.val_fraction, validate_every=args.validate_every,
            patience=args.patience, slice_axis=args.slice_axis, device=args.device,
            threads=args.threads, seed=args.seed,
            freeze_encoder=getattr(args, "freeze_encoder", False),
            augment=AugmentOptions.none() if args.no_augment else AugmentOptions(),
        )
    except ValueError as error:
        raise MedsegError(str(error)) from None


def command_line(args: argparse.Namespace) -> str:
    """The command as typed (``sys.argv``), or rebuilt from ``args`` when called in-process."""
    if sys.argv[1:2] == [args.verb]:
        return "napari-medseg " + " ".join(shlex.quote(a) for a in sys.argv[1:])
    parts = ["napari-medseg", args.verb]
    for key, value in vars(args).items():
        if key in ("func", "verb") or value is None or value is False:
            continue
        flag = "--" + key.replace("_", "-")
        if value is True:
            parts.append(flag)
        elif isinstance(value, list | tuple):
            flat = [v for item in value for v in (item if isinstance(item, list | tuple)
                                                   else [item])]
            parts += [flag, *(shlex.quote(str(v)) for v in flat)]
        else:
            parts += [flag, shlex.quote(str(value))]
    return " ".join(parts)


def check_out(path: Path) -> None:
    from napari_medseg.errors import CheckpointExistsError

    if path.suffix != ".safetensors":
        msg = f"--out must end in .safetensors, got {path.name}"
        raise MedsegError(msg)
    if path.exists():
        msg = f"{path} exists; a trained model never replaces a checkpoint: choose a new name"
        raise CheckpointExistsError(msg)
    if not path.parent.is_dir():
        msg = f"folder {path.parent} does not exist; create it first"
        raise MedsegError(msg)


def score_volumes(result: Any, volumes: list[Any], device: str) -> list[dict[str, Any]]:
    """Per-class Dice/IoU/HD95 of the trained model on labeled voxels of ``volumes``."""
    from napari_medseg.inference import PredictOptions, Predictor
    from napari_medseg.metrics import evaluate_arrays

    predictor = Predictor([result.model], result.spec, device=device)
    scores = []
    for volume in volumes:
        prediction = predictor.predict(volume.scans, PredictOptions(device=device))
        mask = volume.labeled_mask()
        evaluation = evaluate_arrays(
            prediction.labels.array, volume.labels.array, volume.grid.geometry.spacing,
            classes=list(range(1, result.spec.out_channels)),
            class_names=dict(result.spec.class_names), mask=None if mask.all() else mask)
        scores.append({"scan": volume.scans[0].name, **evaluation.to_dict()})
    return scores


# --------------------------------------------------------------------------- the verb
def _class_names(args: argparse.Namespace, n_classes: int) -> dict[int, str]:
    names = {0: "background", **{k: f"class {k}" for k in range(1, n_classes)}}
    for item in args.class_names or []:
        value, _, name = item.partition("=")
        try:
            names[int(value)] = name
        except ValueError:
            msg = f"--class-names takes VALUE=NAME, got {item!r}"
            raise MedsegError(msg) from None
    return names


def run(args: argparse.Namespace) -> int:
    from napari_medseg import distributed
    from napari_medseg.inference import resolve_device

    with distributed.process_group(device=resolve_device(args.device)) as context:
        return _train(args, context)


def _train(args: argparse.Namespace, context: Any) -> int:
    import numpy as np

    from napari_medseg import distributed
    from napari_medseg.cli.progress import TerminalProgress
    from napari_medseg.events import run_to_end
    from napari_medseg.models import CheckpointSpec, IntensityContract
    from napari_medseg.models.registry import default_options
    from napari_medseg.training import Trainer, save_new_version
    from napari_medseg.training.resume import RunCheckpoints

    check_out(args.out)
    volumes = read_volumes([[p] for p in args.images], args.labels, args.labeled_mask,
                           args.ignore_value)
    val_volumes = read_volumes([[v[0]] for v in args.val or []], [v[1] for v in args.val or []],
                               None, args.ignore_value)
    largest = max(int(np.max(np.where(v.labeled_mask(), v.labels.array, 0))) for v in volumes)
    n_classes = args.classes or largest + 1
    if n_classes < 2:
        msg = "the labels hold only background (0); label at least one foreground class"
        raise MedsegError(msg)
    options: dict[str, Any] = {}
    if args.features:
        known = default_options(args.model) if args.model in _names() else {}
        if "features" not in known:
            msg = f"{args.model} has no 'features' option; options: {', '.join(known)}"
            raise MedsegError(msg)
        options["features"] = list(args.features)
    try:
        contract = IntensityContract(
            modality=args.modality, normalization=args.normalization,
            window=tuple(args.window) if args.window else None,
            percentiles=tuple(args.percentiles) if args.normalization == "percentile" else None)
    except ValueError as error:
        raise MedsegError(str(error)) from None
    train = train_options(args)
    if train.threads is None:  # several processes on one machine share its cores
        train.threads = distributed.threads_per_process(context)
    spec = CheckpointSpec(
        architecture=args.model, spatial_dims=args.spatial_dims, in_channels=1,
        out_channels=n_classes, options=options, class_names=_class_names(args, n_classes),
        intensity=[contract], target_spacing=tuple(args.spacing) if args.spacing else None,
        patch_size=train.patch_size)
    provenance = {
        "command": command_line(args),
        "data": {str(p): file_hash(p) for p in [*args.images, *args.labels,
                                                  *(args.labeled_mask or [])]},
        "validation_data": {str(p): file_hash(p) for pair in args.val or [] for p in pair},
    }
    if context.is_distributed:
        provenance["processes"] = context.world_size
    if val_volumes:
        train.validation_fraction = 0.0
    checkpoints = RunCheckpoints(
        folder=args.checkpoint_dir or args.out.with_name(args.out.stem + ".checkpoints"),
        every=args.checkpoint_every, resume=args.resume)
    trainer = Trainer.from_scratch(spec, volumes, train, provenance=provenance,
                                   validation_volumes=val_volumes, checkpoints=checkpoints)
    result = run_to_end(trainer.job(),
                        TerminalProgress(quiet=args.quiet or not context.is_main))
    if not context.is_main:  # rank 0 scores and writes the model
        return 0
    if val_volumes:
        scores = score_volumes(result, val_volumes, args.device)
        result.spec.provenance["heldout_metrics"] = scores
        for score in scores:
            dice = ", ".join(f"{c['name']} {c['dice']:.3f}" for c in score["classes"]
                             if c["dice"] is not None)
            print(f"held-out {score['scan']}: Dice {dice}")
    path = save_new_version(result, path=args.out)
    checkpoints.clear()
    print(f"wrote {path} ({result.steps_done} steps, {result.seconds:.0f} s, best validation "
          f"Dice {result.best_val_dice:.3f} at step {result.best_step})")
    return 0


def _names() -> list[str]:
    from napari_medseg.models import model_names

    return model_names()
