"""The register + fuse verb as one core job: put a moving scan on a fixed scan's grid, fuse.

``napari-medseg fuse`` and the Fuse widget both run :func:`register_and_fuse_job`; they only
turn files or layers into scans and :class:`RegisterFuseOptions`, and the
:class:`FuseResult` into files or layers.  The steps, in order: register (or apply a given
transform, or trust the headers), carry a label map of the moving scan along, fuse the two
scans pixel by pixel, build the alignment views (checkerboard, difference) and measure the
fusion's quality, each when asked.  Nothing is written and neither scan is modified; closing
the job between two events stops it.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

import SimpleITK as sitk

from napari_medseg.errors import FusionError
from napari_medseg.events import Job, Progress
from napari_medseg.fusion.pixel import FusionOptions, fuse_job
from napari_medseg.fusion.quality import FusionQuality, fusion_quality
from napari_medseg.fusion.registration import (
    RegistrationOptions,
    RegistrationResult,
    register_job,
)
from napari_medseg.fusion.views import checkerboard, difference
from napari_medseg.geometry import check_overlap, extent_similarity, resample_to
from napari_medseg.scan import LabelMap, Scan


@dataclass(kw_only=True)
class RegisterFuseOptions:
    """What the register + fuse job does.

    Attributes
    ----------
    registration
        How to register (``kind="none"`` trusts the headers).
    transform
        A known fixed -> moving transform (e.g. :func:`~napari_medseg.fusion.load_transform`)
        applied instead of registering; then ``registration.kind`` must be ``"none"``.
    fusion
        How to fuse; ``None`` registers only.
    views
        Also build the checkerboard (``squares`` blocks per axis) and difference views.
    quality
        Also measure the fusion (entropy, mutual information, Q^AB/F, SSIM).
    """

    registration: RegistrationOptions = field(default_factory=RegistrationOptions)
    transform: sitk.Transform | None = None
    fusion: FusionOptions | None = field(default_factory=FusionOptions)
    views: bool = False
    squares: int = 8
    quality: bool = False

    def __post_init__(self) -> None:
        if self.transform is not None and self.registration.kind != "none":
            msg = ("a given transform is applied instead of a registration; choose the "
                   "registration kind none with it")
            raise FusionError(msg)
        if self.squares < 2:
            msg = f"the checkerboard needs at least 2 squares per axis, got {self.squares}"
            raise ValueError(msg)


@dataclass
class FuseResult:
    """What the job made, all on the fixed scan's grid.

    ``resampled`` is the moving scan put there by ``transform`` (fixed -> moving);
    ``registration`` is ``None`` when a transform was given.  ``labels`` (the moving scan's
    label map carried along), ``fused``, ``checkerboard``, ``difference`` and ``quality`` are
    ``None`` unless asked for.
    """

    transform: sitk.Transform
    resampled: Scan
    registration: RegistrationResult | None
    fused: Scan | None = None
    labels: LabelMap | None = None
    checkerboard: Scan | None = None
    difference: Scan | None = None
    quality: FusionQuality | None = None


def register_and_fuse_job(fixed: Scan, moving: Scan, options: RegisterFuseOptions | None = None,
                          *, moving_labels: LabelMap | None = None) -> Job[FuseResult]:
    """Register ``moving`` onto ``fixed`` (or apply ``options.transform``), carry
    ``moving_labels`` along, fuse and build what ``options`` asks for; a generator job.

    Yields the registration's and the fusion's progress.  Raises
    :class:`~napari_medseg.errors.GeometryMismatchError` when the scans do not overlap by
    their headers (and nothing brings them together), and
    :class:`~napari_medseg.errors.RegistrationError` when a registration fails.
    """
    opts = options or RegisterFuseOptions()
    registration: RegistrationResult | None = None
    if opts.transform is not None:
        check_overlap(fixed, moving)
        transform = opts.transform
        resampled = resample_to(moving, fixed, transform=transform)
        labels = (resample_to(moving_labels, fixed, transform=transform)
                  if moving_labels is not None else None)
        yield Progress(stage="registration", done=1, total=1,
                       message="placed by the given transform")
    else:
        registration = yield from register_job(fixed, moving, options=opts.registration)
        transform, resampled = registration.transform, registration.resampled
        labels = (registration.resample_labels(moving_labels)
                  if moving_labels is not None else None)
    result = FuseResult(transform=transform, resampled=resampled, registration=registration,
                        labels=labels)
    if opts.fusion is not None:
        result.fused = yield from fuse_job([fixed, resampled], options=opts.fusion)
        if opts.quality:
            result.quality = fusion_quality([fixed, resampled], result.fused,
                                            normalisation=opts.fusion.normalisation)
    if opts.views:
        result.checkerboard = checkerboard(fixed, resampled, squares=opts.squares)
        result.difference = difference(fixed, resampled)
    return result


def suggest_pair(scans: Sequence[Scan]) -> tuple[int, int] | None:
    """Indices ``(fixed, moving)`` of the two scans most worth registering, ``None`` for fewer
    than two.

    The pair whose physical boxes are most alike in size (:func:`extent_similarity`: one body
    region, not a chest CT and a brain MR), two known and different modalities counting a
    little more (0.1; one unknown: 0.05); the fixed scan is the earlier of the two, unless it
    is a PET (which goes onto the anatomy).
    """
    best: tuple[float, int, int] | None = None
    for i in range(len(scans)):
        for j in range(i + 1, len(scans)):
            a, b = scans[i].modality, scans[j].modality
            if scans[i].ndim != scans[j].ndim:
                continue
            known = "unknown" not in (a, b)
            bonus = (0.1 if a != b else 0.0) if known else 0.05
            score = extent_similarity(scans[i], scans[j]) + bonus
            if best is None or score > best[0]:
                best = (score, i, j)
    if best is None:
        return None
    _score, i, j = best
    return (j, i) if scans[i].modality == "PT" and scans[j].modality != "PT" else (i, j)
