"""``napari-medseg view [SCAN ...]``: napari with the MedSeg widgets and a scan opened."""

from __future__ import annotations

import argparse
from pathlib import Path


def add_parser(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser(
        "view", help="open napari with the MedSeg widgets and a scan (a bundled sample by default)"
    )
    p.add_argument("scans", nargs="*", type=Path, help="scans or label files to open")
    p.add_argument(
        "--sample",
        default="ct_abdomen",
        choices=("ct_abdomen", "mr_brain_lesion", "mr_abdomen"),
        help="bundled sample opened when no scan is given",
    )
    p.add_argument("--screenshot", type=Path, help="save a screenshot of the window and exit")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from napari_medseg._napari.launch import view

    return view(list(args.scans), sample=args.sample, screenshot=args.screenshot)
