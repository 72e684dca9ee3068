"""``napari-medseg train``: train a new model on (sparsely) labeled scans.

    napari-medseg train --images SCAN [SCAN ...] --labels LABELS [LABELS ...]
        [--labeled-mask MASK [MASK ...] | --ignore-value V] --out CKPT
        [--model ARCH] [--budget SECONDS] [--segment MASK] [--val SCAN LABELS ...] ...

Each ``--images`` entry is one volume (one channel), paired in order with ``--labels`` (and
``--labeled-mask``).  A voxel is unlabeled when it lies outside its labeled mask (non-zero =
labeled) or equals ``--ignore-value``; unlabeled voxels are ignored, so a few annotated slices
are enough.  The run is planned to the time budget on this machine (``--budget``, default
120 s on a CPU, 30 s on a GPU), measures itself on a held-back annotated slice, refuses to save
a model that learned nothing, and ``--segment MASK`` writes the first scan's whole-volume mask
(the network combined with the annotation, see :mod:`napari_medseg.training.combine`).  All of
it is :func:`napari_medseg.training.job.train_job`; this module only turns flags into its
options and its result into files and lines.

``--val SCAN LABELS`` (repeatable) volumes measure the run instead of held-back voxels and are
scored at the end (Dice per class, recorded in the checkpoint's provenance).  Launched by
``torchrun --nproc_per_node N -m napari_medseg train ...`` the same command trains with
DistributedDataParallel (the batch is the global batch); every ``--checkpoint-every`` steps
the run's state goes to ``--checkpoint-dir`` and ``--resume`` continues from there (see
docs/cluster.md).
"""

from __future__ import annotations

import argparse
import shlex
import sys
from pathlib import Path
from typing import Any

from napari_medseg.cli.options import add_option_flags, options_from_args
from napari_medseg.errors import MedsegError
from napari_medseg.provenance import file_hash

#: LearnOptions fields this verb sets itself (or names differently).
_SKIP = ("architecture",)


def add_labeled_arguments(p: argparse.ArgumentParser) -> None:
    """How the labeled voxels are given (shared by ``train`` and ``finetune``)."""
    group = p.add_mutually_exclusive_group()
    group.add_argument("--labeled-mask", type=Path, nargs="+",
                       help="mask(s) of labeled voxels (non-zero = labeled), one per volume")
    group.add_argument("--ignore-value", type=int,
                       help="label value meaning 'unlabeled' (e.g. 255)")
    p.add_argument("--segment", type=Path, metavar="MASK",
                   help="also write the first scan's whole-volume mask here")
    p.add_argument("--overwrite", action="store_true", help="replace an existing --segment file")
    p.add_argument("--quiet", action="store_true", help="no progress output")


def add_parser(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser("train", help="train a new model on (sparsely) labeled scans")
    p.add_argument("--images", type=Path, nargs="+", required=True, help="scans, one per volume")
    p.add_argument("--labels", type=Path, nargs="+", required=True,
                   help="label maps, one per scan, on the scan's grid")
    p.add_argument("--val", type=Path, nargs=2, action="append", metavar=("SCAN", "LABELS"),
                   help="validation volume (repeatable): early stopping and final scores")
    p.add_argument("--out", type=Path, required=True, help="new checkpoint (.safetensors)")
    p.add_argument("--model", dest="architecture", default="auto", metavar="ARCH",
                   help="network of the zoo (napari-medseg models), or auto (default): a 2.5D "
                        "U-Net across the annotated slices")
    p.add_argument("--classes", type=int, help="number of classes incl. background "
                   "(default: largest label value + 1)")
    p.add_argument("--class-names", nargs="+", metavar="VALUE=NAME",
                   help="class names, e.g. 0=background 1='grey matter'")
    p.add_argument("--checkpoint-every", type=int, default=50, metavar="N",
                   help="save the run's state every N steps for --resume (0: never; default 50)")
    p.add_argument("--checkpoint-dir", type=Path,
                   help="folder of the run's checkpoints (default: OUT's name + .checkpoints)")
    p.add_argument("--resume", action="store_true",
                   help="continue from the last checkpoint in --checkpoint-dir, if there is one")
    p.add_argument("--start-from", type=Path, metavar="CHECKPOINT",
                   help="fine-tune this checkpoint (its network, classes, contract, spacing) on "
                        "these volumes; saved only if it beats it (napari-medseg finetune does "
                        "this for one scan)")
    add_labeled_arguments(p)
    add_option_flags(p, _learn_options(), skip=_SKIP)
    p.set_defaults(func=run)


def _learn_options() -> type:
    from napari_medseg.training.plan import LearnOptions

    return LearnOptions


# --------------------------------------------------------------------------- shared helpers
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


def check_segment_target(path: Path | None, overwrite: bool) -> None:
    """Fail before training when ``--segment`` cannot be written."""
    if path is None:
        return
    from napari_medseg.io.atomic import check_can_write
    from napari_medseg.io.formats import check_writable_suffix

    check_writable_suffix(path)
    check_can_write(path, overwrite=overwrite)


def report(result: Any, args: argparse.Namespace) -> None:
    """Write ``--segment`` and print what the run did (rank 0)."""
    from napari_medseg.io import write_label_map

    if result.model_path is not None:
        train = result.train
        print(f"wrote {result.model_path} ({train.steps_done} steps, {result.seconds:.0f} s)")
    if args.segment is not None and result.mask is not None:
        write_label_map(result.mask, args.segment, overwrite=args.overwrite)
        how = (f"from your annotation alone, {result.annotation.method}"
               if result.annotation is not None
               else result.rule.rule if result.rule else "the network")
        print(f"wrote {args.segment} (the scan's mask: {how})")
    elif result.annotation is not None:
        print("the mask your annotation gives was not written: pass --segment MASK to keep it")
    print(result.summary())
    for suggestion in result.suggestions[:3]:
        print(f"correct next: {suggestion.describe()}")


# --------------------------------------------------------------------------- the verb
def _class_names(items: list[str] | None) -> dict[int, str]:
    names: dict[int, str] = {}
    for item in items or []:
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
    from napari_medseg import distributed
    from napari_medseg.cli.progress import TerminalProgress
    from napari_medseg.events import run_to_end
    from napari_medseg.training.job import SaveTarget, train_job
    from napari_medseg.training.plan import LearnOptions
    from napari_medseg.training.resume import RunCheckpoints

    check_out(args.out)
    check_segment_target(args.segment, args.overwrite)
    volumes = read_volumes([[p] for p in args.images], args.labels, args.labeled_mask,
                           args.ignore_value)
    val_volumes = read_volumes([[v[0]] for v in args.val or []], [v[1] for v in args.val or []],
                               None, args.ignore_value)
    options = options_from_args(LearnOptions, args, skip=_SKIP, architecture=args.architecture)
    if options.threads is None:  # several processes on one machine share its cores
        options.threads = distributed.threads_per_process(context)
    names = _class_names(args.class_names)
    if args.classes is not None:
        names = {**{k: f"class {k}" for k in range(1, args.classes)}, **names}
    provenance = {
        "command": command_line(args),
        "data": {str(p): file_hash(p) for p in [*args.images, *args.labels,
                                                  *(args.labeled_mask or [])]},
        "validation_data": {str(p): file_hash(p) for pair in args.val or [] for p in pair},
    }
    if context.is_distributed:
        provenance["processes"] = context.world_size
    checkpoints = RunCheckpoints(
        folder=args.checkpoint_dir or args.out.with_name(args.out.stem + ".checkpoints"),
        every=args.checkpoint_every, resume=args.resume)
    job = train_job(volumes, options, start_from=args.start_from,
                    save=SaveTarget(path=args.out) if context.is_main else None,
                    segment=context.is_main, class_names=names, provenance=provenance,
                    validation_volumes=val_volumes, checkpoints=checkpoints,
                    n_classes=args.classes)
    result = run_to_end(job, TerminalProgress(quiet=args.quiet or not context.is_main))
    if not context.is_main:  # rank 0 scores and writes the model
        return 0
    checkpoints.clear()
    for score in result.heldout_scores:
        dice = ", ".join(f"{c['name']} {c['dice']:.3f}" for c in score["classes"]
                         if c["dice"] is not None)
        print(f"held-out {score['scan']}: Dice {dice}")
    report(result, args)
    if args.start_from is not None and result.model_path is None:
        from napari_medseg.cli.finetune import KEPT_PARENT

        return KEPT_PARENT  # as finetune: it did not beat the checkpoint it started from
    if result.annotation is not None:
        return 1  # no model: the run learned nothing (the mask may still have been written)
    return 0
