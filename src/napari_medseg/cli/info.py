"""``napari-medseg info SCAN [--json]``: shape, dtype, spacing, origin, direction, modality."""

from __future__ import annotations

import argparse
import json
from typing import Any

import numpy as np

from napari_medseg.io import list_dicom_series, read_label_map, read_scan
from napari_medseg.io.formats import Format, detect_format
from napari_medseg.scan import Scan


def add_parser(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser("info", help="describe a scan: grid, geometry, modality")
    p.add_argument("scan", help="scan file or DICOM folder")
    p.add_argument("--json", action="store_true", help="print one JSON object")
    p.add_argument("--series", help="DICOM series to read (index or UID) when a folder has several")
    p.add_argument(
        "--like", metavar="SCAN", help="treat SCAN's grid as the reference: fail if they differ"
    )
    p.add_argument("--nan", choices=("raise", "fill"), default="raise", help="NaN/inf voxels")
    p.set_defaults(func=run)


def describe(scan: Scan) -> dict[str, Any]:
    """What ``info`` prints, as plain data."""
    finite = scan.array
    return {
        "source": str(scan.source) if scan.source else None,
        "shape": list(scan.shape),
        "axes": "ZYX"[-scan.ndim :],
        "dtype": str(scan.array.dtype),
        "spacing_mm": list(scan.geometry.spacing),
        "origin_mm": list(scan.geometry.origin),
        "direction": scan.geometry.direction.tolist(),
        "modality": scan.modality,
        "min": float(np.min(finite)) if finite.size else None,
        "max": float(np.max(finite)) if finite.size else None,
    }


def run(args: argparse.Namespace) -> int:
    from pathlib import Path

    path = Path(args.scan)
    if detect_format(path) is Format.DICOM and args.series is None and path.is_dir():
        series = list_dicom_series(path)
        if len(series) > 1 and not args.json:
            for i, s in enumerate(series):
                print(f"[{i}] {s.label()}  uid={s.uid}")
            print("choose one with --series INDEX")
            return 0
    scan = read_scan(path, series=args.series, nan_policy=args.nan)
    if args.like:
        read_label_map(path, series=args.series, like=read_scan(args.like))
    info = describe(scan)
    if args.json:
        print(json.dumps(info))
        return 0
    print(f"{info['source']}")
    print(f"  shape      {tuple(info['shape'])} ({info['axes']}), {info['dtype']}")
    print(f"  spacing    {_fmt(info['spacing_mm'])} mm")
    print(f"  origin     {_fmt(info['origin_mm'])} mm (LPS, z y x)")
    print("  direction  " + "\n             ".join(_fmt(r) for r in info["direction"]))
    print(f"  modality   {info['modality']}")
    print(f"  range      {info['min']:.6g} .. {info['max']:.6g}")
    return 0


def _fmt(values: list[float]) -> str:
    return "(" + ", ".join(f"{v:.6g}" for v in values) + ")"
