"""``napari-medseg convert IN OUT``: any supported format to NIfTI/NRRD/MetaImage, geometry kept.

The work is the core's :func:`~napari_medseg.io.convert.convert_job`.
"""

from __future__ import annotations

import argparse

from napari_medseg.cli.options import add_option_flags, options_from_args
from napari_medseg.io.convert import ConvertOptions, convert


def add_parser(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser("convert", help="convert a scan or label file, geometry preserved")
    p.add_argument("input", help="scan/label file or DICOM folder")
    p.add_argument("output", help="output file (.nii.gz, .nii, .nrrd, .nhdr, .mha, .mhd)")
    add_option_flags(p, ConvertOptions)  # --series --labels --nan --overwrite
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    result = convert(args.input, args.output, options_from_args(ConvertOptions, args))
    spacing = tuple(round(s, 4) for s in result.spacing)
    print(f"wrote {result.kind} {result.path} {result.shape}, spacing {spacing}")
    return 0
