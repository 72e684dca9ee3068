"""The compute plan of a training run: what to train, and how much of it fits the time budget.

Before a run, :func:`plan_training` looks at the annotation and the scan and chooses

* **the network's form**: 2.5D (a 2D network across the annotated slices, with ``k``
  neighbouring slices on each side as extra channels) when a person annotated slices - it
  trains on every annotated voxel at full in-plane resolution, whatever the slice spacing; 3D
  for an architecture whose paper is 3D when asked (``dims=3``), or strokes on a near-isotropic
  scan; 2D for a 2D image;
* **the intensity contract** from the scan's modality (CT: an HU window around the annotated
  classes; MR and others: the 0.5-99.5 percentiles);
* **the patch** (about 160 mm of the scan in-plane, capped by the slice), the **batch** and
  the **width** of the network: ``"fast"`` widths (the architecture's published widths scaled
  down until one step fits the budget) or ``"paper"`` (as published);
* **the steps**: a few training steps of that network are *measured on this machine*, and the
  steps are the budget (minus the time to segment the scan twice) over a step's time.

A budget too small for :data:`MIN_STEPS` steps of the smallest network is refused with the
time it would need.  A fine-tune (``start_from``) keeps the checkpoint's network, contract and
spacing and plans only steps, batch and patch.
"""

from __future__ import annotations

import math
import time
from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from typing import Any

import numpy as np
import torch

from napari_medseg import distributed
from napari_medseg.errors import TrainingError
from napari_medseg.events import Job, Log
from napari_medseg.models import CheckpointSpec, IntensityContract, create_model
from napari_medseg.models.device import resolve_device
from napari_medseg.models.registry import available_models, default_options, model_names
from napari_medseg.options import option
from napari_medseg.training.annotation import AnnotationLayout, describe_annotation
from napari_medseg.training.labeled_volume import LabeledVolume
from napari_medseg.training.options import AugmentOptions, TrainOptions

#: The default training budget (seconds) on a CPU and on a GPU.
DEFAULT_BUDGET_S = {"cpu": 120.0, "gpu": 30.0}
#: Fewer steps than this cannot learn anything; the budget is refused.
MIN_STEPS = 40
#: More steps than this do not pay on a few slices; a large budget ends sooner.
MAX_STEPS = 3000
#: In-plane field of view of a 2D patch (mm), and its limits in voxels.
PATCH_MM = 160.0
PATCH_LIMITS = (64, 192)
#: 3D patches: voxels per axis (the slice axis of a thick-slice scan gets fewer).
PATCH_3D = 64
#: The "fast" widths tried, as fractions of the published ones, widest first.
WIDTH_FACTORS = (0.5, 0.25, 0.125)
#: Share of the budget kept for segmenting the scan (twice) after training, at most.
INFERENCE_SHARE = 0.35
DIMS = ("auto", "2", "3")
WIDTHS = ("fast", "paper")
#: A 2.5D network's neighbouring slices per side (none across thick slices: measured on the
#: brain lesion, 6.5 mm slices of 0.78 mm pixels, a context slice made the network miss the
#: lesion on unseen slices; on a 1 mm T1 it gained 0.006 Dice).
CONTEXT_SLICES = 1
#: Share of the steps trained with the held-back annotation given back (few slices: each one
#: matters; a dense label map lends only every eighth slice to validation and keeps it out).
FOLD_IN = 0.3
#: Scans whose thickest spacing is more than this times the finest are "thick-slice".
ANISOTROPY = 2.5


@dataclass(kw_only=True)
class LearnOptions:
    """What a person chooses for a training run (the Train tab, ``napari-medseg train``).

    Everything left at ``None``/``"auto"`` is planned (:func:`plan_training`).
    """

    architecture: str = option(
        "auto", flag="--model", metavar="ARCH",
        help="network of the zoo (napari-medseg models), or auto: a 2.5D U-Net across the "
             "annotated slices")
    dims: str = option("auto", choices=DIMS,
                       help="2 (2D/2.5D across slices), 3 (3D), or auto (from the architecture "
                            "and the annotation)")
    budget_s: float | None = option(
        None, flag="--budget", metavar="SECONDS", low=0, high=36000, none_as=0,
        help="time for the whole run: train, then segment the scan (default 120 s on a CPU, "
             "30 s on a GPU)")
    widths: str = option("fast", choices=WIDTHS,
                         help="fast: widths planned to fit the budget; paper: as published")
    context_slices: int | None = option(
        None, low=-1, high=8, none_as=-1,
        help="2.5D (-1: planned): neighbouring slices per side given as channels (default: 1, "
             "none across slices thicker than 2.5 pixels)")
    steps: int | None = option(None, low=0, high=1_000_000, none_as=0,
                               help="exact optimiser steps (default: what fits the budget)")
    batch_size: int | None = option(None, flag="--batch", low=0, high=256, none_as=0,
                                    help="patches per step (default: planned)")
    patch_size: tuple[int, ...] | None = option(None, flag="--patch", nargs="+", metavar="N",
                                                help="patch in voxels (default: planned)")
    learning_rate: float | None = option(None, flag="--lr", low=0.0, high=1.0, none_as=0,
                                         step=1e-4,
                                         help="peak AdamW learning rate (default: planned)")
    normalization: str = option(
        "auto", choices=("auto", "ct_window", "percentile", "zscore", "none"),
        help="intensity normalisation (auto: CT window for CT, percentiles otherwise)")
    window: tuple[float, float] | None = option(
        None, nargs=2, metavar=("LOW", "HIGH"), gui=False,
        help="ct_window: the HU window (default: around the annotated classes)")
    modality: str | None = option(None, gui=False,
                                  help="the scan's modality when its header does not tell")
    percentiles: tuple[float, float] = option(
        (0.5, 99.5), nargs=2, metavar=("LOW", "HIGH"), gui=False,
        help="percentile normalisation: LOW HIGH (default 0.5 99.5)")
    features: tuple[int, ...] | None = option(
        None, nargs="+", metavar="F", gui=False,
        help="network widths, finest first (default: planned); for networks with a "
             "'features' option")
    spacing: tuple[float, ...] | None = option(
        None, nargs="+", metavar="MM", gui=False,
        help="train at this spacing (mm, Z Y X): scans are resampled (default: the scan's own)")
    orientation: str = option(
        "as-stored", choices=("as-stored", "RAS"), gui=False,
        help="RAS: flip each scan's axes to run left->right, posterior->anterior, "
             "inferior->superior before the network, in training and whenever the model is "
             "used (a model that must read NIfTI and DICOM alike); as-stored: the arrays as "
             "they are")
    validate_every: int | None = option(None, low=0, high=100_000, none_as=0, gui=False,
                                        help="steps between validations (default: planned)")
    patience: int = option(4, low=1, high=10_000, gui=False,
                           help="validations without a gain before the validated part ends")
    fold_in: float | None = option(
        None, low=0.0, high=0.9, step=0.05, gui=False,
        help="share of the steps that end the run with the held-back voxels given back to "
             "training (default: 0.3 for a few annotated slices, 0 for dense labels)")
    augment: bool = option(True, help="augment the patches (rotation, scaling, elastic, "
                                      "intensity; never left-right mirroring)")
    freeze_encoder: bool = option(False, help="train the decoder only (a fine-tune that keeps "
                                              "what the encoder learned)")
    combine: bool = option(True, help="combine the network with your annotation for this "
                                      "scan's mask (chosen on held-back slices)")
    device: str = option("auto", help="auto (default), cpu, cuda, cuda:N, mps")
    threads: int | None = option(None, low=0, high=256, none_as=0, gui=False,
                                 help="CPU threads for torch")
    seed: int = option(0, gui=False, help="random seed")

    def __post_init__(self) -> None:
        if self.architecture != "auto" and self.architecture not in model_names():
            msg = (f"unknown architecture {self.architecture!r}; use auto or one of "
                   f"{', '.join(model_names())}")
            raise TrainingError(msg)
        if self.dims not in DIMS:
            msg = f"dims must be one of {', '.join(DIMS)}, got {self.dims!r}"
            raise TrainingError(msg)
        if self.widths not in WIDTHS:
            msg = f"widths must be fast or paper, got {self.widths!r}"
            raise TrainingError(msg)
        if self.budget_s is not None and self.budget_s <= 0:
            msg = f"the time budget must be positive (seconds), got {self.budget_s}"
            raise TrainingError(msg)
        if self.patch_size is not None:
            self.patch_size = tuple(int(p) for p in self.patch_size)


@dataclass
class TrainingPlan:
    """What a run will train and for how long, with the measurements behind it.

    ``spec`` is the network to train (from scratch) or the checkpoint's (fine-tune);
    ``train`` the loop's options; ``step_s`` the measured seconds per step; ``inference_s``
    the estimated seconds to segment the scan once; ``budget_s`` the budget it was planned
    for; ``notes`` the decisions, one line each.
    """

    spec: CheckpointSpec
    train: TrainOptions
    layout: AnnotationLayout
    step_s: float
    inference_s: float
    budget_s: float
    device: str
    notes: list[str] = field(default_factory=list)

    @property
    def train_s(self) -> float:
        """Expected seconds of training: the planned steps at the measured speed."""
        return self.train.steps * self.step_s

    @property
    def segment_s(self) -> float:
        """Expected seconds of segmenting the scan after training: once with the validated
        weights (to choose how the mask combines with the annotation), once for the mask."""
        return 2 * self.inference_s

    @property
    def eta_s(self) -> float:
        """Expected seconds of the whole run: training, then segmenting the scan."""
        return self.train_s + self.segment_s

    def summary(self) -> str:
        dims = ("2.5D" if self.spec.context_slices else "2D") if self.spec.spatial_dims == 2 \
            else "3D"
        width = self.spec.options.get("features") or self.spec.options.get("width") or ""
        shown = f" {list(width) if isinstance(width, list | tuple) else width}" if width else ""
        return (f"{self.spec.architecture} {dims}{shown}, {self.train.steps} steps of "
                f"{self.train.batch_size} x {tuple(self.train.patch_size or ())} "
                f"({self.step_s * 1000:.0f} ms each on {self.device}), about "
                f"{_clock(self.train_s)} to train and {_clock(self.segment_s)} to segment "
                f"the scan, {_clock(self.eta_s)} in all")


def _clock(seconds: float) -> str:
    total = max(0, round(seconds))
    return f"{total // 60}:{total % 60:02d}"


# ---------------------------------------------------------------------------- choices
def scaled_options(architecture: str, factor: float) -> dict[str, Any]:
    """The architecture's width options scaled by ``factor`` (at least 4 channels each; 1:
    the published widths).  Architectures without a width option are returned unchanged."""
    defaults = default_options(architecture)
    out: dict[str, Any] = {}
    if factor == 1.0:
        return out
    for key in ("features", "filters", "channels"):
        if isinstance(defaults.get(key), tuple | list):
            out[key] = [max(4, round(w * factor)) for w in defaults[key]]
    for key in ("width", "init_filters", "aspp_channels", "low_level_channels"):
        if isinstance(defaults.get(key), int):
            out[key] = max(4, round(defaults[key] * factor))
    if isinstance(defaults.get("feature_size"), int):
        step = 12 if architecture == "monai-swinunetr" else 4
        out["feature_size"] = max(step, round(defaults["feature_size"] * factor / step) * step)
    return out


def _paper_is_3d(architecture: str) -> bool:
    info = {m.name: m for m in available_models()}[architecture]
    return not info.extension_3d


def choose_dims(options: LearnOptions, layout: AnnotationLayout, spacing: Sequence[float],
                ndim: int) -> tuple[int, str]:
    """``(spatial_dims, why)`` of the network to train."""
    if ndim == 2:
        return 2, "a 2D image: a 2D network"
    if options.dims != "auto":
        return int(options.dims), f"{options.dims}D as asked"
    anisotropic = max(spacing) > ANISOTROPY * min(spacing)
    if layout.slices and not layout.dense:
        why = (f"annotated slices along axis {layout.axis}: the network is trained across them "
               "in 2D/2.5D, every annotated voxel at full in-plane resolution")
        if options.architecture != "auto" and _paper_is_3d(options.architecture):
            # measured: unet-3d on 3D patches of the brain lesion (6.5 mm slices, 3 annotated)
            # scored held-back Dice 0.00-0.08 in the 2-minute budget, its 2D form 0.6-0.8
            why += (f" ({options.architecture}'s layout in 2D; --dims 3 trains 3D patches, "
                    "which learn far less from a few slices)")
        return 2, why
    if options.architecture != "auto" and _paper_is_3d(options.architecture):
        return 3, f"{options.architecture} is a 3D network"
    if anisotropic:
        return 2, "thick slices: a 2.5D network across them"
    return 3, "near-isotropic voxels and no whole annotated slice: a 3D network"


def choose_contract(scans: Sequence[Any], labels: np.ndarray, labeled: np.ndarray,
                    options: LearnOptions) -> tuple[list[IntensityContract], str]:
    """One intensity contract per channel scan, and why."""
    contracts, notes = [], []
    for scan in scans:
        modality = options.modality or getattr(scan, "modality", "unknown") or "unknown"
        normalization = options.normalization
        if normalization == "auto":
            normalization = "ct_window" if modality == "CT" else "percentile"
        if normalization == "ct_window":
            low, high = options.window or ct_window(scan.array, labels, labeled)
            window = (float(low), float(high))
            contracts.append(IntensityContract(modality=modality, normalization="ct_window",
                                               window=window))
            notes.append(f"{modality}: HU window {window[0]:.0f}..{window[1]:.0f}")
        elif normalization == "percentile":
            low, high = options.percentiles
            contracts.append(IntensityContract(modality=modality, normalization="percentile",
                                               percentiles=(float(low), float(high))))
            notes.append(f"{modality}: {low:g}-{high:g} percentiles")
        else:
            contracts.append(IntensityContract(modality=modality, normalization=normalization))
            notes.append(f"{modality}: {normalization}")
    return contracts, "; ".join(notes)


def ct_window(array: np.ndarray, labels: np.ndarray, labeled: np.ndarray
              ) -> tuple[float, float]:
    """An HU window holding the annotated foreground classes with 150 HU to spare (within
    -1000..2000); the soft-tissue window (-160, 240) when nothing is annotated."""
    inside = labeled & (labels > 0)
    if not inside.any():
        return (-160.0, 240.0)
    values = np.asarray(array)[inside]
    low, high = (float(v) for v in np.percentile(values, [1, 99]))
    low, high = max(-1000.0, low - 150.0), min(2000.0, high + 150.0)
    if high - low < 200:
        centre = (high + low) / 2
        low, high = centre - 100.0, centre + 100.0
    return (round(low), round(high))


def choose_patch(spacing: Sequence[float], shape: Sequence[int], dims: int, axis: int | None
                 ) -> tuple[int, ...]:
    """About :data:`PATCH_MM` in-plane (multiples of 16), capped by the scan; 3D patches
    :data:`PATCH_3D` per axis (fewer across thick slices)."""
    def snap(n: float) -> int:
        return int(16 * math.ceil(n / 16))

    if dims == 2:
        plane = [i for i in range(len(shape)) if i != axis] if len(shape) == 3 else [0, 1]
        out = []
        for i in plane:
            want = min(max(PATCH_MM / spacing[i], PATCH_LIMITS[0]), PATCH_LIMITS[1])
            out.append(min(snap(want), snap(shape[i])))
        return tuple(out)
    finest = min(spacing)
    return tuple(min(snap(PATCH_3D * finest / s) if s > ANISOTROPY * finest else PATCH_3D,
                     snap(n)) for s, n in zip(spacing, shape, strict=True))


# ---------------------------------------------------------------------------- measuring
def measure_step(spec: CheckpointSpec, patch: Sequence[int], batch: int, device: torch.device,
                 *, repeats: int = 2) -> float:
    """Seconds per training step (forward, backward, AdamW) of ``spec``'s network at
    ``batch`` x ``patch`` on ``device``, after one warm-up step (random weights and data)."""
    torch.manual_seed(0)
    model = create_model(spec.architecture, spatial_dims=spec.spatial_dims,
                         in_channels=spec.in_channels, out_channels=spec.out_channels,
                         **spec.options).to(device)
    model.train()
    optimizer = torch.optim.AdamW(model.parameters(), lr=1e-3)
    x = torch.randn(batch, spec.in_channels, *patch, device=device)
    y = torch.randint(0, spec.out_channels, (batch, *patch), device=device)

    def step() -> None:
        optimizer.zero_grad(set_to_none=True)
        loss = torch.nn.functional.cross_entropy(model(x), y)
        loss.backward()
        optimizer.step()

    step()
    if device.type == "cuda":
        torch.cuda.synchronize(device)
    start = time.perf_counter()
    for _ in range(repeats):
        step()
    if device.type == "cuda":
        torch.cuda.synchronize(device)
    return (time.perf_counter() - start) / repeats


def measure_inference(spec: CheckpointSpec, window: Sequence[int], device: torch.device,
                      n_windows: int) -> float:
    """Estimated seconds to segment ``n_windows`` windows (one timed forward pass)."""
    torch.manual_seed(0)
    model = create_model(spec.architecture, spatial_dims=spec.spatial_dims,
                         in_channels=spec.in_channels, out_channels=spec.out_channels,
                         **spec.options).to(device).eval()
    x = torch.randn(1, spec.in_channels, *window, device=device)
    with torch.inference_mode():
        model(x)
        start = time.perf_counter()
        model(x)
        if device.type == "cuda":
            torch.cuda.synchronize(device)
    return (time.perf_counter() - start) * n_windows * 1.3 + 1.0


# ---------------------------------------------------------------------------- the plan
def _class_names(volumes: Sequence[LabeledVolume], n_classes: int,
                 given: dict[int, str] | None) -> dict[int, str]:
    names = {0: "background", **{k: f"class {k}" for k in range(1, n_classes)}}
    for volume in volumes:
        for value, name in volume.labels.class_names.items():
            if 0 < value < n_classes and not name.startswith("class "):
                names[value] = name
    names.update({k: v for k, v in (given or {}).items() if 0 <= k < n_classes})
    return names


def plan_training(volumes: Sequence[LabeledVolume], options: LearnOptions, *,
                  start: CheckpointSpec | None = None, class_names: dict[int, str] | None = None,
                  n_classes: int | None = None) -> Job[TrainingPlan]:
    """Measure and plan a run (a generator job: it yields a log line per decision).

    ``start``: the spec of the checkpoint a fine-tune starts from (its network, classes,
    contract and spacing are kept).
    """
    if not volumes:
        msg = "no labeled volume given; give at least one scan with labels"
        raise TrainingError(msg)
    first = volumes[0]
    scan = first.scans[0]
    labeled = first.labeled_mask()
    labels = first.labels.array
    device = resolve_device(options.device)
    gpu = device.type == "cuda"
    budget = options.budget_s or DEFAULT_BUDGET_S["gpu" if gpu else "cpu"]
    notes: list[str] = []
    if start is None:
        layout = describe_annotation(labeled, labels)
        dims, why = choose_dims(options, layout, scan.geometry.spacing, scan.ndim)
        notes.append(why)
        axis = layout.axis if (dims == 2 and scan.ndim == 3 and layout.axis is not None) else (
            _thickest(scan.geometry.spacing) if dims == 2 and scan.ndim == 3 else None)
        if dims == 2 and scan.ndim == 3 and layout.axis is None:
            layout = describe_annotation(labeled, labels, axis=axis)
        largest = max(int(np.max(np.where(v.labeled_mask(), v.labels.array, 0)))
                      for v in volumes)
        if n_classes is not None and n_classes <= largest:
            msg = (f"{n_classes} classes were asked for but the labels hold value {largest}; "
                   f"give at least {largest + 1} classes")
            raise TrainingError(msg)
        n_classes = n_classes or largest + 1
        if n_classes < 2:
            msg = ("the labels hold only background (0) where they are labeled; label at "
                   "least one structure")
            raise TrainingError(msg)
        contracts, why = choose_contract(first.scans, labels, labeled, options)
        notes.append(why)
        context = 0
        if dims == 2 and scan.ndim == 3 and axis is not None:
            spacing = scan.geometry.spacing
            in_plane_min = min(s for i, s in enumerate(spacing) if i != axis)
            thick = spacing[axis] > ANISOTROPY * in_plane_min
            context = (0 if thick else CONTEXT_SLICES) if options.context_slices is None \
                else int(options.context_slices)
            if options.context_slices is None:
                notes.append(f"{'no' if thick else CONTEXT_SLICES} neighbouring slice(s) as "
                             f"context ({spacing[axis]:.1f} mm slices, {in_plane_min:.2f} mm "
                             "pixels" + (": thick slices differ too much to help)" if thick
                                         else ")"))
        architecture = "unet" if options.architecture == "auto" else options.architecture
        in_plane = (tuple(s for i, s in enumerate(scan.geometry.spacing) if i != axis)
                    if dims == 2 and scan.ndim == 3 else tuple(scan.geometry.spacing))
        if options.features is not None and "features" not in default_options(architecture):
            msg = (f"{architecture} has no 'features' option (its widths are "
                   f"{', '.join(k for k in default_options(architecture))}); leave --features out")
            raise TrainingError(msg)
        target = tuple(float(t) for t in options.spacing) if options.spacing else in_plane
        spec = CheckpointSpec(
            architecture=architecture, spatial_dims=dims,
            in_channels=len(first.scans) * (2 * context + 1), out_channels=n_classes,
            options={"features": list(options.features)} if options.features else {},
            class_names=_class_names(volumes, n_classes, class_names),
            intensity=contracts, target_spacing=target,
            slice_axis=axis if dims == 2 and scan.ndim == 3 else None, context_slices=context,
            orientation=None if options.orientation == "as-stored" else options.orientation)
    else:
        spec = start
        dims = spec.spatial_dims
        axis = spec.slice_axis if dims == 2 and scan.ndim == 3 else None
        if dims == 2 and scan.ndim == 3 and axis is None:
            axis = 0
        layout = describe_annotation(labeled, labels, axis=axis if dims == 2 else None)
        notes.append(f"fine-tune of {spec.architecture} ({dims}D): its network, classes, "
                     "intensity contract and spacing are kept")
    notes.insert(0, layout.summary())
    patch = options.patch_size or choose_patch(scan.geometry.spacing, scan.shape, dims, axis)
    if len(patch) != dims:
        msg = f"patch {tuple(patch)} must have {dims} sizes for a {dims}D network"
        raise TrainingError(msg)
    area = math.prod(patch)
    batch = options.batch_size or (max(2, min(16, round(8 * 128 * 128 / area))) if dims == 2
                                   else 2)
    fixed_width = start is not None or options.widths == "paper" or options.features is not None
    factors: Sequence[float] = (1.0,) if fixed_width else WIDTH_FACTORS
    if start is None and options.architecture == "auto" and options.widths == "fast":
        factors = (0.5, 0.25)  # U-Net 16..256 published: 8..128, 4..64
    window = _inference_window(scan.shape, dims, axis)
    n_windows = _n_windows(scan.shape, window, dims, axis)
    chosen: tuple[CheckpointSpec, float, float] | None = None
    for factor in factors:
        candidate = spec if fixed_width else replace(
            spec, options=scaled_options(spec.architecture, factor))
        if not fixed_width and options.architecture == "auto":
            candidate = replace(candidate, options={"features": [16, 32, 64, 128] if factor == 0.5
                                                    else [8, 16, 32, 64]})
        step_s = measure_step(candidate, patch, batch, device)
        inference_s = measure_inference(candidate, window, device, n_windows)
        if distributed.current().is_distributed:  # every rank plans the same run
            step_s = max(distributed.gather_objects(step_s))
            inference_s = max(distributed.gather_objects(inference_s))
        yield Log(f"measured {candidate.architecture} {candidate.options or '(published)'}: "
                  f"{step_s * 1000:.0f} ms per step, about {inference_s:.0f} s to segment")
        chosen = (candidate, step_s, inference_s)
        train_s = budget - 2 * inference_s
        if options.steps is not None or train_s / step_s >= 4 * MIN_STEPS:
            break
    assert chosen is not None
    spec, step_s, inference_s = chosen
    train_s = budget - 2 * min(inference_s, INFERENCE_SHARE * budget / 2)
    steps = options.steps or int(min(MAX_STEPS, train_s / step_s))
    if options.steps is None and steps < MIN_STEPS:
        need = MIN_STEPS * step_s + 2 * inference_s
        msg = (f"a budget of {budget:.0f} s is too small to learn anything here: "
               f"{MIN_STEPS} steps of the smallest network take {MIN_STEPS * step_s:.0f} s and "
               f"segmenting the scan {inference_s:.0f} s; give at least {math.ceil(need)} s, or "
               "crop the scan")
        raise TrainingError(msg)
    if start is None:
        spec = replace(spec, patch_size=window if dims == 2 else tuple(patch))
    anisotropic = max(scan.geometry.spacing) > ANISOTROPY * min(scan.geometry.spacing)
    augment = AugmentOptions(
        flip=False, affine_probability=0.7, rotation_deg=15.0, scale=0.15,
        elastic_probability=0.2, intensity_probability=0.5,
        in_plane=_thickest(scan.geometry.spacing) if dims == 3 and anisotropic else None
    ) if options.augment else AugmentOptions.none()
    lr = options.learning_rate or ((3e-3 if dims == 2 else 1e-3) if start is None else 1e-3)
    validate_every = options.validate_every or max(5, steps // 12)
    world = distributed.current().world_size
    if batch % world:
        batch = max(world, round(batch / world) * world)
    train = TrainOptions(
        steps=steps, batch_size=batch, patch_size=tuple(patch), learning_rate=lr,
        warmup_steps=min(20, max(1, steps // 20)), foreground_fraction=0.5,
        validate_every=validate_every, patience=options.patience,
        fold_in=options.fold_in if options.fold_in is not None else (
            0.0 if layout.dense else FOLD_IN),
        slice_axis=axis or 0, device=str(device), threads=options.threads, seed=options.seed,
        augment=augment, freeze_encoder=options.freeze_encoder,
        time_limit_s=None if options.steps else 1.5 * steps * step_s + 10.0)
    fits = (f"{steps} steps as asked" if options.steps else
            f"{steps} steps fit the {budget:.0f} s budget")
    notes.append(f"{fits} ({step_s * 1000:.0f} ms per step measured here; segmenting the "
                 f"scan twice takes about {2 * inference_s:.0f} s)")
    return TrainingPlan(spec=spec, train=train, layout=layout, step_s=step_s,
                        inference_s=inference_s, budget_s=budget, device=str(device),
                        notes=notes)


def _thickest(spacing: Sequence[float]) -> int:
    return int(np.argmax(spacing))


def _inference_window(shape: Sequence[int], dims: int, axis: int | None) -> tuple[int, ...]:
    """Whole slices (up to 512 x 512) for 2D networks; 96^3 (capped by the scan) for 3D."""
    def snap(n: int) -> int:
        return int(16 * math.ceil(n / 16))

    if dims == 2:
        plane = [n for i, n in enumerate(shape) if i != axis] if len(shape) == 3 else list(shape)
        return tuple(min(snap(n), 512) for n in plane)
    return tuple(min(snap(n), 96) for n in shape)


def _n_windows(shape: Sequence[int], window: Sequence[int], dims: int, axis: int | None) -> int:
    if dims == 2:
        plane = [n for i, n in enumerate(shape) if i != axis] if len(shape) == 3 else list(shape)
        per_slice = math.prod(max(1, math.ceil(n / w)) for n, w in zip(plane, window,
                                                                      strict=True))
        return per_slice * (shape[axis] if len(shape) == 3 and axis is not None else 1)
    return math.prod(max(1, math.ceil(n / (w / 2))) for n, w in zip(shape, window, strict=True))
