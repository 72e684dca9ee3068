"""``napari-medseg predict``: segment a scan with a model of the zoo or a checkpoint.

    napari-medseg predict --model NAME_OR_CHECKPOINT --input SCAN [--input SCAN2 ...]
        --output LABELS [--probabilities FILE] [--device D] [--tile Z Y X] [--overlap F]
        [--tta] [--batch N] [--slice-axis A] [--overwrite]

Several ``--input`` are the channels of a multi-modal model (on one grid); several
``--model`` form an ensemble.  The output has the first input's geometry.
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np

from napari_medseg.cli.progress import TerminalProgress
from napari_medseg.errors import MedsegError
from napari_medseg.io.atomic import check_can_write
from napari_medseg.io.formats import check_writable_suffix


def add_parser(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser("predict", help="segment a scan with a model or a checkpoint")
    p.add_argument("--model", action="append", required=True,
                   help="starter model name or checkpoint file; repeat for an ensemble")
    p.add_argument("--input", action="append", required=True,
                   help="scan (file or DICOM folder); repeat for multi-channel models")
    p.add_argument("--output", required=True, type=Path, help="label map to write")
    p.add_argument("--probabilities", type=Path,
                   help="also write per-class probabilities (multi-component .nrrd/.mha)")
    p.add_argument("--device", default="auto", help="auto (default), cpu, cuda, cuda:N, mps")
    p.add_argument("--tile", type=int, nargs="+", help="window size in voxels (Z Y X or Y X)")
    p.add_argument("--overlap", type=float, default=0.5, help="window overlap (default 0.5)")
    p.add_argument("--tta", action="store_true", help="mirroring test-time augmentation")
    p.add_argument("--batch", type=int, default=None,
                   help="windows per forward pass (default: planned from free memory)")
    p.add_argument("--combine", choices=("mean", "vote"), default="mean",
                   help="how ensemble members are combined")
    p.add_argument("--slice-axis", type=int, choices=(0, 1, 2),
                   help="2D models on 3D scans: array axis to slice along (0 = axial)")
    p.add_argument("--context-slices", type=int, default=0,
                   help="2.5D: neighbouring slices per side given as channels")
    p.add_argument("--largest-component", action="store_true",
                   help="keep the largest connected component of each class")
    p.add_argument("--fill-holes", action="store_true", help="fill holes in each class")
    p.add_argument("--min-size", type=int, default=0, help="drop components below N voxels")
    p.add_argument("--no-resample", action="store_true",
                   help="do not resample to the model's spacing")
    p.add_argument("--series", help="DICOM series (index or UID) when a folder has several")
    p.add_argument("--overwrite", action="store_true", help="replace existing outputs")
    p.add_argument("--quiet", action="store_true", help="no progress output")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from napari_medseg.events import run_to_end
    from napari_medseg.inference import PostprocessOptions, PredictOptions, Predictor
    from napari_medseg.io import read_scan, write_label_map

    outputs = [args.output] + ([args.probabilities] if args.probabilities else [])
    for out in outputs:  # fail before any work
        check_writable_suffix(out)
        check_can_write(out, overwrite=args.overwrite)
    if args.probabilities and args.probabilities.suffix.lower() not in (".nrrd", ".mha"):
        msg = "--probabilities must be a .nrrd or .mha file (one component per class)"
        raise MedsegError(msg)
    scans = [read_scan(path, series=args.series) for path in args.input]
    predictor = Predictor.load(args.model, device=args.device, combine=args.combine)
    options = PredictOptions(
        device=args.device,
        tile=tuple(args.tile) if args.tile else None,
        overlap=args.overlap,
        batch_size=args.batch,
        tta=args.tta,
        slice_axis=args.slice_axis,
        context_slices=args.context_slices,
        keep_probabilities=bool(args.probabilities),
        resample=not args.no_resample,
        postprocess=PostprocessOptions(largest_component=args.largest_component,
                                       fill_holes=args.fill_holes, min_size=args.min_size),
    )
    result = run_to_end(predictor.predict_job(scans, options), TerminalProgress(quiet=args.quiet))
    write_label_map(result.labels, args.output, overwrite=args.overwrite)
    if args.probabilities and result.probabilities is not None:
        write_probabilities(result.probabilities, result.labels.geometry, args.probabilities,
                            overwrite=args.overwrite)
    if not args.quiet:
        counts = np.bincount(result.labels.array.ravel())
        classes = ", ".join(
            f"{result.labels.class_names.get(i, i)}: {n}" for i, n in enumerate(counts) if n and i
        )
        print(f"wrote {args.output} ({result.seconds:.1f} s on {result.device}; {classes})")
    return 0


def write_probabilities(probabilities: np.ndarray, geometry: object, path: Path, *,
                        overwrite: bool) -> Path:
    """Per-class probabilities as one multi-component image on the scan's grid."""
    import SimpleITK as sitk

    from napari_medseg.io.atomic import write_atomically
    from napari_medseg.io.itk import apply_geometry

    image = sitk.GetImageFromArray(np.moveaxis(probabilities.astype(np.float32), 0, -1),
                                   isVector=True)
    apply_geometry(image, geometry)  # type: ignore[arg-type]

    def write(tmp: Path) -> None:
        sitk.WriteImage(image, str(tmp), useCompression=True)

    return write_atomically(path, write, overwrite=overwrite)
