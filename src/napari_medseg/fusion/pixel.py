"""Pixel-level fusion of two or more co-registered scans: options, dispatch, and the job.

Methods (all in 2D and 3D, on scans sharing one voxel grid):

==============  =====================================================  ==================
method          rule                                                   module
==============  =====================================================  ==================
``weighted``    weighted average, one weight per scan                  :mod:`.weighted`
``pca``         weights from the principal component of the sources    :mod:`.weighted`
``laplacian``   Laplacian pyramid, max-magnitude details, mean base    :mod:`.pyramid`
``wavelet``     DWT (PyWavelets), max-magnitude details, mean approx.  :mod:`.wavelet`
``guided``      guided-filter weight maps on a two-scale split         :mod:`.guided`
==============  =====================================================  ==================

Each scan is first normalised on its own (:mod:`.normalise`, 1st-99th percentile to
``[0, 1]`` by default), so the fused scan is ``float32`` on that common scale.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, Literal

import numpy as np
import numpy.typing as npt

from napari_medseg.errors import FusionError
from napari_medseg.events import Event, Job, Progress, run_to_end
from napari_medseg.fusion.guided import guided_fusion
from napari_medseg.fusion.normalise import NORMALISATIONS, Normalisation, normalise
from napari_medseg.fusion.pyramid import laplacian_fusion
from napari_medseg.fusion.wavelet import wavelet_fusion
from napari_medseg.fusion.weighted import pca_fusion, weighted_average
from napari_medseg.geometry.grid import require_same_grid
from napari_medseg.scan import Scan

FusionMethod = Literal["weighted", "pca", "laplacian", "wavelet", "guided"]
FUSION_METHODS: tuple[str, ...] = ("weighted", "pca", "laplacian", "wavelet", "guided")
_RULES = ("max", "average")


@dataclass(frozen=True, kw_only=True)
class FusionOptions:
    """How to fuse; fields a method does not use are ignored.

    Attributes
    ----------
    method
        One of :data:`FUSION_METHODS`.
    normalisation
        Per-scan intensity normalisation before fusing (:func:`.normalise.normalise`).
    weights
        ``weighted``: one non-negative weight per scan (equal when ``None``).
    levels
        ``laplacian`` / ``wavelet``: decomposition levels (capped by the image size).
    detail_rule, base_rule
        ``laplacian`` / ``wavelet``: ``"max"`` (largest magnitude, or brightest for the
        base) or ``"average"``, for the detail bands and the low-pass base.
    wavelet
        ``wavelet``: PyWavelets name of a discrete wavelet (``"db2"``, ``"haar"``, ``"sym4"``).
    mean_filter_size, base_radius, base_eps, detail_radius, detail_eps
        ``guided``: sizes in voxels, eps in squared normalised intensity
        (:func:`.guided.guided_fusion`).
    """

    method: FusionMethod = "weighted"
    normalisation: Normalisation = "percentile"
    weights: tuple[float, ...] | None = None
    levels: int = 4
    detail_rule: Literal["max", "average"] = "max"
    base_rule: Literal["max", "average"] = "average"
    wavelet: str = "db2"
    mean_filter_size: int = 31
    base_radius: int = 45
    base_eps: float = 0.3
    detail_radius: int = 7
    detail_eps: float = 1e-6

    def __post_init__(self) -> None:
        if self.method not in FUSION_METHODS:
            msg = f"fusion method must be one of {FUSION_METHODS}, got {self.method!r}"
            raise ValueError(msg)
        if self.normalisation not in NORMALISATIONS:
            msg = f"normalisation must be one of {NORMALISATIONS}, got {self.normalisation!r}"
            raise ValueError(msg)
        if self.detail_rule not in _RULES or self.base_rule not in _RULES:
            msg = f"detail_rule and base_rule must be one of {_RULES}"
            raise ValueError(msg)
        if self.levels < 1:
            msg = f"levels must be >= 1, got {self.levels}"
            raise ValueError(msg)
        if min(self.mean_filter_size, self.base_radius, self.detail_radius) < 1:
            msg = "guided-filter sizes must be >= 1 voxel"
            raise ValueError(msg)
        if self.base_eps <= 0 or self.detail_eps <= 0:
            msg = "guided-filter eps must be positive"
            raise ValueError(msg)


def fuse_arrays(
    images: Sequence[npt.NDArray[Any]], *, options: FusionOptions | None = None
) -> npt.NDArray[np.float32]:
    """Normalise then fuse same-shaped arrays (``(Y, X)`` or ``(Z, Y, X)``); ``float32``."""
    opts = options or FusionOptions()
    _check_arrays(images)
    normalised = [normalise(im, opts.normalisation) for im in images]
    return _dispatch(normalised, opts)


def fuse(
    scans: Sequence[Scan],
    *,
    options: FusionOptions | None = None,
    on_event: Callable[[Event], Any] | None = None,
) -> Scan:
    """Fuse co-registered scans into one (see :func:`fuse_job`)."""
    return run_to_end(fuse_job(scans, options=options), on_event)


def fuse_job(scans: Sequence[Scan], *, options: FusionOptions | None = None) -> Job[Scan]:
    """A job fusing co-registered scans: yields a :class:`Progress` per step, returns a Scan.

    The result lies on the scans' common grid, ``float32`` on the normalised scale, with
    ``metadata["fusion_method"]``.  Raises :class:`FusionError` for fewer than two scans and
    :class:`~napari_medseg.errors.GeometryMismatchError` (naming what differs) when the
    scans do not share one grid: register or resample them first.
    """
    opts = options or FusionOptions()
    if len(scans) < 2:
        msg = f"pixel-level fusion needs two or more scans, got {len(scans)}"
        raise FusionError(msg)
    grid = require_same_grid(scans, purpose="pixel-level fusion")
    _check_arrays([s.array for s in scans])
    total = len(scans) + 1
    start = time.perf_counter()
    normalised = []
    for k, scan in enumerate(scans, start=1):
        normalised.append(normalise(scan.array, opts.normalisation))
        yield Progress(
            stage="fusion",
            done=k,
            total=total,
            elapsed_s=time.perf_counter() - start,
            message=f"normalised {scan.name} ({opts.normalisation})",
        )
    fused = _dispatch(normalised, opts)
    del normalised
    yield Progress(
        stage="fusion",
        done=total,
        total=total,
        elapsed_s=time.perf_counter() - start,
        message=f"fused {len(scans)} scans ({opts.method})",
    )
    names = ", ".join(s.name for s in scans)
    return Scan(
        array=fused,
        geometry=grid.geometry,
        metadata={"fusion_method": opts.method, "fusion_sources": names},
    )


def _check_arrays(images: Sequence[npt.NDArray[Any]]) -> None:
    if len(images) < 2:
        msg = f"pixel-level fusion needs two or more images, got {len(images)}"
        raise FusionError(msg)
    shape = images[0].shape
    if len(shape) not in (2, 3):
        msg = f"pixel-level fusion works on 2D or 3D images, got shape {shape}"
        raise FusionError(msg)
    for k, image in enumerate(images):
        if image.shape != shape:
            msg = (
                f"image {k} has shape {image.shape} but image 0 has {shape}; "
                "resample them onto one grid first"
            )
            raise FusionError(msg)
        if np.issubdtype(image.dtype, np.complexfloating):
            msg = f"image {k} is complex; fuse real-valued magnitudes"
            raise FusionError(msg)


def _dispatch(
    images: Sequence[npt.NDArray[np.float32]], opts: FusionOptions
) -> npt.NDArray[np.float32]:
    if opts.method == "weighted":
        return weighted_average(images, opts.weights)
    if opts.method == "pca":
        return pca_fusion(images)
    if opts.method == "laplacian":
        return laplacian_fusion(
            images, levels=opts.levels, detail_rule=opts.detail_rule, base_rule=opts.base_rule
        )
    if opts.method == "wavelet":
        return wavelet_fusion(
            images,
            wavelet=opts.wavelet,
            levels=opts.levels,
            approximation_rule=opts.base_rule,
            detail_rule=opts.detail_rule,
        )
    return guided_fusion(
        images,
        mean_filter_size=opts.mean_filter_size,
        base_radius=opts.base_radius,
        base_eps=opts.base_eps,
        detail_radius=opts.detail_radius,
        detail_eps=opts.detail_eps,
    )
