"""``napari-medseg finetune``: fine-tune a model on corrected (sparse) labels.

    napari-medseg finetune --checkpoint CKPT_OR_BUILTIN_NAME --image SCAN [--image SCAN2 ...]
        --labels LABELS [--labeled-mask MASK | --ignore-value V] [--steps N] [--device D]
        --out NEW_CKPT [--freeze-encoder] [--compare]

Several ``--image`` are the channels of a multi-modal model (on one grid).  A voxel is
unlabeled when it lies outside the labeled mask (non-zero = labeled) or equals the ignore
value; the loss ignores it.  The new checkpoint never replaces an existing file; the parent
is left untouched.  ``--compare`` re-segments the scan with both models and prints Dice/IoU
on the labeled voxels before and after.
"""

from __future__ import annotations

import argparse
from pathlib import Path

from napari_medseg.cli.train import (
    add_common_training_arguments,
    check_out,
    command_line,
    file_hash,
    read_volumes,
    train_options,
)
from napari_medseg.errors import MedsegError


def add_parser(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser("finetune", help="fine-tune a model on corrected (sparse) labels")
    p.add_argument("--checkpoint", required=True,
                   help="starter model name or .safetensors checkpoint to start from")
    p.add_argument("--image", type=Path, action="append", required=True,
                   help="scan; repeat for the channels of a multi-channel model")
    p.add_argument("--labels", type=Path, required=True, help="corrected label map")
    p.add_argument("--out", type=Path, required=True, help="new checkpoint (.safetensors)")
    p.add_argument("--freeze-encoder", action="store_true",
                   help="train the decoder only (transfer learning)")
    p.add_argument("--compare", action="store_true",
                   help="print Dice/IoU on the labeled voxels before and after")
    add_common_training_arguments(p)
    p.set_defaults(func=run, steps=100)


def run(args: argparse.Namespace) -> int:
    from napari_medseg.cli.progress import TerminalProgress
    from napari_medseg.events import run_to_end
    from napari_medseg.inference import PredictOptions, Predictor
    from napari_medseg.training import Trainer, save_new_version
    from napari_medseg.training.comparison import before_after

    check_out(args.out)
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
    trainer = Trainer.from_checkpoint(args.checkpoint, volumes, train_options(args),
                                      provenance=provenance)
    result = run_to_end(trainer.job(), TerminalProgress(quiet=args.quiet))
    if args.compare:
        options = PredictOptions(device=args.device)
        parent = Predictor.load(args.checkpoint, device=args.device)
        new = Predictor([result.model], result.spec, device=args.device)
        comparison = before_after(parent, new, volumes[0], options)
        result.spec.provenance["labeled_dice_before"] = comparison.before.mean("dice")
        result.spec.provenance["labeled_dice_after"] = comparison.after.mean("dice")
        print(comparison.summary())
    path = save_new_version(result, path=args.out)
    print(f"wrote {path} ({result.steps_done} steps, {result.seconds:.0f} s; validation Dice "
          f"{result.initial_val_dice:.3f} -> {result.best_val_dice:.3f})")
    return 0
