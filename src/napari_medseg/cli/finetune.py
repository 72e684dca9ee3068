"""``napari-medseg finetune``: fine-tune a model on corrected (sparse) labels.

    napari-medseg finetune --checkpoint CKPT_OR_BUILTIN_NAME --image SCAN [--image SCAN2 ...]
        --labels LABELS [--labeled-mask MASK | --ignore-value V] [--budget S] [--steps N]
        --out NEW_CKPT [--segment MASK] [--compare]

Several ``--image`` are the channels of a multi-modal model (on one grid).  A voxel is
unlabeled when it lies outside the labeled mask (non-zero = labeled) or equals the ignore
value.  The run is :func:`napari_medseg.training.job.train_job` started from the checkpoint:
it holds back a corrected slice, and when the fine-tuned weights do not beat the checkpoint
there it says so, writes nothing and exits 3 (the checkpoint stays the better model).  The
new checkpoint never replaces a file; the parent is left untouched.  ``--compare`` prints the
Dice of the parent and of the new model on the labeled voxels.
"""

from __future__ import annotations

import argparse
from pathlib import Path

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

#: What a fine-tune keeps from its checkpoint (the network and how it reads a scan).
_SKIP = ("architecture", "dims", "widths", "context_slices", "normalization", "window",
         "modality", "percentiles", "features", "spacing")


def add_parser(subparsers: argparse._SubParsersAction) -> None:
    from napari_medseg.training.plan import LearnOptions

    p = subparsers.add_parser("finetune", help="fine-tune a model on corrected (sparse) labels")
    p.add_argument("--checkpoint", required=True,
                   help="starter model name or .safetensors checkpoint to start from")
    p.add_argument("--image", type=Path, action="append", required=True,
                   help="scan; repeat for the channels of a multi-channel model")
    p.add_argument("--labels", type=Path, required=True, help="corrected label map")
    p.add_argument("--out", type=Path, required=True, help="new checkpoint (.safetensors)")
    p.add_argument("--compare", action="store_true",
                   help="print Dice/IoU on the labeled voxels before and after")
    add_labeled_arguments(p)
    add_option_flags(p, LearnOptions, skip=_SKIP)
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from napari_medseg.cli.progress import TerminalProgress
    from napari_medseg.events import run_to_end
    from napari_medseg.inference import PredictOptions, Predictor
    from napari_medseg.training.comparison import before_after
    from napari_medseg.training.job import SaveTarget, train_job
    from napari_medseg.training.plan import LearnOptions

    check_out(args.out)
    check_segment_target(args.segment, args.overwrite)
    if args.labeled_mask and len(args.labeled_mask) != 1:
        msg = "finetune takes one --labeled-mask (one volume)"
        raise MedsegError(msg)
    volumes = read_volumes([list(args.image)], [args.labels],
                           [args.labeled_mask[0]] if args.labeled_mask else None,
                           args.ignore_value)
    provenance = {
        "command": command_line(args),
        "data": {str(p): file_hash(p) for p in [*args.image, args.labels,
                                                  *(args.labeled_mask or [])]},
    }
    options = options_from_args(LearnOptions, args, skip=_SKIP)
    result = run_to_end(train_job(volumes, options, start_from=args.checkpoint,
                                  save=SaveTarget(path=args.out), segment=args.segment is not None,
                                  provenance=provenance), TerminalProgress(quiet=args.quiet))
    if result.kept_parent:
        print(result.summary())
        return KEPT_PARENT
    if args.compare:
        predict = PredictOptions(device=options.device)
        parent = Predictor.load(args.checkpoint, device=options.device)
        new = Predictor([result.train.model], result.spec, device=options.device)
        print(before_after(parent, new, volumes[0], predict).summary())
    report(result, args)
    return 0
