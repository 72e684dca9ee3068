"""``napari-medseg evaluate``: compare a predicted label map with a reference, per class.

    napari-medseg evaluate --pred P --truth T [--json] [--csv FILE] [--classes K ...]
        [--match auto|value|name] [--no-surface]

Prints Dice, IoU, HD95 and ASSD (mm) and volumes (ml) per class of the reference, with the
reference's class names and the prediction class matched to each (by name where both name
them, else by value; ``--match`` forces one), then the prediction's classes the reference
does not have.  Means cover the reference's classes present in either map, and the table
says which.  ``--json`` prints JSON instead of the table.  Both files must lie on one grid.
"""

from __future__ import annotations

import argparse
from pathlib import Path


def add_parser(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser("evaluate", help="Dice/IoU/HD95/ASSD/volumes of a prediction")
    p.add_argument("--pred", required=True, type=Path, help="predicted label map")
    p.add_argument("--truth", required=True, type=Path, help="reference label map")
    p.add_argument("--classes", type=int, nargs="+",
                   help="reference class values to report (default: every class of either "
                        "map and every class the reference names)")
    p.add_argument("--match", choices=("auto", "value", "name"), default="auto",
                   help="pair prediction and reference classes by name, then value (auto), "
                        "or by value or name only")
    p.add_argument("--json", action="store_true", help="print JSON instead of a table")
    p.add_argument("--csv", type=Path, help="also write the table as CSV to this file")
    p.add_argument("--no-surface", action="store_true", help="skip HD95/ASSD (faster)")
    p.add_argument("--overwrite", action="store_true", help="replace an existing --csv file")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from napari_medseg.io import read_label_map
    from napari_medseg.io.atomic import check_can_write
    from napari_medseg.metrics import evaluate

    if args.csv is not None:
        check_can_write(args.csv, overwrite=args.overwrite)
    truth = read_label_map(args.truth)
    pred = read_label_map(args.pred)
    result = evaluate(pred, truth, classes=args.classes, match=args.match,
                      surface=not args.no_surface)
    print(result.to_json() if args.json else result.format_table())
    if args.csv is not None:
        args.csv.write_text(result.to_csv(), encoding="utf-8")
    return 0
