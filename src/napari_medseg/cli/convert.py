"""``napari-medseg convert IN OUT``: any supported format to NIfTI/NRRD/MetaImage, geometry kept."""

from __future__ import annotations

import argparse

from napari_medseg.io import (
    looks_like_label_map,
    read_label_map,
    read_scan,
    write_label_map,
    write_scan,
)


def add_parser(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser("convert", help="convert a scan or label file, geometry preserved")
    p.add_argument("input", help="scan/label file or DICOM folder")
    p.add_argument("output", help="output file (.nii.gz, .nii, .nrrd, .nhdr, .mha, .mhd)")
    p.add_argument("--series", help="DICOM series (index or UID) when a folder has several")
    p.add_argument("--labels", action="store_true", help="treat the input as a label map")
    p.add_argument("--overwrite", action="store_true", help="replace OUTPUT if it exists")
    p.add_argument("--nan", choices=("raise", "fill"), default="raise", help="NaN/inf voxels")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    scan = read_scan(args.input, series=args.series, nan_policy=args.nan)
    if args.labels or looks_like_label_map(scan.array, scan.name):
        labels = read_label_map(args.input, series=args.series)
        out = write_label_map(labels, args.output, overwrite=args.overwrite)
        kind = "label map"
    else:
        out = write_scan(scan, args.output, overwrite=args.overwrite)
        kind = "scan"
    print(f"wrote {kind} {out} {scan.shape}, spacing {tuple(round(s, 4) for s in scan.spacing)}")
    return 0
