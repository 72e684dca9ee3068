"""The inference engine: a checkpoint loaded once, run over scans as a generator job.

``Predictor.predict_job(scans, options)`` yields :class:`~napari_medseg.events.Progress` per
batch of windows and returns a :class:`Prediction` (label map on the scan's grid, optional
probabilities).  Closing the generator between two yields stops it and leaves nothing behind.

What happens, in order: channels are checked to share a grid; the scan is resampled to the
checkpoint's spacing (linear) if asked; each channel is normalised by its intensity contract;
windows are run in batches (mirroring TTA and ensembles average probabilities, or vote),
blended with a Gaussian importance map in a slab accumulator, and reduced by argmax into a
uint8/uint16 label map as soon as a slab is final; the labels go back to the scan's grid
(nearest) and are cleaned up if asked.
"""

from __future__ import annotations

import contextlib
import dataclasses
import itertools
import math
import time
from collections.abc import Generator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import numpy.typing as npt
import torch
from torch import nn

from napari_medseg.errors import GeometryMismatchError, MedsegError, setting
from napari_medseg.events import Event, Job, Log, ProgressClock
from napari_medseg.geometry.grid import Grid, grid_at_spacing, grid_oriented
from napari_medseg.geometry.resample import resample_to
from napari_medseg.inference.catalog import find_checkpoint
from napari_medseg.inference.optimize import optimize_for_inference
from napari_medseg.inference.options import PredictOptions
from napari_medseg.inference.postprocess import postprocess
from napari_medseg.inference.preprocess import prepare_channels
from napari_medseg.inference.tiling import SlabAccumulator, Tile, TilePlan
from napari_medseg.io.limits import MAX_SCAN_BYTES
from napari_medseg.models import CheckpointSpec, load_checkpoint
from napari_medseg.models.device import resolve_device
from napari_medseg.models.scan_annotation import ScanAnnotation
from napari_medseg.scan import LabelMap, Scan, default_class_names

if TYPE_CHECKING:
    from napari_medseg.provenance import ProvenanceRecord

DEFAULT_TILE = {2: (256, 256), 3: (96, 96, 96)}


class InferenceError(MedsegError):
    """A segmentation run could not start or finish (the message says what to change)."""


@dataclass
class Prediction:
    """The result of a run: labels on the scan's grid and, if asked, probabilities.

    ``probabilities`` is ``(K, *spatial)`` float16 on the scan's grid (``None`` unless
    ``keep_probabilities``); ``provenance`` the record of how the labels were made, when the
    job was asked for one (see :func:`~napari_medseg.inference.segment.segment_job`).
    """

    labels: LabelMap
    probabilities: npt.NDArray[np.float16] | None
    device: str
    seconds: float
    n_tiles: int
    provenance: ProvenanceRecord | None = None
    #: the fit check of each model on the scan (:class:`~napari_medseg.inference.fit.FitReport`)
    fit: list[Any] = dataclasses.field(default_factory=list)


_OOM_WORDS = ("out of memory", "can't allocate memory", "cannot allocate memory",
              "not enough memory", "failed to allocate")


def _is_out_of_memory(exc: BaseException) -> bool:
    """CUDA/MPS out of memory, torch's CPU allocator failing, or a numpy MemoryError."""
    if isinstance(exc, torch.OutOfMemoryError | MemoryError):
        return True
    text = str(exc).lower()
    return isinstance(exc, RuntimeError) and any(word in text for word in _OOM_WORDS)


class Predictor:
    """One or several networks (an ensemble) with their checkpoint spec, on one device.

    ``combine``: ``"mean"`` averages softmax probabilities over ensemble members and TTA
    flips; ``"vote"`` counts each member's argmax.  A single model without TTA blends raw
    logits (as nnU-Net and MONAI do).
    """

    def __init__(
        self,
        models: nn.Module | Sequence[nn.Module],
        spec: CheckpointSpec,
        *,
        device: str = "auto",
        combine: str = "mean",
    ) -> None:
        if combine not in ("mean", "vote"):
            msg = f"combine must be 'mean' or 'vote', got {combine!r}"
            raise ValueError(msg)
        self.device = resolve_device(device)
        # an eval-mode copy with batch norm folded into the convolutions and ReLU fused into
        # them (optimize.py; the caller's model is left as it is): same outputs to rounding
        self.models = [optimize_for_inference(m).to(self.device) for m in (
            [models] if isinstance(models, nn.Module) else list(models))]
        self.spec = spec
        self.combine = combine
        # channels-last: oneDNN (CPU) and cuDNN (GPU) pick faster convolution kernels
        # (measured 1.7x for a 3D U-Net at 96^3 on 2 CPU cores)
        if self.device.type in ("cuda", "cpu"):
            memory_format = torch.channels_last_3d if spec.spatial_dims == 3 else (
                torch.channels_last)
            self.models = [
                m.to(memory_format=memory_format)  # type: ignore[call-overload]
                for m in self.models
            ]

    @classmethod
    def load(
        cls,
        sources: str | Path | Sequence[str | Path],
        *,
        device: str = "auto",
        combine: str = "mean",
    ) -> Predictor:
        """Load one checkpoint (a path or a starter-model name) or an ensemble of them."""
        items = [sources] if isinstance(sources, str | Path) else list(sources)
        if not items:
            msg = "no checkpoint given"
            raise InferenceError(msg)
        models, specs = [], []
        for item in items:
            model, spec = load_checkpoint(find_checkpoint(item), device="cpu")
            models.append(model)
            specs.append(spec)
        first = specs[0]
        for other in specs[1:]:
            same = (other.spatial_dims, other.in_channels, other.out_channels) == (
                first.spatial_dims, first.in_channels, first.out_channels)
            if not same:
                msg = (
                    "ensemble members must share dims, input channels and classes; "
                    f"{first.architecture} has ({first.spatial_dims}D, {first.in_channels} in, "
                    f"{first.out_channels} out), {other.architecture} has "
                    f"({other.spatial_dims}D, {other.in_channels} in, {other.out_channels} out)"
                )
                raise InferenceError(msg)
        return cls(models, first, device=device, combine=combine)

    # ---------------------------------------------------------------- public API
    def predict(self, scans: Scan | Sequence[Scan], options: PredictOptions | None = None
                ) -> Prediction:
        """Run :meth:`predict_job` to the end."""
        from napari_medseg.events import run_to_end

        return run_to_end(self.predict_job(scans, options))

    def predict_job(
        self, scans: Scan | Sequence[Scan], options: PredictOptions | None = None
    ) -> Job[Prediction]:
        """Segment ``scans`` (one per input channel, on one grid); a generator job."""
        options = options or PredictOptions()
        channels = [scans] if isinstance(scans, Scan) else list(scans)
        try:
            return (yield from self._predict(channels, options))
        except (RuntimeError, MemoryError) as exc:  # outside the windows: no smaller batch
            if not _is_out_of_memory(exc):
                raise
            shape = channels[0].shape if channels else ()
            msg = (
                f"out of memory on {self.device} while preparing or assembling a scan of shape "
                f"{shape} ({type(exc).__name__}); close other programs, crop the scan, or turn "
                f"off resampling to the model's spacing ({setting('resample', False)}) or "
                f"probabilities ({setting('keep_probabilities', False)})"
            )
            raise InferenceError(msg) from exc

    def _predict(self, channels: list[Scan], options: PredictOptions) -> Job[Prediction]:
        start = time.perf_counter()
        options = self._with_checkpoint_defaults(options, channels)
        reference = self._check_inputs(channels, options)
        work_grid, arrays = self._resampled(channels, options)
        if work_grid.geometry is not reference.geometry:
            yield Log(f"resampled to {tuple(round(s, 3) for s in work_grid.geometry.spacing)} mm "
                      "(the model's spacing)")
        volume = prepare_channels(arrays, list(self.spec.intensity))
        del arrays
        volume = self._with_context(volume, options)
        plan = self._plan(volume.shape[1:], options)
        labels, probabilities = yield from self._run(volume, plan, options)
        del volume
        if work_grid.shape != reference.shape or not work_grid.geometry.is_close(
                reference.geometry):
            labels, probabilities = self._back_to_grid(labels, probabilities, work_grid,
                                                       reference)
        labels = postprocess(labels, options.postprocess)
        if options.own_scan and self.spec.scan_annotation is not None:
            combined = own_scan_mask(labels, channels[0], self.spec.scan_annotation)
            if combined is not None:
                labels = combined
                yield Log("this is the scan the model was learned from: its mask follows your "
                          f"annotation as in training ({self.spec.scan_annotation.rule})")
        names = dict(self.spec.class_names) or default_class_names(range(self.spec.out_channels))
        label_map = LabelMap(array=labels, geometry=reference.geometry, class_names=names)
        return Prediction(
            labels=label_map,
            probabilities=probabilities,
            device=str(self.device),
            seconds=time.perf_counter() - start,
            n_tiles=plan.n_tiles,
        )

    # ---------------------------------------------------------------- checks and geometry
    def _with_checkpoint_defaults(self, options: PredictOptions, channels: list[Scan]
                                  ) -> PredictOptions:
        """The slice axis and 2.5D context a 2D checkpoint was trained with, where the
        options leave them open (a context the model was not trained with is refused)."""
        spec = self.spec
        if spec.spatial_dims != 2 or not channels or channels[0].ndim != 3:
            return options
        changes: dict[str, Any] = {}
        if options.slice_axis is None and spec.slice_axis is not None:
            changes["slice_axis"] = spec.slice_axis
        if spec.context_slices and options.context_slices != spec.context_slices:
            if options.context_slices:
                msg = (f"this model was trained with {spec.context_slices} context slice(s) on "
                       f"each side; it cannot run with {options.context_slices} (leave "
                       "context_slices at 0 to use the model's)")
                raise InferenceError(msg)
            changes["context_slices"] = spec.context_slices
        return dataclasses.replace(options, **changes) if changes else options

    def _check_inputs(self, channels: list[Scan], options: PredictOptions) -> Grid:
        if not channels:
            msg = "no scan given"
            raise InferenceError(msg)
        first = channels[0]
        for other in channels[1:]:
            if other.shape != first.shape or not other.geometry.is_close(first.geometry):
                what = (f"shape {other.shape} vs {first.shape}" if other.shape != first.shape
                        else first.geometry.describe_difference(other.geometry))
                msg = (
                    f"channel scans must share one grid: {other.name!r} and {first.name!r} "
                    f"differ ({what}); register/resample them first (napari-medseg fuse)"
                )
                raise GeometryMismatchError(msg)
        per_slice = 2 * options.context_slices + 1
        expected = self.spec.in_channels
        if len(channels) * per_slice != expected:
            context = f" x {per_slice} context slices" if per_slice > 1 else ""
            msg = (
                f"the model {self.spec.architecture!r} takes {expected} input channel(s) but "
                f"got {len(channels)} scan(s){context}; give one scan per channel "
                f"({', '.join(c.modality for c in self.spec.intensity) or 'any modality'})"
            )
            raise InferenceError(msg)
        dims = self.spec.spatial_dims
        if dims == 3 and first.ndim == 2:
            msg = "this is a 3D model and the scan is a 2D image; pick a 2D model"
            raise InferenceError(msg)
        if dims == 2 and first.ndim == 3:
            if options.slice_axis is None:
                msg = (
                    "a 2D model on a 3D scan needs an axis to slice along: "
                    f"{setting('slice_axis', 0)} (axial for a Z,Y,X scan), 1 or 2"
                )
                raise InferenceError(msg)
            if options.slice_axis not in (0, 1, 2):
                msg = f"slice_axis must be 0, 1 or 2, got {options.slice_axis}"
                raise InferenceError(msg)
        elif options.context_slices:
            msg = "context_slices (2.5D) applies to 2D models on 3D scans only"
            raise InferenceError(msg)
        return Grid(geometry=first.geometry, shape=first.shape)

    def _resampled(self, channels: list[Scan], options: PredictOptions
                   ) -> tuple[Grid, list[npt.NDArray[Any]]]:
        reference = Grid(geometry=channels[0].geometry, shape=channels[0].shape)
        target = self.spec.target_spacing if options.resample else None
        grid = grid_at_spacing(grid_oriented(reference, self.spec.orientation), target,
                               slice_axis=options.slice_axis)
        if grid is reference:
            return reference, [c.array for c in channels]
        needed = math.prod(grid.shape) * 4 * (len(channels) + 1)  # float32 inputs and output
        if needed > max(MAX_SCAN_BYTES, 8 * math.prod(reference.shape) * 4 * len(channels)):
            msg = (
                f"resampling the scan of shape {reference.shape} to the model's spacing "
                f"{grid.geometry.spacing} mm would make a {grid.shape} grid "
                f"({needed / 1024**3:.1f} GiB); the checkpoint's target spacing does not suit "
                f"this scan: turn resampling off ({setting('resample', False)}) or crop the "
                "scan"
            )
            raise InferenceError(msg)
        arrays = [resample_to(c, grid, interpolation="linear").array for c in channels]
        return grid, arrays

    def _back_to_grid(
        self,
        labels: npt.NDArray[Any],
        probabilities: npt.NDArray[np.float16] | None,
        work: Grid,
        reference: Grid,
    ) -> tuple[npt.NDArray[Any], npt.NDArray[np.float16] | None]:
        on_work = LabelMap(array=labels, geometry=work.geometry, class_names={0: "background"})
        back = resample_to(on_work, reference, interpolation="nearest").array.astype(labels.dtype)
        if probabilities is not None:
            probabilities = np.stack([
                resample_to(Scan(array=p.astype(np.float32), geometry=work.geometry), reference,
                            interpolation="linear").array.astype(np.float16)
                for p in probabilities
            ])
        return back, probabilities

    @staticmethod
    def _with_context(volume: npt.NDArray[np.float32], options: PredictOptions
                      ) -> npt.NDArray[np.float32]:
        """2.5D: stack each slice with ``k`` neighbours per side as channels (edges repeat)."""
        k = options.context_slices
        if k == 0:
            return volume
        axis = 1 + int(options.slice_axis or 0)
        n = volume.shape[axis]
        stacked = [
            np.take(volume, np.clip(np.arange(n) + offset, 0, n - 1), axis=axis)
            for offset in range(-k, k + 1)
        ]
        # channel order: for each input channel, slices -k..k (matches training)
        return np.concatenate(
            [s[c : c + 1] for c in range(volume.shape[0]) for s in stacked], axis=0)

    def _plan(self, shape: tuple[int, ...], options: PredictOptions) -> TilePlan:
        dims = self.spec.spatial_dims
        window = options.tile or self.spec.patch_size or DEFAULT_TILE[dims]
        if len(window) != dims:
            msg = f"tile {window} must have {dims} sizes for this {dims}D model"
            raise InferenceError(msg)
        if dims == 2 and len(shape) == 3:
            axis = int(options.slice_axis or 0)
            full = list(window)
            full.insert(axis, 1)
            return TilePlan.build(shape, full, options.overlap, slab_axis=axis)
        return TilePlan.build(shape, window, options.overlap)

    # ---------------------------------------------------------------- the run
    def _autocast(self) -> contextlib.AbstractContextManager[Any]:
        if self.device.type == "cuda":
            dtype = torch.bfloat16 if torch.cuda.is_bf16_supported() else torch.float16
            return torch.autocast(device_type="cuda", dtype=dtype)
        return contextlib.nullcontext()

    def _forward(self, x: torch.Tensor, options: PredictOptions, squeeze_axis: int | None
                 ) -> torch.Tensor:
        """Scores ``(B, K, *window)``: logits for one plain model, else mean probabilities."""
        if squeeze_axis is not None:
            x = x.squeeze(2 + squeeze_axis)
        if self.device.type in ("cuda", "cpu"):
            fmt = torch.channels_last_3d if x.ndim == 5 else torch.channels_last
            x = x.contiguous(memory_format=fmt)
        spatial = list(range(2, x.ndim))
        flips: list[tuple[int, ...]] = [()]
        if options.tta:
            flips = [c for r in range(len(spatial) + 1) for c in itertools.combinations(spatial, r)]
        single = len(self.models) == 1 and len(flips) == 1
        total: torch.Tensor | None = None
        with self._autocast():
            for model in self.models:
                for axes in flips:
                    y = model(x.flip(axes) if axes else x).float()
                    if axes:
                        y = y.flip(axes)
                    if single:
                        total = y
                        break
                    if self.combine == "vote":
                        y = nn.functional.one_hot(y.argmax(1), y.shape[1]).movedim(-1, 1).float()
                    else:
                        y = torch.softmax(y, dim=1)
                    total = y if total is None else total + y
        assert total is not None
        if not single:
            total = total / (len(self.models) * len(flips))
        if squeeze_axis is not None:
            total = total.unsqueeze(2 + squeeze_axis)
        return total

    def _run(self, volume: npt.NDArray[np.float32], plan: TilePlan, options: PredictOptions
             ) -> Generator[Event, None, tuple[npt.NDArray[Any], npt.NDArray[np.float16] | None]]:
        n_classes = self.spec.out_channels
        label_dtype = np.uint8 if n_classes <= 256 else np.uint16
        labels = np.zeros(plan.shape, dtype=label_dtype)
        probabilities = (np.zeros((n_classes, *plan.shape), dtype=np.float16)
                         if options.keep_probabilities else None)
        squeeze = options.slice_axis if (self.spec.spatial_dims == 2 and volume.ndim == 4) else None
        logits_blended = len(self.models) == 1 and not options.tta
        source = torch.from_numpy(volume)
        stitch_device = self.device
        accumulator = SlabAccumulator(plan, n_classes, stitch_device)
        batch_size = options.batch_size or self._planned_batch(plan)
        clock = ProgressClock("segment", plan.n_tiles)
        done = 0
        slab_starts = plan.slab_starts
        for i, slab_start in enumerate(slab_starts):
            pending = list(plan.tiles_in_slab(slab_start))
            while pending:
                batch, rest = pending[:batch_size], pending[batch_size:]
                try:
                    scores = self._scores(source, batch, options, squeeze)
                    accumulator_tiles(accumulator, batch, scores)
                except (torch.OutOfMemoryError, RuntimeError, MemoryError) as exc:
                    if not _is_out_of_memory(exc):
                        raise
                    if self.device.type == "cuda":
                        torch.cuda.empty_cache()
                    if batch_size > 1:
                        batch_size = max(1, batch_size // 2)
                        yield Log(f"out of memory: batch size lowered to {batch_size}",
                                  level="warning")
                        continue
                    if stitch_device.type != "cpu":
                        stitch_device = torch.device("cpu")
                        accumulator = _moved(accumulator, stitch_device)
                        yield Log("out of memory: stitching on the CPU", level="warning")
                        continue
                    msg = (
                        f"out of memory on {self.device} even with one window per batch "
                        f"(batch size 1, stitching on the CPU); use a smaller tile (now "
                        f"{plan.window}, e.g. {setting('tile', _halved(plan.window))}), "
                        f"another device ({setting('device', 'cpu')}), or crop the scan"
                    )
                    raise InferenceError(msg) from exc
                pending = rest
                done += len(batch)
                yield clock.event(done, message=f"window {done} of {plan.n_tiles}")
            end = slab_starts[i + 1] if i + 1 < len(slab_starts) else plan.shape[plan.slab_axis]
            scores, weights = accumulator.done(end)  # views: read before advance()
            region = [slice(None)] * len(plan.shape)
            region[plan.slab_axis] = slice(slab_start, end)
            labels[tuple(region)] = scores.argmax(0).cpu().numpy().astype(label_dtype)
            if probabilities is not None:
                blended = scores / weights
                if logits_blended:
                    blended = torch.softmax(blended, dim=0)
                probabilities[(slice(None), *region)] = blended.cpu().numpy().astype(np.float16)
            del scores, weights
            accumulator.advance(end)
        return labels, probabilities

    def _planned_batch(self, plan: TilePlan) -> int:
        """Windows per batch from free memory: 1 on CPU/MPS; on CUDA, half the free memory
        over an estimated 64 float32 activations per window voxel (a U-Net-sized network)."""
        if self.device.type != "cuda":
            return 1
        free, _total = torch.cuda.mem_get_info(self.device)
        per_window = math.prod(plan.window) * 4 * 64 * max(1, len(self.models))
        return int(max(1, min(16, (free // 2) // per_window)))

    def _scores(self, source: torch.Tensor, batch: list[Tile], options: PredictOptions,
                squeeze: int | None) -> torch.Tensor:
        windows = torch.stack([source[(slice(None), *tile.slices())] for tile in batch])
        with torch.inference_mode():
            return self._forward(windows.to(self.device), options, squeeze)


def _halved(window: Sequence[int]) -> tuple[int, ...]:
    """A window half the size along every axis of more than one voxel (a smaller tile to try)."""
    return tuple(max(1, int(w) // 2) for w in window)


def own_scan_mask(labels: npt.NDArray[Any], scan: Scan, annotation: ScanAnnotation
                  ) -> npt.NDArray[Any] | None:
    """``labels`` combined with the annotation a model was learned from, when ``scan`` is that
    scan (same content hash); ``None`` for any other scan."""
    from napari_medseg.inference.combine import Annotation, apply_rule
    from napari_medseg.provenance import content_hash

    if tuple(labels.shape) != annotation.shape or content_hash(
            scan.array, geometry=scan.geometry) != annotation.scan_hash:
        return None
    values, labeled = annotation.arrays()
    kept = Annotation(labels=values, labeled=labeled, axis=annotation.axis,
                      slices=annotation.slices, spacing=scan.geometry.spacing)
    return apply_rule(annotation.rule, labels, kept).astype(labels.dtype)


def accumulator_tiles(accumulator: SlabAccumulator, batch: list[Tile], scores: torch.Tensor
                      ) -> None:
    """Add a batch of window scores to the slab accumulator."""
    for tile, tile_scores in zip(batch, scores, strict=True):
        accumulator.add(tile, tile_scores)


def _moved(accumulator: SlabAccumulator, device: torch.device) -> SlabAccumulator:
    accumulator.scores = accumulator.scores.to(device)
    accumulator.weights = accumulator.weights.to(device)
    accumulator.importance = accumulator.importance.to(device)
    return accumulator
