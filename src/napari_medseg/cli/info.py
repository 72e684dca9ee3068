"""``napari-medseg info SCAN [--json]``: shape, dtype, spacing, origin, direction, modality.

For a label file it also shows its segments (name and coded term) and its provenance record
(the sidecar ``<file>.provenance.json``: model, scan, options, edits, software, time), and
whether the sidecar still matches the file; a DICOM-SEG is read onto its series' grid.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Any

import numpy as np

from napari_medseg.io import list_dicom_series, read_label_file, read_label_map, read_scan
from napari_medseg.io.dicom_seg_read import is_dicom_seg
from napari_medseg.io.formats import Format, detect_format
from napari_medseg.io.read import LabelFile
from napari_medseg.io.sidecar import sidecar_path
from napari_medseg.scan import Scan


def add_parser(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser("info", help="describe a scan or label file: grid, geometry, "
                                           "modality, segments, provenance")
    p.add_argument("scan", help="scan or label file, DICOM-SEG file or DICOM folder")
    p.add_argument("--json", action="store_true", help="print one JSON object")
    p.add_argument("--series", help="DICOM series to read (index or UID) when a folder has several")
    p.add_argument(
        "--like", metavar="SCAN", help="treat SCAN's grid as the reference: fail if they differ"
    )
    p.add_argument("--reference", metavar="SERIES_DIR",
                   help="a DICOM-SEG: the series to place it on (default: the grid recorded "
                        "beside it, else the one its frames span)")
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


def describe_labels(found: LabelFile) -> dict[str, Any]:
    """Segments, provenance and sidecar state of a label file, as plain data."""
    labels = found.labels
    counts = np.bincount(labels.array.ravel().astype(np.int64)) if labels.array.size and (
        labels.array.min() >= 0 and labels.array.max() <= 65535) else None
    segments = []
    for value, name in sorted(labels.class_names.items()):
        if value == 0:
            continue
        entry: dict[str, Any] = {"value": value, "name": name}
        if value in found.terms:
            entry["term"] = found.terms[value].to_dict()
            entry["code"] = found.terms[value].describe()
        if counts is not None:
            entry["voxels"] = int(counts[value]) if value < counts.size else 0
        segments.append(entry)
    sidecar = found.sidecar
    return {
        "kind": "DICOM-SEG" if found.is_dicom_seg else "label map",
        "segments": segments,
        "provenance": None if found.provenance is None else found.provenance.to_dict(),
        "sidecar": None if sidecar is None else {
            "path": str(sidecar_path(labels.source)) if labels.source else None,
            "matches_file": sidecar.matches(labels)},
        "sidecar_problem": found.sidecar_problem or None,
    }


def run(args: argparse.Namespace) -> int:
    path = Path(args.scan)
    if detect_format(path) is Format.DICOM and args.series is None and path.is_dir():
        series = list_dicom_series(path)
        if len(series) > 1 and not args.json:
            for i, s in enumerate(series):
                print(f"[{i}] {s.label()}  uid={s.uid}")
            print("choose one with --series INDEX")
            return 0
    found = None
    if is_dicom_seg(path):
        found = read_label_file(path, reference=args.reference)
        labels = found.labels
        scan = Scan(array=labels.array, geometry=labels.geometry, source=path)
    else:
        scan = read_scan(path, series=args.series, nan_policy=args.nan)
        if sidecar_path(path).is_file() or (path.is_file() and "medseg_class_names" in
                                             scan.metadata):
            found = read_label_file(path)
    if args.like:
        read_label_map(path, series=args.series, like=read_scan(args.like))
    info = describe(scan)
    if found is not None:
        info.update(describe_labels(found))
        if found.is_dicom_seg:
            info["modality"] = "SEG"
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
    if found is not None:
        _print_labels(info, found)
    return 0


def _print_labels(info: dict[str, Any], found: LabelFile) -> None:
    print(f"  kind       {info['kind']}, {len(info['segments'])} segment(s)")
    for seg in info["segments"]:
        voxels = f", {seg['voxels']} voxels" if "voxels" in seg else ""
        print(f"    {seg['value']:>5}  {seg['name']}  {seg.get('code', '')}{voxels}")
    if found.sidecar_problem:
        print(f"  sidecar    {found.sidecar_problem}")
    elif info["sidecar"] is not None and not info["sidecar"]["matches_file"]:
        print("  sidecar    does NOT match the file: the labels changed after it was written")
    if found.provenance is None:
        print("  provenance none recorded")
        return
    print("  provenance")
    for line in found.provenance.describe():
        print(f"    {line}")


def _fmt(values: list[float]) -> str:
    return "(" + ", ".join(f"{v:.6g}" for v in values) + ")"
