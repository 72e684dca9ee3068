"""``napari-medseg predict``: segment a scan with a model of the zoo or a checkpoint.

    napari-medseg predict --model NAME_OR_CHECKPOINT --input SCAN [--input SCAN2 ...]
        --output LABELS [--probabilities FILE] [--device D] [--tile Z Y X] [--overlap F]
        [--tta] [--batch N] [--slice-axis A] [--modality M] [--strict] [--overwrite]

``--output seg.dcm`` writes a DICOM-SEG on the input's DICOM series (the input must be one);
every label map gets its provenance record beside it (``LABELS.provenance.json``).

Several ``--input`` are the channels of a multi-modal model (on one grid); several
``--model`` form an ensemble.  The output has the first input's geometry.  Before running,
the segment job's fit check (:mod:`napari_medseg.inference.fit`) compares the scan with what
each model was trained on and its findings go to stderr; ``--strict`` refuses to run on a
warning (for a cohort: fails the cases that do not fit).

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

from napari_medseg.cli.options import add_option_flags, options_from_args
from napari_medseg.cli.progress import TerminalProgress
from napari_medseg.errors import MedsegError
from napari_medseg.io.atomic import check_can_write
from napari_medseg.io.formats import check_writable_suffix
from napari_medseg.scan import MODALITIES


def add_parser(subparsers: argparse._SubParsersAction) -> None:
    from napari_medseg.inference.segment import SegmentOptions

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
    add_option_flags(p, SegmentOptions)  # --device --tile --overlap --tta --batch ...
    p.add_argument("--series", help="DICOM series (index or UID) when a folder has several")
    p.add_argument("--modality", choices=MODALITIES,
                   help="the scans' modality, when headers and intensities do not tell it")
    p.add_argument("--overwrite", action="store_true", help="replace existing outputs")
    p.add_argument("--quiet", action="store_true", help="no progress output")
    p.set_defaults(func=run)


def segment_options(args: argparse.Namespace, **fixed: Any) -> Any:
    """The :class:`SegmentOptions` the flags ask for (``fixed``: e.g. a rank's device)."""
    from napari_medseg.inference.segment import SegmentOptions

    return options_from_args(SegmentOptions, args, models=tuple(args.model),
                             keep_probabilities=bool(args.probabilities), **fixed)


def run(args: argparse.Namespace) -> int:
    from napari_medseg import distributed
    from napari_medseg.events import run_to_end
    from napari_medseg.inference.segment import segment_job
    from napari_medseg.io import read_scan, write_label_map, write_probabilities
    from napari_medseg.io.write import PROBABILITY_SUFFIXES, check_label_target

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
    if args.probabilities and args.probabilities.suffix.lower() not in PROBABILITY_SUFFIXES:
        msg = "--probabilities must be a .nrrd or .mha file (one component per class)"
        raise MedsegError(msg)
    options = segment_options(args)
    scans = [read_scan(path, series=args.series, modality=args.modality) for path in args.input]
    check_label_target(args.output, overwrite=args.overwrite, reference=scans[0])  # .dcm: DICOM
    result = run_to_end(segment_job(scans, options, made_by="napari-medseg predict"),
                        TerminalProgress(quiet=args.quiet))
    write_label_map(result.labels, args.output, overwrite=args.overwrite, reference=scans[0],
                    provenance=result.provenance)
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


def run_cohort(args: argparse.Namespace) -> int:
    """``--input-list``: segment a cohort (this process's share of it, under torchrun)."""
    import datetime

    import torch

    from napari_medseg import distributed
    from napari_medseg.events import run_to_end
    from napari_medseg.inference.cohort import (
        CohortOptions,
        effective_shard,
        parse_shard,
        read_manifest,
        segment_cohort,
    )
    from napari_medseg.inference.segment import PredictorCache
    from napari_medseg.models.device import resolve_device

    if args.input_list is None or args.output_dir is None:
        msg = "a cohort needs both --input-list MANIFEST and --output-dir DIR"
        raise MedsegError(msg)
    if args.input or args.output or args.probabilities:
        msg = "--input/--output/--probabilities are for one scan; a cohort takes --input-list"
        raise MedsegError(msg)
    if args.modality:
        msg = ("--modality applies to one scan (--input); a cohort's scans are read with "
               "their own headers")
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
        segment = segment_options(args, device=device)
        options = CohortOptions(output_dir=args.output_dir, suffix=args.output_format,
                                overwrite=args.overwrite, series=args.series,
                                shard=effective_shard(shard, ctx), models=segment.models,
                                strict=segment.strict)
        predictor = PredictorCache().get(segment)
        report = run_to_end(segment_cohort(predictor, cases, segment.predict, options),
                            TerminalProgress(quiet=args.quiet))
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
