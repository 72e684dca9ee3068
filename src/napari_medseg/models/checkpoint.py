"""Checkpoints that describe themselves and run no code when loaded.

A checkpoint is ONE safetensors file: the weights of the registry-built model (names as in
``model.state_dict()``, so prefixed ``net.``) and, in the safetensors header's
``__metadata__`` under ``"medseg_spec"``, a JSON :class:`CheckpointSpec`: architecture and
options, channels, class names, intensity contract, target spacing, patch size, provenance
and, in newer checkpoints, a record of the training data (``training_data``:
modality, spacing, field of view, intensity statistics; the fit check compares scans with
it).  Older specs have no such field and load as they did ("fit unknown").

Loading reads the header first, validates the spec, builds the model on the ``meta`` device
(no memory) to check the parameter budget and that every tensor name and shape matches, and
only then allocates and fills it.  Nothing is ever unpickled.  Plain PyTorch state dicts are
imported into a registered architecture with :func:`import_state_dict` (``weights_only``).
"""

from __future__ import annotations

import contextlib
import json
import math
import os
import uuid
from collections.abc import Mapping
from dataclasses import asdict, dataclass, field, fields, replace
from pathlib import Path
from typing import Any

import torch
from safetensors.torch import load_file, save_file
from torch import nn

from napari_medseg.errors import CheckpointError, CheckpointExistsError, setting

from .registry import count_parameters, create_model, default_options, meta_device, model_names
from .scan_annotation import ScanAnnotation
from .training_record import RecordError, TrainingDataRecord

FORMAT_VERSION = 1
SPEC_KEY = "medseg_spec"
MAX_PARAMETERS = 1_000_000_000
_MAX_HEADER_BYTES = 100 * 2**20
_MAX_CHANNELS = 1024
_MAX_OPTION_INT = 65536
_MAX_OPTION_LIST = 16
#: Options that count layers, blocks, steps or heads (or size a kernel or a dilation): a
#: checkpoint asking for thousands would take minutes just to build, so they are capped.
_COUNT_OPTIONS = frozenset({
    "convs", "layers", "steps", "blocks_down", "blocks_up", "depths", "crf_iterations",
    "num_heads", "window_size", "kernel_size", "prune_level", "dilation", "output_stride",
    "atrous_rates"})
_MAX_COUNT = 64
#: Largest patch edge (voxels) and the range of target spacings (mm) a spec may name.
_MAX_PATCH = 4096
_SPACING_RANGE = (1e-3, 1e3)
NORMALIZATIONS = ("ct_window", "percentile", "zscore", "none")


@dataclass(frozen=True)
class IntensityContract:
    """How one input channel must be prepared before the network sees it.

    ``normalization``: ``"ct_window"`` (clip HU to ``window`` = (low, high), scale to [0, 1]),
    ``"percentile"`` (scale the ``percentiles`` (low, high) of the scan to [0, 1], e.g. MR),
    ``"zscore"`` (zero mean, unit variance) or ``"none"``; ``clip`` clips to the range.
    """

    modality: str = "CT"
    normalization: str = "none"
    window: tuple[float, float] | None = None
    percentiles: tuple[float, float] | None = None
    clip: bool = True

    def __post_init__(self) -> None:
        if self.normalization not in NORMALIZATIONS:
            msg = (f"unknown normalization {self.normalization!r}; "
                   f"use one of {', '.join(NORMALIZATIONS)}")
            raise ValueError(msg)
        for name in ("window", "percentiles"):
            value = getattr(self, name)
            if value is not None:
                pair = tuple(float(v) for v in value)
                if len(pair) != 2 or not pair[0] < pair[1]:
                    msg = f"{name} must be (low, high) with low < high, got {value!r}"
                    raise ValueError(msg)
                object.__setattr__(self, name, pair)
        if self.normalization == "ct_window" and self.window is None:
            msg = "ct_window normalization needs window=(low, high) in HU, e.g. (-160, 240)"
            raise ValueError(msg)
        if self.normalization == "percentile" and self.percentiles is None:
            msg = "percentile normalization needs percentiles=(low, high), e.g. (0.5, 99.5)"
            raise ValueError(msg)


@dataclass
class CheckpointSpec:
    """Everything needed to rebuild, feed and trust a trained network.

    ``class_names`` maps label value to name; ``intensity`` has one contract per input channel;
    ``target_spacing`` is in mm, ``(Z, Y, X)`` (``(Y, X)`` in 2D); ``patch_size`` in voxels;
    a 2D model trained on 3D scans names the array axis it slices across (``slice_axis``) and,
    for 2.5D, the ``context_slices`` k on each side it sees as extra channels (``in_channels =
    scans * (2k + 1)``, each scan's slices ``-k..k`` in a row); ``provenance`` holds e.g.
    ``data_hash``, ``steps``, ``date``, ``command``, ``metrics``, ``parent`` (free-form JSON).
    ``training_data`` describes the training scans, one channel record per input scan
    (:class:`~napari_medseg.models.training_record.TrainingDataRecord`, made by
    :func:`napari_medseg.inference.fit.describe_training_data`); ``None`` in checkpoints
    made before it existed, and then left out of the JSON, so that older napari-medseg
    versions read such files as before.  A model learned from a few slices of one scan keeps
    that annotation and the rule that made the scan's mask (``scan_annotation``,
    :class:`~napari_medseg.models.scan_annotation.ScanAnnotation`): predicting that very scan
    gives the training's mask.  ``orientation`` (``"RAS"``, see
    :data:`napari_medseg.geometry.grid.ORIENTATIONS`) makes training and inference flip a
    scan's axes to run that way first, so a model learned from NIfTI files reads a DICOM
    series the same way up; ``None`` (older checkpoints, and left out of the JSON then): the
    arrays as stored.
    """

    architecture: str
    spatial_dims: int
    in_channels: int
    out_channels: int
    options: dict[str, Any] = field(default_factory=dict)
    class_names: dict[int, str] = field(default_factory=dict)
    intensity: list[IntensityContract] = field(default_factory=list)
    target_spacing: tuple[float, ...] | None = None
    patch_size: tuple[int, ...] | None = None
    slice_axis: int | None = None
    context_slices: int = 0
    provenance: dict[str, Any] = field(default_factory=dict)
    format_version: int = FORMAT_VERSION
    training_data: TrainingDataRecord | None = None
    scan_annotation: ScanAnnotation | None = None
    orientation: str | None = None

    def to_json(self) -> str:
        annotation = self.scan_annotation
        data = asdict(replace(self, scan_annotation=None))
        data["class_names"] = {str(k): v for k, v in self.class_names.items()}
        if self.training_data is None:
            del data["training_data"]
        else:
            data["training_data"] = self.training_data.to_dict()
        if self.orientation is None:
            del data["orientation"]
        if annotation is None:
            del data["scan_annotation"]
        else:
            data["scan_annotation"] = annotation.to_dict()
        return json.dumps(data, sort_keys=True)

    @classmethod
    def from_json(cls, text: str) -> CheckpointSpec:
        """Parse and validate a spec; :class:`CheckpointError` says what is wrong."""
        try:
            data = json.loads(text)
        except (ValueError, RecursionError) as error:  # JSONDecodeError, huge numbers, nesting
            msg = f"the checkpoint spec is not valid JSON: {str(error)[:200]}"
            raise CheckpointError(msg) from None
        if not isinstance(data, dict):
            msg = "the checkpoint spec must be a JSON object"
            raise CheckpointError(msg)
        try:
            version = int(data.get("format_version", FORMAT_VERSION))
        except (TypeError, ValueError, OverflowError):
            msg = (f"the checkpoint spec's format_version {data.get('format_version')!r} is not "
                   "a number")
            raise CheckpointError(msg) from None
        if version > FORMAT_VERSION:  # before unknown fields: a newer file may have new ones
            msg = (f"checkpoint format {version} is newer than this napari-medseg reads "
                   f"({FORMAT_VERSION}); update napari-medseg")
            raise CheckpointError(msg)
        known = {f.name for f in fields(cls)}
        unknown = sorted(set(data) - known)
        if unknown:
            msg = f"the checkpoint spec has unknown fields {unknown}; known: {sorted(known)}"
            raise CheckpointError(msg)
        try:
            record = data.get("training_data")
            annotation = data.get("scan_annotation")
            spec = cls(
                architecture=str(data["architecture"]),
                spatial_dims=int(data["spatial_dims"]),
                in_channels=int(data["in_channels"]),
                out_channels=int(data["out_channels"]),
                options=dict(data.get("options") or {}),
                class_names={int(k): str(v) for k, v in (data.get("class_names") or {}).items()},
                intensity=[IntensityContract(**c) for c in data.get("intensity") or []],
                target_spacing=_tuple(data.get("target_spacing"), float),
                patch_size=_tuple(data.get("patch_size"), int),
                slice_axis=None if data.get("slice_axis") is None else int(data["slice_axis"]),
                context_slices=int(data.get("context_slices") or 0),
                provenance=dict(data.get("provenance") or {}),
                format_version=version,
                training_data=None if record is None else TrainingDataRecord.from_dict(record),
                scan_annotation=None if annotation is None else ScanAnnotation.from_dict(
                    annotation),
                orientation=None if data.get("orientation") is None else str(
                    data["orientation"]),
            )
        except RecordError as error:
            msg = f"the checkpoint's training-data record is malformed: {error}"
            raise CheckpointError(msg) from None
        except (KeyError, TypeError, ValueError) as error:
            msg = f"the checkpoint spec is malformed: {error!r}"
            raise CheckpointError(msg) from None
        spec.validate()
        return spec

    def validate(self) -> None:
        """Refuse unknown architectures, unknown or absurd options and channel counts."""
        if self.architecture not in model_names():
            msg = (f"the checkpoint names architecture {self.architecture!r}, which is not "
                   f"registered; known: {', '.join(model_names())}")
            raise CheckpointError(msg)
        if self.spatial_dims not in (2, 3):
            msg = f"spatial_dims must be 2 or 3, got {self.spatial_dims}"
            raise CheckpointError(msg)
        for name in ("in_channels", "out_channels"):
            value = getattr(self, name)
            if not 1 <= value <= _MAX_CHANNELS:
                msg = f"{name}={value} is outside 1..{_MAX_CHANNELS}"
                raise CheckpointError(msg)
        known = default_options(self.architecture)
        unknown = sorted(set(self.options) - set(known))
        if unknown:
            msg = (f"{self.architecture} has no option {', '.join(unknown)}; "
                   f"valid options: {', '.join(known)}")
            raise CheckpointError(msg)
        for key, value in self.options.items():
            _check_option(key, value)
        if self.slice_axis is not None and (self.spatial_dims != 2 or self.slice_axis not in
                                            (0, 1, 2)):
            msg = (f"slice_axis {self.slice_axis} is for 2D models on 3D scans and must be 0, 1 "
                   "or 2")
            raise CheckpointError(msg)
        if not 0 <= self.context_slices <= _MAX_COUNT or (
                self.context_slices and self.slice_axis is None):
            msg = (f"context_slices {self.context_slices} must be 0 to {_MAX_COUNT}, and needs "
                   "a slice_axis")
            raise CheckpointError(msg)
        if self.context_slices and self.in_channels % (2 * self.context_slices + 1):
            msg = (f"{self.in_channels} input channels cannot hold {2 * self.context_slices + 1} "
                   "slices per scan (context_slices)")
            raise CheckpointError(msg)
        if self.orientation is not None and self.orientation != "RAS":
            msg = f"orientation must be 'RAS' or absent, got {self.orientation!r}"
            raise CheckpointError(msg)
        if self.patch_size is not None and (
                len(self.patch_size) != self.spatial_dims
                or not all(1 <= p <= _MAX_PATCH for p in self.patch_size)):
            msg = (f"patch_size {self.patch_size} must hold {self.spatial_dims} sizes of 1 to "
                   f"{_MAX_PATCH} voxels")
            raise CheckpointError(msg)
        low, high = _SPACING_RANGE
        if self.target_spacing is not None and (
                len(self.target_spacing) not in (2, 3)
                or not all(math.isfinite(s) and low <= s <= high for s in self.target_spacing)):
            msg = (f"target_spacing {self.target_spacing} must hold 2 or 3 spacings of {low} to "
                   f"{high:g} mm")
            raise CheckpointError(msg)
        if self.intensity and len(self.intensity) != self.scan_channels:
            msg = (f"{len(self.intensity)} intensity contracts for {self.scan_channels} input "
                   "scan(s): give one per channel (scan)")
            raise CheckpointError(msg)
        if self.training_data is not None and len(self.training_data.channels) != (
                self.scan_channels):
            msg = (f"the training-data record describes {len(self.training_data.channels)} "
                   f"channel(s) for {self.scan_channels} input scan(s): make it from cases "
                   "with one scan per input channel")
            raise CheckpointError(msg)

    @property
    def scan_channels(self) -> int:
        """Input scans per voxel: ``in_channels`` over the ``2k + 1`` slices of 2.5D."""
        return self.in_channels // (2 * self.context_slices + 1)


def _tuple(value: Any, kind: type) -> tuple | None:
    return None if value is None else tuple(kind(v) for v in value)


def _check_option(key: str, value: Any) -> None:
    values = value if isinstance(value, list | tuple) else [value]
    if len(values) > _MAX_OPTION_LIST:
        msg = f"option {key} has {len(values)} entries (at most {_MAX_OPTION_LIST})"
        raise CheckpointError(msg)
    for v in values:
        if v is not None and not isinstance(v, bool | int | float | str):
            msg = f"option {key} holds {type(v).__name__}; only numbers, strings, lists"
            raise CheckpointError(msg)
        if isinstance(v, int | float) and not isinstance(v, bool):
            limit = _MAX_COUNT if key in _COUNT_OPTIONS else _MAX_OPTION_INT
            if not math.isfinite(v) or abs(v) > limit:
                msg = f"option {key}={value!r} is absurdly large (limit {limit})"
                raise CheckpointError(msg)


def _build(spec: CheckpointSpec, *, meta: bool) -> nn.Module:
    kwargs = {"spatial_dims": spec.spatial_dims, "in_channels": spec.in_channels,
              "out_channels": spec.out_channels, **spec.options}
    try:
        if meta:
            count = count_parameters(spec.architecture, **kwargs)
            if count > MAX_PARAMETERS:
                msg = (f"{spec.architecture} with options {spec.options} would have {count:,} "
                       f"parameters (limit {MAX_PARAMETERS:,}); refusing to build it")
                raise CheckpointError(msg)
            with meta_device():
                return create_model(spec.architecture, **kwargs)
        return create_model(spec.architecture, **kwargs)
    except CheckpointError:
        raise
    except Exception as error:  # builders raise TypeError, ValueError, RuntimeError, ...
        msg = f"cannot build {spec.architecture} from the checkpoint spec: {error}"
        raise CheckpointError(msg) from None


def _compare(expected: Mapping[str, tuple], found: Mapping[str, tuple]) -> None:
    missing = sorted(set(expected) - set(found))
    unexpected = sorted(set(found) - set(expected))
    wrong = [f"{k}: file {found[k]} vs model {expected[k]}"
             for k in sorted(set(expected) & set(found)) if tuple(found[k]) != expected[k]]
    if missing or unexpected or wrong:
        parts = []
        for label, items in (("missing", missing), ("unexpected", unexpected),
                             ("wrong shape", wrong)):
            if items:
                more = f" (+{len(items) - 8} more)" if len(items) > 8 else ""
                parts.append(f"{label}: {', '.join(items[:8])}{more}")
        msg = "checkpoint tensors do not match the architecture; " + "; ".join(parts)
        raise CheckpointError(msg)


def read_header(path: str | os.PathLike) -> tuple[dict[str, tuple], CheckpointSpec]:
    """Tensor shapes and spec of a checkpoint, from its header alone (no tensor is read)."""
    path = Path(path)
    if not path.is_file():
        msg = f"checkpoint {path} does not exist or is not a file"
        raise CheckpointError(msg)
    size = path.stat().st_size
    with path.open("rb") as f:
        prefix = f.read(8)
        n = int.from_bytes(prefix, "little") if len(prefix) == 8 else -1
        if not 2 <= n <= _MAX_HEADER_BYTES:
            msg = (f"{path} is not a safetensors checkpoint (a pickled PyTorch file or another "
                   "format?); for a plain state dict use import_state_dict on a created model")
            raise CheckpointError(msg)
        if n > size - 8:
            msg = (f"{path} is not a safetensors checkpoint or is truncated: its header claims "
                   f"{n:,} bytes but the file holds {size:,}; copy or download it again")
            raise CheckpointError(msg)
        try:
            header = json.loads(f.read(n))
        except (UnicodeDecodeError, ValueError, RecursionError):  # JSONDecodeError included
            header = None
    if not isinstance(header, dict):
        msg = f"{path} is not a safetensors checkpoint: its header is not a JSON object"
        raise CheckpointError(msg)
    metadata = header.pop("__metadata__", None) or {}
    shapes = _tensor_shapes(path, header, data_bytes=size - 8 - n)
    if not isinstance(metadata, dict) or SPEC_KEY not in metadata:
        msg = (f"{path} is a safetensors file without a napari-medseg spec; import its weights "
               "with import_state_dict into a model made by create_model")
        raise CheckpointError(msg)
    if not isinstance(metadata[SPEC_KEY], str):
        msg = f"{path}: the napari-medseg spec in its header is not a JSON string"
        raise CheckpointError(msg)
    return shapes, CheckpointSpec.from_json(metadata[SPEC_KEY])


#: Bytes per element of the safetensors dtypes.
_DTYPE_BYTES = {"BOOL": 1, "U8": 1, "I8": 1, "F8_E4M3": 1, "F8_E5M2": 1, "I16": 2, "U16": 2,
                "F16": 2, "BF16": 2, "I32": 4, "U32": 4, "F32": 4, "I64": 8, "U64": 8, "F64": 8}


def _tensor_shapes(path: Path, header: dict[str, Any], *, data_bytes: int
                   ) -> dict[str, tuple[int, ...]]:
    """Shapes of the tensors a safetensors header lists, each checked to lie in the file.

    The header of a damaged or hostile file can name any shape; every tensor's dtype, shape
    and byte range must agree and fit in the ``data_bytes`` that follow the header, so a
    truncated file is refused here, before anything is allocated.
    """
    shapes: dict[str, tuple[int, ...]] = {}
    for name, entry in header.items():
        try:
            shape = tuple(int(d) for d in entry["shape"])
            begin, end = (int(o) for o in entry["data_offsets"])
            itemsize = _DTYPE_BYTES[entry["dtype"]]
            if any(d < 0 for d in shape) or not 0 <= begin <= end:
                raise ValueError
        except (KeyError, TypeError, ValueError):
            msg = (f"{path}: the header entry of tensor {str(name)[:80]!r} is malformed "
                   "(dtype, shape and data_offsets are required); the file is damaged")
            raise CheckpointError(msg) from None
        if end > data_bytes:
            msg = (f"{path} is truncated: tensor {name!r} needs bytes {begin:,}-{end:,} of its "
                   f"data but the file holds {data_bytes:,}; copy or download it again")
            raise CheckpointError(msg)
        if end - begin != math.prod(shape) * itemsize:
            msg = (f"{path}: tensor {name!r} of shape {shape} ({entry['dtype']}) does not fit "
                   f"its {end - begin:,} bytes; the file is damaged")
            raise CheckpointError(msg)
        shapes[str(name)] = shape
    return shapes


def load_checkpoint(path: str | os.PathLike, *,
                    device: str | torch.device = "cpu") -> tuple[nn.Module, CheckpointSpec]:
    """Rebuild the model of a checkpoint, in eval mode on ``device``, and return its spec."""
    shapes, spec = read_header(path)
    meta_model = _build(spec, meta=True)
    _compare({k: tuple(v.shape) for k, v in meta_model.state_dict().items()}, shapes)
    model = _build(spec, meta=False)
    try:
        tensors = load_file(str(path), device="cpu")
    except Exception as error:  # safetensors raises its own error types
        msg = f"{path}: cannot read the tensors ({error})"
        raise CheckpointError(msg) from None
    model.load_state_dict(tensors, strict=True)
    return model.to(device).eval(), spec


def save_checkpoint(model: nn.Module, spec: CheckpointSpec, path: str | os.PathLike, *,
                    overwrite: bool = False) -> Path:
    """Write ``model``'s weights and ``spec`` to one ``.safetensors`` file, atomically.

    The model must be what ``create_model`` builds from the spec (checked on names and
    shapes).  An existing file is kept unless ``overwrite=True``.
    """
    path = Path(path)
    if path.suffix != ".safetensors":
        msg = f"checkpoint paths end in .safetensors, got {path.name}"
        raise CheckpointError(msg)
    if path.exists() and not overwrite:
        msg = f"{path} exists; pass {setting('overwrite')} to replace it"
        raise CheckpointExistsError(msg)
    spec.validate()
    state = model.state_dict()
    meta_model = _build(spec, meta=True)
    _compare({k: tuple(v.shape) for k, v in meta_model.state_dict().items()},
             {k: tuple(v.shape) for k, v in state.items()})
    tensors = {k: v.detach().to("cpu").contiguous().clone() for k, v in state.items()}
    tmp = path.with_name(f".{path.name}.{uuid.uuid4().hex}.tmp")
    try:
        save_file(tensors, str(tmp), metadata={SPEC_KEY: spec.to_json()})
        _fsync(tmp)  # on disk before it takes the name: a power cut leaves old or new
        tmp.replace(path)
        _fsync(path.parent)
    finally:
        tmp.unlink(missing_ok=True)
    return path


def _fsync(path: Path) -> None:
    """Flush a file (or a folder's entries) to disk where the platform allows it."""
    flags = os.O_RDONLY | (getattr(os, "O_DIRECTORY", 0) if path.is_dir() else 0)
    try:
        descriptor = os.open(path, flags)
    except OSError:
        return
    try:
        with contextlib.suppress(OSError):
            os.fsync(descriptor)
    finally:
        os.close(descriptor)


@dataclass
class ImportReport:
    """What :func:`import_state_dict` did: keys loaded, missing, unexpected, wrong-shaped."""

    loaded: list[str]
    missing: list[str]
    unexpected: list[str]
    mismatched: list[str]


_PREFIXES = ("module.", "model.", "net.", "_orig_mod.")
_CONTAINERS = ("state_dict", "model_state_dict", "model", "network_weights", "net", "weights")


def _strip(key: str) -> str:
    stripped = True
    while stripped:
        stripped = False
        for prefix in _PREFIXES:
            if key.startswith(prefix):
                key, stripped = key[len(prefix):], True
    return key


def _read_state_dict(source: str | os.PathLike | Mapping[str, Any]) -> dict[str, Any]:
    if isinstance(source, Mapping):
        return dict(source)
    path = Path(source)
    if not path.is_file():
        msg = f"weights file {path} does not exist or is not a file"
        raise CheckpointError(msg)
    if path.suffix == ".safetensors":
        try:
            return load_file(str(path), device="cpu")
        except Exception as error:  # safetensors raises its own error types
            msg = (f"{path} could not be read as a safetensors file ({error}); it is damaged "
                   "or not a safetensors file")
            raise CheckpointError(msg) from None
    try:
        data = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as error:  # UnpicklingError, RuntimeError, zip errors ...
        msg = (f"{path} could not be read as a weights-only PyTorch state dict ({error}); "
               "napari-medseg never unpickles arbitrary objects")
        raise CheckpointError(msg) from None
    if not isinstance(data, Mapping):
        msg = f"{path} holds a {type(data).__name__}, not a state dict"
        raise CheckpointError(msg)
    return dict(data)


def import_state_dict(model: nn.Module, source: str | os.PathLike | Mapping[str, Any], *,
                      strict: bool = True) -> ImportReport:
    """Load plain PyTorch weights (a file read ``weights_only``, or a mapping) into ``model``.

    Common wrappers (``{"state_dict": ...}``) and prefixes (``module.``, ``model.``, ``net.``)
    are stripped on both sides.  With ``strict`` any missing, unexpected or wrong-shaped key is
    an error; otherwise the matching keys are loaded and the report lists the rest.
    """
    state = _read_state_dict(source)
    for key in _CONTAINERS:
        inner = state.get(key)
        if isinstance(inner, Mapping) and not any(
                isinstance(v, torch.Tensor) for v in state.values()):
            state = dict(inner)
            break
    source_tensors = {_strip(k): v for k, v in state.items() if isinstance(v, torch.Tensor)}
    target = model.state_dict()
    by_name = {_strip(k): k for k in target}
    loaded, mismatched = {}, []
    for key, tensor in source_tensors.items():
        if key in by_name:
            real = by_name[key]
            if tuple(tensor.shape) == tuple(target[real].shape):
                loaded[real] = tensor
            else:
                mismatched.append(f"{key}: {tuple(tensor.shape)} vs {tuple(target[real].shape)}")
    report = ImportReport(
        loaded=sorted(loaded),
        missing=sorted(k for k in by_name if k not in source_tensors),
        unexpected=sorted(k for k in source_tensors if k not in by_name),
        mismatched=mismatched,
    )
    if not loaded or (strict and (report.missing or report.unexpected or mismatched)):
        msg = (f"state dict does not fit the model: {len(loaded)} keys match, "
               f"missing {report.missing[:8]}, unexpected {report.unexpected[:8]}, "
               f"wrong shape {mismatched[:8]}; pass strict=False to load the matching keys")
        raise CheckpointError(msg)
    model.load_state_dict({**target, **loaded}, strict=True)
    return report
