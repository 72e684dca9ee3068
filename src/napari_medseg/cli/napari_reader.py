"""``napari-medseg napari-reader [--set | --unset]``: napari's reader choice for medical files.

The first time the MedSeg dock (or ``napari-medseg view``) opens, napari-medseg becomes
napari's preferred reader for NIfTI, NRRD, MetaImage and DICOM files where the person chose
no other reader.  ``--unset`` removes those preferences and keeps them removed; ``--set``
adds them again; without either it lists the reader napari uses for each of these files.
"""

from __future__ import annotations

import argparse


def add_parser(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser(
        "napari-reader",
        help="show, set or unset napari-medseg as napari's reader for medical files",
    )
    what = p.add_mutually_exclusive_group()
    what.add_argument("--set", action="store_true",
                      help="make napari-medseg napari's reader for these files (where no "
                           "other reader was chosen)")
    what.add_argument("--unset", action="store_true",
                      help="remove napari-medseg's reader preferences and do not add them "
                           "again")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from napari_medseg._napari.preferred_reader import (
        PATTERNS,
        forget_medseg_reader,
        prefer_medseg_reader,
        readers_for,
    )

    if args.unset:
        removed = forget_medseg_reader()
        print(f"removed: {', '.join(removed) or 'nothing (none named napari-medseg)'}")
    elif args.set:
        added = prefer_medseg_reader(again=True)
        print(f"added: {', '.join(added) or 'nothing (already set, or chosen otherwise)'}")
    for pattern, reader in readers_for(PATTERNS).items():
        print(f"{pattern:10s} {reader or 'napari asks'}")
    return 0
