"""``napari-medseg predict``: segment a scan with a model of the zoo or a checkpoint.

    napari-medseg predict --model NAME_OR_CHECKPOINT --input SCAN [--input SCAN2 ...]
        --output LABELS [--probabilities FILE] [--device D] [--tile Z Y X] [--overlap F]
        [--tta] [--batch N] [--slice-axis A] [--overwrite]

``--output seg.dcm`` writes a DICOM-SEG on the input's DICOM series (the input must be one);
every label map gets its provenance record beside it (``LABELS.provenance.json``).

Several ``--input`` are the channels of a multi-modal model (on one grid); several
``--model`` form an ensemble.  The output has the first input's geometry.

A cohort: ``--input-list MANIFEST --output-dir DIR`` (a CSV/JSON/text manifest or a folder of
scans, see :mod:`napari_medseg.inference.cohort`) segments every case with the model loaded
once, skips cases whose output exists (restart), records failures and writes
``DIR/summary.json`` and ``.csv``.  Under ``torchrun --nproc_per_node N`` each process takes
every N-th case; ``--shard I/N`` does the same for other launchers (a Slurm array).
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

import numpy as np

from napari_medseg.cli.progress import TerminalProgress
from napari_medseg.errors import MedsegError
from napari_medseg.io.atomic import check_can_write
from napari_medseg.io.formats import check_writable_suffix


def add_parser(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser("predict", help="segment a scan with a model or a checkpoint")
    p.add_argument("--model", action="append", required=True,
                   help="starter model name or checkpoint file; repeat for an ensemble")
    p.add_argument("--input", action="append",
                   help="scan (file or DICOM folder); repeat for multi-channel models")
    p.add_argument("--output", type=Path,
                   help="label map to write (.nii.gz, .nrrd, .mha...; .dcm: DICOM-SEG on the "
                        "input DICOM series)")
    p.add_argument("--input-list", type=Path, metavar="MANIFEST",
                   help="a cohort: CSV/JSON/text manifest or folder of scans (with --output-dir)")
    p.add_argument("--output-dir", type=Path, help="cohort: folder of the label maps and summary")
    p.add_argument("--output-format", default=".nii.gz",
                   help="cohort: suffix of the label maps (default .nii.gz)")
    p.add_argument("--shard", metavar="I/N",
                   help="cohort: take cases k with k %% N == I (e.g. $SLURM_ARRAY_TASK_ID/N)")
    p.add_argument("--threads", type=int,
                   help="CPU threads for torch (under torchrun: cores / processes)")
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
    from napari_medseg import distributed
    from napari_medseg.events import run_to_end
    from napari_medseg.inference import Predictor
    from napari_medseg.io import read_scan, write_label_map
    from napari_medseg.io.write import check_label_target
    from napari_medseg.provenance import prediction_record

    if args.input_list is not None or args.output_dir is not None:
        return run_cohort(args)
    if not args.input or args.output is None:
        msg = ("give --input SCAN and --output LABELS (one scan), or --input-list MANIFEST and "
               "--output-dir DIR (a cohort)")
        raise MedsegError(msg)
    if args.shard or distributed.from_environment().is_distributed:
        msg = ("one scan is segmented by one process; --shard and torchrun share out a cohort: "
               "give --input-list MANIFEST --output-dir DIR")
        raise MedsegError(msg)
    if args.threads:
        import torch

        torch.set_num_threads(args.threads)
    outputs = [args.output] + ([args.probabilities] if args.probabilities else [])
    for out in outputs:  # fail before any work
        check_writable_suffix(out, labels=out is args.output)
        check_can_write(out, overwrite=args.overwrite)
    if args.probabilities and args.probabilities.suffix.lower() not in (".nrrd", ".mha"):
        msg = "--probabilities must be a .nrrd or .mha file (one component per class)"
        raise MedsegError(msg)
    scans = [read_scan(path, series=args.series) for path in args.input]
    check_label_target(args.output, overwrite=args.overwrite, reference=scans[0])  # .dcm: DICOM
    predictor = Predictor.load(args.model, device=args.device, combine=args.combine)
    options = predict_options(args, args.device)
    result = run_to_end(predictor.predict_job(scans, options), TerminalProgress(quiet=args.quiet))
    record = prediction_record(scans, args.model, options, made_by="napari-medseg predict",
                               labels=result.labels)
    write_label_map(result.labels, args.output, overwrite=args.overwrite, reference=scans[0],
                    provenance=record)
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


def predict_options(args: argparse.Namespace, device: str) -> Any:
    from napari_medseg.inference import PostprocessOptions, PredictOptions

    return PredictOptions(
        device=device,
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


def run_cohort(args: argparse.Namespace) -> int:
    """``--input-list``: segment a cohort (this process's share of it, under torchrun)."""
    import datetime

    import torch

    from napari_medseg import distributed
    from napari_medseg.events import run_to_end
    from napari_medseg.inference import Predictor, resolve_device
    from napari_medseg.inference.cohort import (
        CohortOptions,
        effective_shard,
        parse_shard,
        read_manifest,
        segment_cohort,
    )

    if args.input_list is None or args.output_dir is None:
        msg = "a cohort needs both --input-list MANIFEST and --output-dir DIR"
        raise MedsegError(msg)
    if args.input or args.output or args.probabilities:
        msg = "--input/--output/--probabilities are for one scan; a cohort takes --input-list"
        raise MedsegError(msg)
    cases = read_manifest(args.input_list)
    if args.input_list.resolve() == args.output_dir.resolve():
        msg = "--output-dir must not be the folder of input scans; choose another folder"
        raise MedsegError(msg)
    shard = parse_shard(args.shard) if args.shard else (0, 1)
    # the group only serves the final barrier (gloo); ranks may finish hours apart
    with distributed.process_group(backend="gloo", timeout=datetime.timedelta(days=1)) as ctx:
        threads = args.threads or distributed.threads_per_process(ctx)
        if threads:
            torch.set_num_threads(threads)
        device = str(distributed.device_for_rank(resolve_device(args.device), ctx))
        options = CohortOptions(output_dir=args.output_dir, suffix=args.output_format,
                                overwrite=args.overwrite, series=args.series,
                                shard=effective_shard(shard, ctx))
        predictor = Predictor.load(args.model, device=device, combine=args.combine)
        report = run_to_end(segment_cohort(predictor, cases, predict_options(args, device),
                                           options), TerminalProgress(quiet=args.quiet))
    failed = [r for r in report.results if r.status == "failed"]
    if report.summary is None:  # a torchrun rank > 0, or a shard finishing before others
        if not args.quiet and not ctx.is_distributed:
            print(f"shard {options.shard[0]}/{options.shard[1]}: {len(report.results)} case(s), "
                  f"{len(failed)} failed; the last shard to finish writes summary.json")
        return 1 if failed and not ctx.is_distributed else 0
    totals = report.summary["totals"]
    if not args.quiet:
        print(f"{totals['done']} case(s) segmented, {totals['skipped']} skipped (output "
              f"existed), {totals['failed']} failed, of {totals['cases']} in "
              f"{totals['wall_seconds']:.0f} s ({totals['cases_per_min']:.1f} cases/min); "
              f"summary: {report.summary_path}")
    for case in report.summary["cases"]:
        if case["status"] == "failed":
            print(f"failed: {case['case_id']}: {case['error']}", file=sys.stderr)
    return 1 if totals["failed"] else 0


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
