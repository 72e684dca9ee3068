"""``napari-medseg convert IN OUT``: any supported format to NIfTI/NRRD/MetaImage, geometry kept.

Label maps also convert to and from DICOM-SEG: ``convert labels.nii.gz seg.dcm --reference
SERIES_DIR`` writes a segmentation that references the DICOM series the labels lie on;
``convert seg.dcm labels.nrrd`` reads one back (``--reference`` places it on its series'
whole grid).  Class names, coded terms and the provenance record go along.
"""

from __future__ import annotations

import argparse
from pathlib import Path

from napari_medseg.errors import MedsegError
from napari_medseg.io import (
    looks_like_label_map,
    read_label_file,
    read_scan,
    write_label_map,
    write_scan,
)
from napari_medseg.io.dicom_seg import absent_classes
from napari_medseg.io.dicom_seg_read import is_dicom_seg
from napari_medseg.io.formats import suffix_of
from napari_medseg.io.write import check_label_target
from napari_medseg.provenance import conversion_record


def add_parser(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser("convert", help="convert a scan or label file, geometry preserved")
    p.add_argument("input", help="scan/label file, DICOM-SEG file or DICOM folder")
    p.add_argument("output", help="output file (.nii.gz, .nii, .nrrd, .nhdr, .mha, .mhd; "
                                  "label maps also .dcm: DICOM-SEG, with --reference)")
    p.add_argument("--series", help="DICOM series (index or UID) when a folder has several")
    p.add_argument("--labels", action="store_true", help="treat the input as a label map")
    p.add_argument("--reference", metavar="SERIES_DIR",
                   help="the DICOM series the labels lie on (needed to write DICOM-SEG; "
                        "places a DICOM-SEG input on its series' grid)")
    p.add_argument("--reference-series", metavar="INDEX_OR_UID",
                   help="the series in --reference when that folder holds several")
    p.add_argument("--overwrite", action="store_true", help="replace OUTPUT if it exists")
    p.add_argument("--nan", choices=("raise", "fill"), default="raise", help="NaN/inf voxels")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    source, target = Path(args.input), Path(args.output)
    to_seg = suffix_of(target) == ".dcm"
    from_seg = source.is_file() and is_dicom_seg(source)
    if to_seg or from_seg or args.labels:
        return convert_labels(args, source, target)
    scan = read_scan(source, series=args.series, nan_policy=args.nan)
    if looks_like_label_map(scan.array, scan.name):
        return convert_labels(args, source, target)
    if args.reference:
        msg = "--reference is for label maps (DICOM-SEG); a scan converts without it"
        raise MedsegError(msg)
    out = write_scan(scan, target, overwrite=args.overwrite)
    print(f"wrote scan {out} {scan.shape}, spacing {tuple(round(s, 4) for s in scan.spacing)}")
    return 0


def convert_labels(args: argparse.Namespace, source: Path, target: Path) -> int:
    """A label file (DICOM-SEG included) to another format, names, terms and record kept."""
    to_seg = suffix_of(target) == ".dcm"
    if to_seg and not args.reference:
        msg = (f"writing {target.name} as DICOM-SEG needs the DICOM series the labels lie on: "
               "add --reference SERIES_DIR (the folder of the scan they were made on)")
        raise MedsegError(msg)
    check_label_target(target, overwrite=args.overwrite,
                       reference=args.reference if to_seg else None,
                       series=args.reference_series)
    from_seg = source.is_file() and is_dicom_seg(source)
    if args.reference and not (to_seg or from_seg):
        msg = "--reference is for DICOM-SEG input or output (.dcm); drop it for other formats"
        raise MedsegError(msg)
    found = read_label_file(source, series=args.series,
                            reference=args.reference if from_seg else None)
    labels = found.labels
    record = conversion_record(source, labels, found.provenance, made_by="napari-medseg convert")
    out = write_label_map(labels, target, overwrite=args.overwrite,
                          reference=args.reference if to_seg else None,
                          series=args.reference_series, terms=found.terms, provenance=record)
    classes = sum(1 for value in labels.class_names if value)
    notes = [found.sidecar_problem] if found.sidecar_problem else []
    if to_seg:
        absent = absent_classes(labels)
        if absent:
            notes.append("not written, no voxel: " + ", ".join(
                f"{v} ({labels.class_names[v]})" for v in absent))
    print(f"wrote label map {out} {labels.shape}, spacing "
          f"{tuple(round(s, 4) for s in labels.geometry.spacing)}, {classes} class(es) named"
          + "".join(f"; {n}" for n in notes))
    return 0
