"""Intensity-based registration of a moving scan onto a fixed scan (SimpleITK).

The metric is Mattes mutual information, so the two scans may have different contrasts
(T1/T2, CT/MR).  Each kind runs its stages coarse to fine (``shrink_factors``):

* ``"none"``   - no optimisation: the headers (origin, spacing, direction) place the scans;
* ``"rigid"``  - rotation + translation (Euler transform), initialised by ``initialisation``;
* ``"affine"`` - the rigid stage, then a full affine stage started from it;
* ``"bspline"``- rigid and affine, then a cubic B-spline free-form deformation.

The transform found maps *fixed* world points to *moving* world points (ITK's convention,
:mod:`napari_medseg.fusion.transforms`); the moving scan resampled onto the fixed grid comes
with it, and :meth:`RegistrationResult.resample_labels` carries label maps along with
nearest-neighbour interpolation.

Failure policy: a registration that cannot run (no overlap, an image without contrast, all
samples mapped outside the moving scan) or that does not converge (final metric not finite,
worse than the starting one, or above ``max_final_metric``) raises
:class:`~napari_medseg.errors.RegistrationError`, whose message and ``final_metric`` give the
metric value reached.  Inputs are never modified and nothing is written.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import numpy as np
import SimpleITK as sitk

from napari_medseg.errors import RegistrationError
from napari_medseg.events import Event, Job, Log, Progress, run_to_end
from napari_medseg.fusion.transforms import identity_transform, save_transform
from napari_medseg.geometry.grid import (
    Grid,
    check_overlap,
    check_same_ndim,
    overlap_fraction,
    physical_extent,
)
from napari_medseg.geometry.resample import Interpolation, reference_image, resample_to
from napari_medseg.io.itk import scan_to_sitk
from napari_medseg.scan import LabelMap, Scan

RegistrationKind = Literal["none", "rigid", "affine", "bspline"]
Initialisation = Literal["moments", "geometry", "identity"]

REGISTRATION_KINDS: tuple[str, ...] = ("none", "rigid", "affine", "bspline")
INITIALISATIONS: tuple[str, ...] = ("moments", "geometry", "identity")


@dataclass(frozen=True, kw_only=True)
class RegistrationOptions:
    """How to register.  Defaults suit two 1 mm brain MRIs; all fields keyword-only.

    Attributes
    ----------
    kind
        ``"none"``, ``"rigid"``, ``"affine"`` or ``"bspline"`` (see the module docstring).
    initialisation
        Start of the rigid stage: ``"moments"`` (centres of mass and principal axes of the
        intensities), ``"geometry"`` (centres of the two fields of view) or ``"identity"``
        (trust the headers).
    histogram_bins
        Bins of the Mattes mutual information joint histogram.
    sampling_fraction, max_samples
        Fraction of fixed voxels sampled (randomly, with ``seed``) per metric evaluation, at
        most ``max_samples`` voxels per level (MI needs ~10^4-10^5 samples, not millions).
    shrink_factors
        Downsampling per resolution level, coarse to fine.
    smoothing_sigmas
        Gaussian smoothing per level, in units of the fixed scan's largest voxel size.
    iterations
        Maximum gradient-descent iterations per level of the rigid and affine stages.
    bspline_grid_spacing_mm
        Spacing of the B-spline control points in mm.
    bspline_shrink_factors, bspline_iterations
        Levels and maximum L-BFGS-B iterations per level of the B-spline stage.
    max_final_metric
        Fail (``RegistrationError``) when the final metric is above this value.  Mattes
        mutual information is *negated* by ITK: lower is better, about -0.2..-1.5 for brains.
    seed
        Seed of the random metric sampling: equal inputs give equal results.
    """

    kind: RegistrationKind = "rigid"
    initialisation: Initialisation = "moments"
    histogram_bins: int = 50
    sampling_fraction: float = 0.05
    max_samples: int = 100_000
    shrink_factors: tuple[int, ...] = (4, 2, 1)
    smoothing_sigmas: tuple[float, ...] = (2.0, 1.0, 0.0)
    iterations: int = 100
    bspline_grid_spacing_mm: float = 50.0
    bspline_shrink_factors: tuple[int, ...] = (4, 2)
    bspline_iterations: int = 50
    max_final_metric: float | None = None
    seed: int = 42

    def __post_init__(self) -> None:
        if self.kind not in REGISTRATION_KINDS:
            msg = f"registration kind must be one of {REGISTRATION_KINDS}, got {self.kind!r}"
            raise ValueError(msg)
        if self.initialisation not in INITIALISATIONS:
            msg = f"initialisation must be one of {INITIALISATIONS}, got {self.initialisation!r}"
            raise ValueError(msg)
        if len(self.shrink_factors) != len(self.smoothing_sigmas) or not self.shrink_factors:
            msg = (
                f"shrink_factors {self.shrink_factors} and smoothing_sigmas "
                f"{self.smoothing_sigmas} must be non-empty and of equal length (one per level)"
            )
            raise ValueError(msg)
        if not 0.0 < self.sampling_fraction <= 1.0:
            msg = f"sampling_fraction must lie in (0, 1], got {self.sampling_fraction}"
            raise ValueError(msg)
        if self.max_samples < 1000:
            msg = f"max_samples must be >= 1000, got {self.max_samples}"
            raise ValueError(msg)
        if self.iterations < 1 or self.bspline_iterations < 1 or self.histogram_bins < 4:
            msg = "iterations must be >= 1 and histogram_bins >= 4"
            raise ValueError(msg)
        if self.bspline_grid_spacing_mm <= 0:
            msg = f"bspline_grid_spacing_mm must be positive, got {self.bspline_grid_spacing_mm}"
            raise ValueError(msg)


@dataclass(frozen=True, eq=False)
class RegistrationResult:
    """What a registration found.

    Attributes
    ----------
    transform
        SimpleITK transform mapping fixed world points to moving world points (ITK x, y, z
        order, mm); save it with :meth:`save_transform`.
    resampled
        The moving scan on the fixed scan's grid (``float32``, linear interpolation).
    kind
        The registration kind that ran.
    initial_metric, final_metric
        Mattes mutual information (negated: lower is better) at the start and the end,
        both evaluated at full resolution with the same random samples.
    iterations
        Optimiser iterations over all stages and levels.
    stop_conditions
        The optimiser's stop reason, one per stage and level.
    metric_history
        Metric value after each optimiser iteration, in order (levels concatenated).
    coverage
        Fraction of fixed voxels that map inside the moving scan.
    elapsed_s
        Wall-clock seconds.
    """

    transform: sitk.Transform
    resampled: Scan
    kind: str
    initial_metric: float
    final_metric: float
    iterations: int = 0
    stop_conditions: tuple[str, ...] = ()
    metric_history: tuple[float, ...] = ()
    coverage: float = 1.0
    elapsed_s: float = 0.0
    fixed_grid: Grid | None = field(default=None, repr=False)

    def resample_labels(self, labels: LabelMap) -> LabelMap:
        """A label map of the moving scan carried onto the fixed grid (nearest neighbour)."""
        if self.fixed_grid is None:
            target: Scan | Grid = self.resampled
        else:
            target = self.fixed_grid
        return resample_to(labels, target, transform=self.transform, interpolation="nearest")

    def resample(self, moving: Scan, *, interpolation: Interpolation = "linear") -> Scan:
        """Another scan in the moving scan's space, put on the fixed grid the same way."""
        target = self.fixed_grid if self.fixed_grid is not None else Grid.of(self.resampled)
        return resample_to(moving, target, transform=self.transform, interpolation=interpolation)

    def save_transform(self, path: str | Path, *, overwrite: bool = False) -> Path:
        """Write the transform to an ITK transform file (``.tfm`` or ``.h5``), atomically."""
        return save_transform(self.transform, path, overwrite=overwrite)


# ---------------------------------------------------------------------------- public API
def register(
    fixed: Scan,
    moving: Scan,
    *,
    options: RegistrationOptions | None = None,
    on_event: Callable[[Event], Any] | None = None,
) -> RegistrationResult:
    """Register ``moving`` onto ``fixed`` and return the result (see :func:`register_job`)."""
    return run_to_end(register_job(fixed, moving, options=options), on_event)


def register_job(
    fixed: Scan, moving: Scan, *, options: RegistrationOptions | None = None
) -> Job[RegistrationResult]:
    """A job registering ``moving`` onto ``fixed``: yields events, returns the result.

    Yields a :class:`~napari_medseg.events.Progress` per resolution level (stage
    ``"registration"``, ``metrics={"metric": value}``) and :class:`Log` warnings (partial
    overlap, very different fields of view).  Closing the generator between two events
    cancels it; nothing is written and neither scan is modified.

    Raises
    ------
    GeometryMismatchError
        2D with 3D, or no overlap in space when the headers are trusted (``kind="none"`` or
        ``initialisation="identity"``).
    RegistrationError
        The registration could not run or did not converge (message names the metric).
    """
    opts = options or RegistrationOptions()
    start = time.perf_counter()
    check_same_ndim(fixed, moving)
    _check_finite(fixed, "fixed")
    _check_finite(moving, "moving")
    fixed_grid = Grid.of(fixed)
    ndim = fixed_grid.ndim

    trust_headers = opts.kind == "none" or opts.initialisation == "identity"
    if trust_headers:
        fraction = check_overlap(fixed, moving)
    else:
        fraction = overlap_fraction(fixed, moving)
        if fraction <= 0.0:
            yield Log(
                "the scans do not overlap by their headers "
                f"(fixed {physical_extent(fixed).describe()}, moving "
                f"{physical_extent(moving).describe()}); the {opts.initialisation} "
                "initialisation brings their centres together",
                level="warning",
            )
    ratio = _fov_ratio(fixed, moving)
    if ratio > 8.0:
        yield Log(
            f"the fields of view differ widely (one covers {ratio:.0f}x the volume of the "
            "other); registration may lock onto the wrong part: crop the larger scan to the "
            "region of the smaller one if it fails",
            level="warning",
        )

    fixed_img = sitk.Cast(scan_to_sitk(fixed), sitk.sitkFloat32)
    moving_img = sitk.Cast(scan_to_sitk(moving), sitk.sitkFloat32)

    if opts.kind == "none":
        transform: sitk.Transform = identity_transform(ndim)
        metric = _evaluate_metric(fixed_img, moving_img, transform, opts)
        coverage = _coverage(fixed_grid, moving, transform)
        resampled = _resampled(fixed, moving, fixed_grid, transform, identity=True)
        yield Progress(stage="registration", done=1, total=1, message="placed by the headers")
        return RegistrationResult(
            transform=transform,
            resampled=resampled,
            kind="none",
            initial_metric=metric,
            final_metric=metric,
            coverage=coverage,
            elapsed_s=time.perf_counter() - start,
            fixed_grid=fixed_grid,
        )

    rigid = _initial_rigid(fixed_img, moving_img, opts)
    initial_metric = _evaluate_metric(fixed_img, moving_img, rigid, opts)
    plan = _plan(opts)
    total = _total_levels_work(plan)
    done = 0
    history: list[float] = []
    stops: list[str] = []
    transform = rigid
    moving_initial: sitk.Transform | None = None
    for stage, levels, iters in plan:
        if stage == "affine":
            transform = _affine_from(rigid)
        elif stage == "bspline":
            moving_initial = transform
            transform = _bspline_initial(fixed_img, opts)
        for k, (shrink, sigma) in enumerate(levels, start=1):
            level_history = _run_level(
                fixed_img,
                moving_img,
                transform,
                moving_initial,
                stage=stage,
                shrink=shrink,
                sigma=sigma,
                iterations=iters,
                opts=opts,
                stops=stops,
            )
            history.extend(level_history)
            done += iters
            value = level_history[-1] if level_history else float("nan")
            yield Progress(
                stage="registration",
                done=min(done, total),
                total=total,
                elapsed_s=time.perf_counter() - start,
                message=(
                    f"{stage} level {k}/{len(levels)}: metric {value:.4f} after "
                    f"{len(level_history)} iterations"
                ),
                metrics={"metric": value},
            )

    final: sitk.Transform = transform
    if moving_initial is not None:
        final = sitk.CompositeTransform([moving_initial, transform])
    final_metric = _evaluate_metric(fixed_img, moving_img, final, opts)
    _check_converged(initial_metric, final_metric, opts, history)
    coverage = _coverage(fixed_grid, moving, final)
    if coverage <= 0.0:
        msg = (
            f"registration moved the scan out of the fixed field of view (final metric "
            f"{final_metric:.4f}); try initialisation='moments' or a rigid registration first"
        )
        raise RegistrationError(msg, final_metric)
    if coverage < 0.1:
        yield Log(
            f"after registration the moving scan covers only {coverage:.0%} of the fixed grid",
            level="warning",
        )
    resampled = _resampled(fixed, moving, fixed_grid, final, identity=False)
    return RegistrationResult(
        transform=final,
        resampled=resampled,
        kind=opts.kind,
        initial_metric=initial_metric,
        final_metric=final_metric,
        iterations=len(history),
        stop_conditions=tuple(stops),
        metric_history=tuple(history),
        coverage=coverage,
        elapsed_s=time.perf_counter() - start,
        fixed_grid=fixed_grid,
    )


# ---------------------------------------------------------------------------- helpers
def _check_finite(scan: Scan, role: str) -> None:
    if np.issubdtype(scan.array.dtype, np.floating) and not np.all(np.isfinite(scan.array)):
        msg = (
            f"the {role} scan holds NaN or infinite voxels; replace them (e.g. by the "
            "background value) before registering"
        )
        raise RegistrationError(msg)


def _fov_ratio(fixed: Scan, moving: Scan) -> float:
    a, b = physical_extent(fixed).volume, physical_extent(moving).volume
    return max(a, b) / min(a, b) if min(a, b) > 0 else math.inf


def _plan(opts: RegistrationOptions) -> list[tuple[str, list[tuple[int, float]], int]]:
    levels = list(zip(opts.shrink_factors, opts.smoothing_sigmas, strict=True))
    plan = [("rigid", levels, opts.iterations)]
    if opts.kind in ("affine", "bspline"):
        plan.append(("affine", levels, opts.iterations))
    if opts.kind == "bspline":
        n = len(opts.bspline_shrink_factors)
        sigmas = opts.smoothing_sigmas[-n:] if n <= len(opts.smoothing_sigmas) else (0.0,) * n
        plan.append(
            (
                "bspline",
                list(zip(opts.bspline_shrink_factors, sigmas, strict=True)),
                opts.bspline_iterations,
            )
        )
    return plan


def _total_levels_work(plan: list[tuple[str, list[tuple[int, float]], int]]) -> int:
    return sum(len(levels) * iters for _, levels, iters in plan)


def _initial_rigid(
    fixed: sitk.Image, moving: sitk.Image, opts: RegistrationOptions
) -> sitk.Euler3DTransform | sitk.Euler2DTransform:
    ndim = fixed.GetDimension()
    rigid = sitk.Euler3DTransform() if ndim == 3 else sitk.Euler2DTransform()
    if opts.initialisation == "identity":
        centre_index = [(s - 1) / 2.0 for s in fixed.GetSize()]
        rigid.SetCenter(fixed.TransformContinuousIndexToPhysicalPoint(centre_index))
        return rigid
    mode = (
        sitk.CenteredTransformInitializerFilter.MOMENTS
        if opts.initialisation == "moments"
        else sitk.CenteredTransformInitializerFilter.GEOMETRY
    )
    # Moments weigh voxels by intensity: shift both to a zero minimum so that CT air
    # (-1000 HU) counts as nothing rather than as negative mass.
    f, m = _non_negative(fixed), _non_negative(moving)
    try:
        out = sitk.CenteredTransformInitializer(f, m, rigid, mode)
    except RuntimeError as exc:
        msg = (
            f"could not initialise the registration by {opts.initialisation} (is one scan "
            f"empty or constant?): {_reason(exc)}"
        )
        raise RegistrationError(msg) from exc
    return sitk.Euler3DTransform(out) if ndim == 3 else sitk.Euler2DTransform(out)


def _non_negative(image: sitk.Image) -> sitk.Image:
    stats = sitk.MinimumMaximumImageFilter()
    stats.Execute(image)
    return image - stats.GetMinimum()


def _affine_from(rigid: sitk.Euler3DTransform | sitk.Euler2DTransform) -> sitk.AffineTransform:
    affine = sitk.AffineTransform(rigid.GetDimension())
    affine.SetMatrix(rigid.GetMatrix())
    affine.SetTranslation(rigid.GetTranslation())
    affine.SetCenter(rigid.GetFixedParameters()[: rigid.GetDimension()])
    return affine


def _bspline_initial(fixed: sitk.Image, opts: RegistrationOptions) -> sitk.BSplineTransform:
    extent = [sz * sp for sz, sp in zip(fixed.GetSize(), fixed.GetSpacing(), strict=True)]
    mesh = [max(1, round(e / opts.bspline_grid_spacing_mm)) for e in extent]
    return sitk.BSplineTransformInitializer(fixed, mesh, 3)


def _method(
    opts: RegistrationOptions, fixed: sitk.Image, shrink: int = 1, *, gradients: bool = True
) -> sitk.ImageRegistrationMethod:
    reg = sitk.ImageRegistrationMethod()
    reg.SetMetricAsMattesMutualInformation(numberOfHistogramBins=opts.histogram_bins)
    reg.SetMetricSamplingStrategy(reg.RANDOM)
    voxels = math.prod(math.ceil(n / shrink) for n in fixed.GetSize())
    fraction = min(opts.sampling_fraction, opts.max_samples / max(1, voxels))
    reg.SetMetricSamplingPercentage(fraction, opts.seed)
    if not gradients:
        # A metric value alone needs no gradient images (ITK would smooth-differentiate both
        # whole images first: seconds at 1 mm).  Optimisation keeps them: the smoothed
        # gradients converge far better than point-wise differences on coarse levels.
        reg.MetricUseFixedImageGradientFilterOff()
        reg.MetricUseMovingImageGradientFilterOff()
    reg.SetInterpolator(sitk.sitkLinear)
    return reg


def _run_level(
    fixed: sitk.Image,
    moving: sitk.Image,
    transform: sitk.Transform,
    moving_initial: sitk.Transform | None,
    *,
    stage: str,
    shrink: int,
    sigma: float,
    iterations: int,
    opts: RegistrationOptions,
    stops: list[str],
) -> list[float]:
    """Run one resolution level in place on ``transform``; return the metric per iteration."""
    smallest = min(fixed.GetSize())
    shrink = max(1, min(shrink, smallest // 8))
    reg = _method(opts, fixed, shrink)
    reg.SetShrinkFactorsPerLevel([shrink])
    reg.SetSmoothingSigmasPerLevel([sigma * max(fixed.GetSpacing())])
    reg.SmoothingSigmasAreSpecifiedInPhysicalUnitsOn()
    if stage == "bspline":
        reg.SetOptimizerAsLBFGSB(
            gradientConvergenceTolerance=1e-5,
            numberOfIterations=iterations,
            maximumNumberOfCorrections=5,
            maximumNumberOfFunctionEvaluations=4 * iterations,
            costFunctionConvergenceFactor=1e7,
        )
    else:
        # Regular-step gradient descent, steps in mm thanks to the physical-shift scales:
        # start at two voxels, halve on every change of direction, stop below 1/1000 voxel.
        # (The plain gradient descent's convergence window stopped far too early here.)
        voxel = max(fixed.GetSpacing())
        reg.SetOptimizerAsRegularStepGradientDescent(
            learningRate=2.0 * voxel,
            minStep=1e-3 * voxel,
            numberOfIterations=iterations,
            relaxationFactor=0.5,
            gradientMagnitudeTolerance=1e-8,
        )
        reg.SetOptimizerScalesFromPhysicalShift()
    if moving_initial is not None:
        reg.SetMovingInitialTransform(moving_initial)
    reg.SetInitialTransform(transform, inPlace=True)
    history: list[float] = []
    reg.AddCommand(sitk.sitkIterationEvent, lambda: history.append(reg.GetMetricValue()))
    try:
        reg.Execute(fixed, moving)
    except RuntimeError as exc:
        last = history[-1] if history else float("nan")
        msg = (
            f"{stage} registration failed at shrink factor {shrink} (last metric {last:.4f}): "
            f"{_reason(exc)}; the moving scan was left untouched"
        )
        raise RegistrationError(msg, last) from exc
    stops.append(f"{stage} x{shrink}: {reg.GetOptimizerStopConditionDescription()}")
    return history


def _evaluate_metric(
    fixed: sitk.Image,
    moving: sitk.Image,
    transform: sitk.Transform,
    opts: RegistrationOptions,
) -> float:
    reg = _method(opts, fixed, gradients=False)
    reg.SetInitialTransform(transform, inPlace=False)
    try:
        return float(reg.MetricEvaluate(fixed, moving))
    except RuntimeError:
        return float("nan")


def _check_converged(
    initial: float, final: float, opts: RegistrationOptions, history: list[float]
) -> None:
    if not math.isfinite(final):
        last = history[-1] if history else float("nan")
        msg = (
            f"registration did not converge: the final metric is not finite (last optimiser "
            f"value {last:.4f}); the scans may not overlap after the transform. The moving scan "
            "was left untouched; try another initialisation or a rigid registration"
        )
        raise RegistrationError(msg, final)
    if math.isfinite(initial) and final > initial + 0.01 * abs(initial):
        msg = (
            f"registration did not converge: the metric got worse ({initial:.4f} -> "
            f"{final:.4f}, lower is better). The moving scan was left untouched; try another "
            "initialisation, more levels, or kind='rigid'"
        )
        raise RegistrationError(msg, final)
    if opts.max_final_metric is not None and final > opts.max_final_metric:
        msg = (
            f"registration did not converge: final metric {final:.4f} is above the required "
            f"{opts.max_final_metric:.4f} (lower is better; started at {initial:.4f}). The "
            "moving scan was left untouched"
        )
        raise RegistrationError(msg, final)


def _coverage(fixed_grid: Grid, moving: Scan, transform: sitk.Transform) -> float:
    """Fraction of fixed voxels whose transformed position lies inside the moving scan."""
    ones = sitk.Image(list(moving.array.shape[::-1]), sitk.sitkUInt8) + 1
    ones.CopyInformation(reference_image(Grid.of(moving)))
    inside = sitk.Resample(
        ones, reference_image(fixed_grid), transform, sitk.sitkNearestNeighbor, 0.0
    )
    return float(np.mean(sitk.GetArrayViewFromImage(inside)))


def _resampled(
    fixed: Scan, moving: Scan, grid: Grid, transform: sitk.Transform, *, identity: bool
) -> Scan:
    """The moving scan on the fixed grid; shares the moving array when nothing moves."""
    if identity and moving.same_grid(fixed):
        array = moving.array.astype(np.float32, copy=False)
        return Scan(
            array=array,
            geometry=fixed.geometry,
            modality=moving.modality,
            metadata=dict(moving.metadata),
            source=moving.source,
        )
    return resample_to(moving, grid, transform=transform, interpolation="linear")


def _reason(exc: BaseException) -> str:
    lines = [ln.strip() for ln in str(exc).splitlines() if ln.strip()]
    return lines[-1][:300] if lines else type(exc).__name__
