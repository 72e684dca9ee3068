"""``napari-medseg evaluate``: compare a predicted label map with a reference, per class.

    napari-medseg evaluate --pred P --truth T [--json] [--csv FILE] [--classes K ...]
        [--match auto|value|name] [--no-surface]

Prints Dice, IoU, HD95 and ASSD (mm) and volumes (ml) per class of the reference, with the
reference's class names and the prediction class matched to each (by name where both name
them, else by value; ``--match`` forces one), then the prediction's classes the reference
does not have.  Means cover the reference's classes present in either map, and the table
says which.  ``--json`` prints JSON instead of the table.  Both files must lie on one grid.
The work is the core's :func:`~napari_medseg.metrics.evaluate_job`.
"""

from __future__ import annotations

import argparse
from pathlib import Path

from napari_medseg.cli.options import add_option_flags, options_from_args
from napari_medseg.cli.progress import TerminalProgress
from napari_medseg.metrics.report import EvaluateOptions


def add_parser(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser("evaluate", help="Dice/IoU/HD95/ASSD/volumes of a prediction")
    p.add_argument("--pred", required=True, type=Path, help="predicted label map")
    p.add_argument("--truth", required=True, type=Path, help="reference label map")
    add_option_flags(p, EvaluateOptions)  # --classes, --no-surface, --match
    p.add_argument("--json", action="store_true", help="print JSON instead of a table")
    p.add_argument("--csv", type=Path, help="also write the table as CSV to this file")
    p.add_argument("--overwrite", action="store_true", help="replace an existing --csv file")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from napari_medseg.events import run_to_end
    from napari_medseg.io import read_label_map
    from napari_medseg.io.atomic import check_can_write
    from napari_medseg.metrics import evaluate_job

    if args.csv is not None:
        check_can_write(args.csv, overwrite=args.overwrite)
    options = options_from_args(EvaluateOptions, args)
    truth = read_label_map(args.truth)
    pred = read_label_map(args.pred)
    result = run_to_end(evaluate_job(pred, truth, options), TerminalProgress(quiet=args.json))
    print(result.to_json() if args.json else result.format_table())
    if args.csv is not None:
        result.write_csv(args.csv, overwrite=args.overwrite)
    return 0
