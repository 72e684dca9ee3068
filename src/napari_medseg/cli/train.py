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
(the network combined with the annotation, see :mod:`napari_medseg.inference.combine`).  All of
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
from pathlib import Path
from typing import Any

from napari_medseg.cli.labeled import (
    KEPT_PARENT,
    add_labeled_arguments,
    check_out,
    check_segment_target,
    command_line,
    read_volumes,
    report,
)
from napari_medseg.cli.options import add_option_flags, options_from_args
from napari_medseg.errors import MedsegError
from napari_medseg.provenance import file_hash

#: LearnOptions fields this verb sets itself (or names differently).
_SKIP = ("architecture",)


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
    from napari_medseg.models.device import resolve_device

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
        return KEPT_PARENT  # as finetune: it did not beat the checkpoint it started from
    if result.annotation is not None:
        return 1  # no model: the run learned nothing (the mask may still have been written)
    return 0
