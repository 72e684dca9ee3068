"""Typed options of a training / fine-tuning run, shared by the Python API, CLI and widget."""

from __future__ import annotations

from dataclasses import dataclass, field

VALIDATIONS = ("auto", "blocks", "none")


@dataclass(kw_only=True)
class AugmentOptions:
    """Random augmentation of each training patch (spatial ones move labels and mask too).

    Attributes
    ----------
    flip
        Mirror each spatial axis with probability 0.5 (only ``flip_axes``, the patch's spatial
        axes counted from 0, when given; mirroring left and right teaches a network that a
        right kidney may lie on the left, so few-slice training of one scan does not flip).
    in_plane
        3D patches of thick-slice scans: rotate only about this axis (the slice axis), so the
        few voxels across slices are never mixed with the in-plane ones.
    rotate90
        Rotate by a multiple of 90 degrees in the in-plane ``(Y, X)`` axes when they are equal.
    affine_probability
        Probability of a small affine: rotation up to ``rotation_deg`` degrees about each
        axis, isotropic scaling within ``1 +/- scale``.
    elastic_probability
        Probability of an elastic deformation: a random displacement on a coarse grid
        (``elastic_grid`` control points per axis), smoothly upsampled, up to
        ``elastic_magnitude`` of the patch extent (0.02 = 2 %).
    intensity_probability
        Probability of intensity changes on the (normalised) image: scale x ``1 +/- 0.1``,
        shift ``+/- 0.1``, gamma ``exp(+/- 0.3)`` on values in [0, 1], Gaussian noise sd 0.02.
    """

    flip: bool = True
    flip_axes: tuple[int, ...] | None = None
    rotate90: bool = False
    in_plane: int | None = None
    affine_probability: float = 0.3
    rotation_deg: float = 10.0
    scale: float = 0.1
    elastic_probability: float = 0.2
    elastic_grid: int = 4
    elastic_magnitude: float = 0.02
    intensity_probability: float = 0.5

    @classmethod
    def none(cls) -> AugmentOptions:
        """No augmentation at all."""
        return cls(flip=False, rotate90=False, affine_probability=0.0,
                   elastic_probability=0.0, intensity_probability=0.0)


@dataclass(kw_only=True)
class TrainOptions:
    """How to train or fine-tune a model on (sparsely) labeled volumes.

    Attributes
    ----------
    steps
        Optimiser steps (upper bound: early stopping may end the run sooner).
    batch_size
        Patches per step.
    patch_size
        Patch in voxels, ``(Z, Y, X)`` for 3D models, ``(Y, X)`` for 2D models; ``None`` takes
        the checkpoint's patch size capped at 64^3 / 128^2 (CPU-friendly).
    learning_rate, weight_decay
        AdamW; the rate warms up linearly over ``warmup_steps`` then follows a cosine to 5 %.
    foreground_fraction
        Share of patches centred on a labeled foreground voxel (the rest on any labeled voxel).
    edited_weight
        Loss weight of voxels a person edited (other labeled voxels weigh 1).
    dice_weight, ce_weight
        Weights of the masked soft-Dice and cross-entropy terms.
    freeze_encoder
        Train only the decoder (see :func:`napari_medseg.training.freeze.freeze_encoder`).
    validation
        What is held back to measure the run: ``"auto"`` (whole annotated slices, else regions
        of each class, else every eighth slice of a dense label map: see
        :mod:`napari_medseg.training.annotation`), ``"blocks"`` (``validation_fraction`` of the
        labeled voxels in cubic blocks of ``validation_block`` voxels) or ``"none"``.
    validation_fraction
        ``"blocks"``: share of the labeled voxels held back; 0 disables validation in every
        mode.
    validate_every
        Steps between two validations.
    patience
        Validations without improvement before stopping early.
    min_improvement
        How much the validation Dice must rise above the best so far to count as better
        (a guard against noise): a fine-tune whose validation never rises by this much over
        the starting weights returns the starting weights.
    fold_in
        Share of ``steps`` trained at the end with the held-back voxels given back to training
        (from the best validated weights), so that the final model has learned from every
        annotation; 0 keeps the best validated weights as the result.
    time_limit_s
        Stop the run when it has trained this long (seconds; ``None``: no limit): the
        validated part ends early and the fold-in keeps its share.
    slice_axis
        2D models on 3D volumes: the array axis slices are taken along (0 = axial); a
        checkpoint that names its ``slice_axis`` decides instead.
    device
        ``"auto"``, ``"cpu"``, ``"cuda"``...
    threads
        CPU threads for torch (``None``: leave torch's setting).
    seed
        Seed of patch sampling, augmentation and initialisation.
    """

    steps: int = 200
    batch_size: int = 2
    patch_size: tuple[int, ...] | None = None
    learning_rate: float = 1e-3
    weight_decay: float = 1e-4
    warmup_steps: int = 10
    foreground_fraction: float = 0.67
    edited_weight: float = 2.0
    dice_weight: float = 1.0
    ce_weight: float = 1.0
    freeze_encoder: bool = False
    validation: str = "auto"
    validation_fraction: float = 0.1
    validation_block: int = 8
    fold_in: float = 0.0
    time_limit_s: float | None = None
    validate_every: int = 25
    patience: int = 4
    min_improvement: float = 0.005
    slice_axis: int = 0
    device: str = "auto"
    threads: int | None = None
    seed: int = 0
    augment: AugmentOptions = field(default_factory=AugmentOptions)

    def __post_init__(self) -> None:
        checks = [
            (self.steps >= 1, f"steps must be at least 1, got {self.steps}"),
            (self.batch_size >= 1, f"batch_size must be at least 1, got {self.batch_size}"),
            (self.learning_rate > 0, f"learning_rate must be positive, got {self.learning_rate}"),
            (0.0 <= self.foreground_fraction <= 1.0,
             f"foreground_fraction must be in [0, 1], got {self.foreground_fraction}"),
            (self.edited_weight > 0, f"edited_weight must be positive, got {self.edited_weight}"),
            (0.0 <= self.validation_fraction < 1.0,
             f"validation_fraction must be in [0, 1), got {self.validation_fraction}"),
            (self.validate_every >= 1, f"validate_every must be >= 1, got {self.validate_every}"),
            (self.slice_axis in (0, 1, 2), f"slice_axis must be 0, 1 or 2, got {self.slice_axis}"),
            (self.validation in VALIDATIONS,
             f"validation must be one of {', '.join(VALIDATIONS)}, got {self.validation!r}"),
            (0.0 <= self.fold_in < 1.0, f"fold_in must be in [0, 1), got {self.fold_in}"),
            (self.time_limit_s is None or self.time_limit_s > 0,
             f"time_limit_s must be positive, got {self.time_limit_s}"),
        ]
        for ok, msg in checks:
            if not ok:
                raise ValueError(msg)
        if self.patch_size is not None:
            self.patch_size = tuple(int(p) for p in self.patch_size)
            if any(p < 1 for p in self.patch_size):
                msg = f"patch sizes must be positive, got {self.patch_size}"
                raise ValueError(msg)
