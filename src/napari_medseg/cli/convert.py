"""``napari-medseg convert IN OUT``: any supported format to NIfTI/NRRD/MetaImage, geometry kept.

Label maps also convert to and from DICOM-SEG: ``convert labels.nii.gz seg.dcm --reference
SERIES_DIR`` writes a segmentation that references the DICOM series the labels lie on;
``convert seg.dcm labels.nrrd`` reads one back (``--reference`` places it on its series'
whole grid).  Class names, coded terms and the provenance record go along.

The work is the core's :func:`~napari_medseg.io.convert.convert_job`.
"""

from __future__ import annotations

import argparse

from napari_medseg.cli.options import add_option_flags, options_from_args
from napari_medseg.io.convert import ConvertOptions, convert


def add_parser(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser("convert", help="convert a scan or label file, geometry preserved")
    p.add_argument("input", help="scan/label file, DICOM-SEG file or DICOM folder")
    p.add_argument("output", help="output file (.nii.gz, .nii, .nrrd, .nhdr, .mha, .mhd; "
                                  "label maps also .dcm: DICOM-SEG, with --reference)")
    # --series --labels --nan --overwrite --reference --reference-series
    add_option_flags(p, ConvertOptions)
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    result = convert(args.input, args.output, options_from_args(ConvertOptions, args))
    spacing = tuple(round(s, 4) for s in result.spacing)
    line = f"wrote {result.kind} {result.path} {result.shape}, spacing {spacing}"
    if result.kind == "label map":
        line += f", {result.n_classes} class(es) named"
    print(line + "".join(f"; {note}" for note in result.notes))
    return 0
