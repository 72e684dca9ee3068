"""``napari-medseg fuse``: put a moving scan on a fixed scan's grid and fuse the two.

    napari-medseg fuse --fixed A --moving B [--register none|rigid|affine|bspline]
        [--method weighted|pca|laplacian|wavelet|guided] --output FUSED
        [--transform-out T.tfm] [--resampled-out B_ON_A] [--transform-in T.tfm]
        [--moving-labels L --labels-out L_ON_A] [--quality] [--overwrite]

Every output path is checked before any work starts, so a run that fails (bad input, a
registration that does not converge, an existing output) writes nothing.  The work is the
core's :func:`~napari_medseg.fusion.register_and_fuse_job`; this verb turns flags into its
options and its result into files.
"""

from __future__ import annotations

import argparse
from pathlib import Path

from napari_medseg.cli.progress import TerminalProgress
from napari_medseg.errors import FusionError, OutputExistsError
from napari_medseg.events import run_to_end
from napari_medseg.fusion import (
    FUSION_METHODS,
    INITIALISATIONS,
    NORMALISATIONS,
    REGISTRATION_KINDS,
    FusionOptions,
    RegisterFuseOptions,
    RegistrationOptions,
    load_transform,
    register_and_fuse_job,
    save_transform,
)
from napari_medseg.fusion.transforms import TRANSFORM_SUFFIXES
from napari_medseg.io import read_label_map, read_scan, write_label_map, write_scan
from napari_medseg.io.atomic import check_can_write
from napari_medseg.io.formats import check_writable_suffix


def add_parser(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser(
        "fuse",
        help="register a moving scan onto a fixed one and fuse them",
        description=(
            "Put MOVING on FIXED's grid (by the headers, or after rigid/affine/B-spline "
            "registration with mutual information) and write the pixel-level fusion."
        ),
    )
    p.add_argument("--fixed", required=True, help="reference scan (its grid is kept)")
    p.add_argument("--moving", required=True, help="scan to put on the fixed grid")
    p.add_argument(
        "--register",
        choices=REGISTRATION_KINDS,
        default="none",
        help="registration kind (default: none, trust the headers)",
    )
    p.add_argument(
        "--init",
        choices=INITIALISATIONS,
        default="moments",
        help="initialisation of the registration (default: moments)",
    )
    p.add_argument("--transform-in", metavar="T", help="apply this saved transform, no search")
    p.add_argument("--method", choices=FUSION_METHODS, default="weighted", help="fusion rule")
    p.add_argument(
        "--normalisation",
        choices=NORMALISATIONS,
        default="percentile",
        help="per-scan intensity normalisation before fusing (default: percentile 1-99)",
    )
    p.add_argument(
        "--weights", type=float, nargs=2, metavar=("W_FIXED", "W_MOVING"), help="weighted"
    )
    p.add_argument("--levels", type=int, default=4, help="laplacian/wavelet levels (4)")
    p.add_argument("--detail-rule", choices=("max", "average"), default="max",
                   help="laplacian/wavelet detail coefficients: largest magnitude or average")
    p.add_argument("--wavelet", default="db2", help="PyWavelets wavelet name (db2)")
    p.add_argument("--output", required=True, metavar="FUSED", help="fused scan to write")
    p.add_argument("--transform-out", metavar="T", help="write the transform (.tfm/.h5)")
    p.add_argument("--resampled-out", metavar="B_ON_A", help="write the moving scan on the grid")
    p.add_argument("--moving-labels", metavar="L", help="label map in the moving scan's space")
    p.add_argument("--labels-out", metavar="L_ON_A", help="write those labels on the fixed grid")
    p.add_argument("--quality", action="store_true", help="print fusion quality metrics")
    p.add_argument("--overwrite", action="store_true", help="replace existing outputs")
    p.add_argument("--quiet", action="store_true", help="no progress lines")
    p.set_defaults(func=run)


def _check_outputs(args: argparse.Namespace) -> None:
    if bool(args.moving_labels) != bool(args.labels_out):
        msg = "--moving-labels and --labels-out go together"
        raise FusionError(msg)
    if args.transform_in and args.register != "none":
        msg = "--transform-in applies a saved transform: use it with --register none"
        raise FusionError(msg)
    images = [args.output, args.resampled_out, args.labels_out]
    paths = [Path(p) for p in images if p]
    for path in paths:
        check_writable_suffix(path)
        check_can_write(path, overwrite=args.overwrite)
    if args.transform_out:
        t = Path(args.transform_out)
        if t.suffix.lower() not in TRANSFORM_SUFFIXES:
            msg = f"--transform-out must end in one of {', '.join(TRANSFORM_SUFFIXES)}"
            raise FusionError(msg)
        if t.exists() and not args.overwrite:
            msg = f"{t} already exists; choose another name or pass --overwrite"
            raise OutputExistsError(msg)
        paths.append(t)
    resolved = [p.resolve() for p in paths]
    inputs = {Path(p).resolve() for p in (args.fixed, args.moving, args.moving_labels) if p}
    if len(set(resolved)) != len(resolved) or inputs & set(resolved):
        msg = "output paths must differ from each other and from the inputs"
        raise FusionError(msg)


def fuse_options(args: argparse.Namespace) -> RegisterFuseOptions:
    """The core job's options the flags ask for (a saved transform is read here)."""
    return RegisterFuseOptions(
        registration=RegistrationOptions(kind=args.register, initialisation=args.init),
        transform=load_transform(args.transform_in) if args.transform_in else None,
        fusion=FusionOptions(
            method=args.method,
            normalisation=args.normalisation,
            weights=tuple(args.weights) if args.weights else None,
            levels=args.levels,
            detail_rule=args.detail_rule,
            wavelet=args.wavelet,
        ),
        quality=args.quality,
    )


def run(args: argparse.Namespace) -> int:
    _check_outputs(args)
    options = fuse_options(args)
    fixed = read_scan(args.fixed)
    moving = read_scan(args.moving)
    labels = read_label_map(args.moving_labels) if args.moving_labels else None
    result = run_to_end(register_and_fuse_job(fixed, moving, options, moving_labels=labels),
                        TerminalProgress(quiet=args.quiet))
    reg = result.registration
    if reg is not None and args.register != "none":
        print(
            f"registered ({args.register}): metric {reg.initial_metric:.4f} -> "
            f"{reg.final_metric:.4f} (Mattes MI, lower is better), "
            f"{reg.iterations} iterations, {reg.elapsed_s:.1f} s"
        )
    fused = result.fused
    assert fused is not None  # the CLI always fuses
    if args.transform_out:
        save_transform(result.transform, args.transform_out, overwrite=args.overwrite)
    if args.resampled_out:
        write_scan(result.resampled, args.resampled_out, overwrite=args.overwrite)
    if result.labels is not None:
        write_label_map(result.labels, args.labels_out, overwrite=args.overwrite)
    out = write_scan(fused, args.output, overwrite=args.overwrite)
    print(f"wrote fused scan {out} {fused.shape} ({args.method})")
    if result.quality is not None:
        q = result.quality
        print(
            f"quality: entropy {q.entropy:.3f} bits, MI {q.mutual_information_total:.3f} bits "
            f"(fixed {q.mutual_information[0]:.3f}, moving {q.mutual_information[1]:.3f}), "
            f"Q^AB/F {q.qabf:.3f}, SSIM fixed {q.ssim[0]:.3f}, moving {q.ssim[1]:.3f}"
        )
    return 0
