"""Modality fusion: registration and resampling, pixel-, feature- and decision-level fusion.

Grids and resampling live in :mod:`napari_medseg.geometry` (inference and training use them
too) and are re-exported here for fusion scripts.

Qt-free: nothing here imports napari, Qt or magicgui.  Long operations are jobs
(generators of :mod:`napari_medseg.events`) with a plain-function twin:

>>> result = register(fixed, moving, options=RegistrationOptions(kind="rigid"))
>>> fused = fuse([fixed, result.resampled], options=FusionOptions(method="wavelet"))

:func:`register_and_fuse_job` is the whole verb (register, carry labels, fuse, views,
quality) that ``napari-medseg fuse`` and the Fuse widget run.
"""

from napari_medseg.fusion.channels import stack_channels
from napari_medseg.fusion.decision import (
    DecisionResult,
    average_probabilities,
    combine_labels,
    majority_vote,
    staple,
)
from napari_medseg.fusion.normalise import NORMALISATIONS, normalise
from napari_medseg.fusion.pipeline import (
    FuseResult,
    RegisterFuseOptions,
    register_and_fuse_job,
    suggest_pair,
)
from napari_medseg.fusion.pixel import (
    FUSION_METHODS,
    FusionOptions,
    fuse,
    fuse_arrays,
    fuse_job,
)
from napari_medseg.fusion.quality import (
    FusionQuality,
    entropy,
    fusion_quality,
    mutual_information,
    qabf,
    ssim,
)
from napari_medseg.fusion.registration import (
    INITIALISATIONS,
    REGISTRATION_KINDS,
    RegistrationOptions,
    RegistrationResult,
    register,
    register_job,
)
from napari_medseg.fusion.transforms import load_transform, save_transform, transform_points
from napari_medseg.fusion.views import checkerboard, difference
from napari_medseg.geometry.grid import (
    Extent,
    Grid,
    check_overlap,
    overlap_fraction,
    physical_extent,
    require_same_grid,
)
from napari_medseg.geometry.resample import resample_to

__all__ = [
    "FUSION_METHODS",
    "INITIALISATIONS",
    "NORMALISATIONS",
    "REGISTRATION_KINDS",
    "DecisionResult",
    "Extent",
    "FuseResult",
    "FusionOptions",
    "FusionQuality",
    "Grid",
    "RegisterFuseOptions",
    "RegistrationOptions",
    "RegistrationResult",
    "average_probabilities",
    "check_overlap",
    "checkerboard",
    "combine_labels",
    "difference",
    "entropy",
    "fuse",
    "fuse_arrays",
    "fuse_job",
    "fusion_quality",
    "load_transform",
    "majority_vote",
    "mutual_information",
    "normalise",
    "overlap_fraction",
    "physical_extent",
    "qabf",
    "register",
    "register_and_fuse_job",
    "register_job",
    "require_same_grid",
    "resample_to",
    "save_transform",
    "ssim",
    "stack_channels",
    "staple",
    "suggest_pair",
    "transform_points",
]
