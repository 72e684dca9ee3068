"""Model files from strangers: loading runs no code and allocates nothing absurd.

A checkpoint (or a plain state dict to import) may come from anywhere.  Every door that
opens one -- :func:`load_checkpoint`, :func:`read_header`, :func:`import_state_dict`,
``Predictor.load``, ``Trainer.from_checkpoint``, the model suggestion that scans the models
folder -- must refuse a hostile file with a :class:`CheckpointError` that says what is wrong,
without running code from it and before allocating what it asks for.
"""

from __future__ import annotations

import json
import math
import os
import pickle
import resource
import struct
import time
from pathlib import Path
from typing import Any

import pytest
import torch
from safetensors.torch import save_file

from napari_medseg.errors import CheckpointError, MedsegError
from napari_medseg.inference import Predictor
from napari_medseg.inference.catalog import user_models_dir
from napari_medseg.inference.fit import choose_model
from napari_medseg.models import CheckpointSpec, create_model, import_state_dict, load_checkpoint
from napari_medseg.models.checkpoint import SPEC_KEY, read_header
from napari_medseg.training import Trainer

OPTIONS = {"features": [4, 8, 16]}


def _model() -> torch.nn.Module:
    torch.manual_seed(0)
    return create_model("unet", spatial_dims=2, in_channels=1, out_channels=2, **OPTIONS)


def _spec_data(**changes: Any) -> dict[str, Any]:
    spec = CheckpointSpec(architecture="unet", spatial_dims=2, in_channels=1, out_channels=2,
                          options=dict(OPTIONS), patch_size=(64, 64))
    data = json.loads(spec.to_json())
    data.update(changes)
    return data


def _write(path: Path, spec: dict[str, Any] | str, tensors: dict | None = None) -> Path:
    tensors = tensors if tensors is not None else _model().state_dict()
    text = spec if isinstance(spec, str) else json.dumps(spec)
    save_file({k: v.contiguous() for k, v in tensors.items()}, str(path),
              metadata={SPEC_KEY: text})
    return path


def _raw_safetensors(path: Path, header: dict[str, Any], data: bytes = b"") -> Path:
    """A safetensors file written by hand: any header, any data."""
    blob = json.dumps(header).encode()
    path.write_bytes(struct.pack("<Q", len(blob)) + blob + data)
    return path


def _peak_rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


# ---------------------------------------------------------------------- code execution
class _WritesMarker:
    """Unpickling this runs ``os.system`` (a shell command that creates a marker file)."""

    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self):  # type: ignore[no-untyped-def]
        return (os.system, (f"touch {self.marker}",))


class _OpensMarker:
    """Unpickling this calls ``open(marker, "w")``: a file appears if code ran."""

    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self):  # type: ignore[no-untyped-def]
        return (open, (str(self.marker), "w"))


def _evil_file(path: Path, marker: Path, how: str) -> Path:
    payload = {"state_dict": {"weight": torch.zeros(2), "trap": _WritesMarker(marker)},
               "other": _OpensMarker(marker)}
    if how == "torch.save":
        torch.save(payload, path)
    elif how == "legacy torch.save":
        torch.save(payload, path, _use_new_zipfile_serialization=False)
    else:
        path.write_bytes(pickle.dumps(payload, protocol=int(how.split()[-1])))
    return path


HOW = ["torch.save", "legacy torch.save", "pickle protocol 2", "pickle protocol 5"]


@pytest.mark.parametrize("how", HOW)
@pytest.mark.parametrize("suffix", [".pt", ".pth", ".ckpt", ".bin"])
def test_pickled_state_dict_import_is_refused_without_running_code(tmp_path, how, suffix):
    marker = tmp_path / "code-ran"
    path = _evil_file(tmp_path / f"weights{suffix}", marker, how)
    with pytest.raises(CheckpointError, match="weights-only") as info:
        import_state_dict(_model(), path)
    assert "never unpickles" in str(info.value)
    assert not marker.exists()


@pytest.mark.parametrize("how", HOW)
def test_pickled_checkpoints_are_refused_by_every_loader(tmp_path, how, monkeypatch):
    marker = tmp_path / "code-ran"
    for name in ("evil.pt", "evil.safetensors"):
        path = _evil_file(tmp_path / name, marker, how)
        with pytest.raises(CheckpointError, match="not a safetensors checkpoint"):
            load_checkpoint(path)
        with pytest.raises(CheckpointError, match="not a safetensors checkpoint"):
            read_header(path)
        with pytest.raises(CheckpointError):
            Predictor.load(path, device="cpu")
        with pytest.raises(CheckpointError):
            Trainer.from_checkpoint(path, volumes=[])
    # a hostile file in the models folder is skipped when a model is suggested
    folder = user_models_dir()
    folder.mkdir(parents=True, exist_ok=True)
    _evil_file(folder / "evil.safetensors", marker, how)
    choose_model("CT")
    assert not marker.exists()


# ---------------------------------------------------------------------- spec and options
def test_unknown_architecture_is_refused(tmp_path):
    for name in ("resnet-9000", "os.system", "__import__('os').system('touch x')", ""):
        path = _write(tmp_path / "m.safetensors", _spec_data(architecture=name))
        with pytest.raises(CheckpointError, match="not registered; known: fcn-32s"):
            load_checkpoint(path)
        path.unlink()


@pytest.mark.parametrize(("changes", "match"), [
    ({"options": {"features": [4, 8, 10**6]}}, "absurdly large"),
    ({"options": {"features": [10**6] * 5}}, "absurdly large"),
    ({"options": {"features": [4, 8, float("nan")]}}, "absurdly large"),
    ({"options": {"features": [4, 8, float("inf")]}}, "absurdly large"),
    ({"patch_size": [100_000, 100_000]}, "patch_size"),
    ({"patch_size": [0, 64]}, "patch_size"),
    ({"patch_size": [64, 64, 64]}, "patch_size"),
    ({"target_spacing": [1e-9, 1e-9]}, "target_spacing"),
    ({"target_spacing": [float("nan"), 1.0]}, "target_spacing"),
    ({"in_channels": 10**6}, "outside"),
    ({"out_channels": 0}, "outside"),
    ({"spatial_dims": 7}, "spatial_dims"),
    ({"intensity": [{"normalization": "ct_window", "window": [1, 0]}]}, "malformed"),
    ({"options": {"features": [[4, 8], 16]}}, "only numbers"),
])
def test_absurd_specs_are_refused_before_allocating(tmp_path, changes, match):
    path = _write(tmp_path / "m.safetensors", _spec_data(**changes))
    before, start = _peak_rss_mb(), time.perf_counter()
    with pytest.raises(CheckpointError, match=match):
        load_checkpoint(path)
    assert time.perf_counter() - start < 5
    assert _peak_rss_mb() - before < 200


@pytest.mark.parametrize(("architecture", "options"), [
    ("segnet", {"convs": [10_000] * 5}),
    ("vnet", {"convs": [5000] * 5}),
    ("dense-unet", {"layers": 65536}),
    ("monai-segresnet", {"blocks_down": [65536] * 4}),
    ("monai-swinunetr", {"depths": [65536] * 4}),
    ("deeplab-v1", {"crf": True, "crf_iterations": 10**5}),
    ("vnet", {"kernel_size": 65535}),
])
def test_options_that_would_take_minutes_to_build_are_refused(tmp_path, architecture, options):
    """Counts of layers/blocks/steps are capped: a meta build of 10^5 layers took minutes."""
    spec = CheckpointSpec(architecture=architecture, spatial_dims=2, in_channels=1,
                          out_channels=2, options=options)
    path = _write(tmp_path / "m.safetensors", json.loads(spec.to_json()))
    start = time.perf_counter()
    with pytest.raises(CheckpointError, match="absurdly large"):
        load_checkpoint(path)
    assert time.perf_counter() - start < 5


@pytest.mark.parametrize(("architecture", "options"), [
    ("unet", {"features": [60000] * 5}),  # 10^11 parameters, counted on the meta device
    ("monai-swinunetr", {"num_heads": [64] * 4, "feature_size": 24}),  # builder ZeroDivision
    ("monai-swinunetr", {"window_size": 64}),
    ("monai-unetr", {"img_size": 65536}),
])
def test_options_the_builders_reject_become_checkpoint_errors(tmp_path, architecture, options):
    spec = CheckpointSpec(architecture=architecture, spatial_dims=3, in_channels=1,
                          out_channels=2, options=options)
    path = _write(tmp_path / "m.safetensors", json.loads(spec.to_json()))
    before = _peak_rss_mb()
    with pytest.raises(CheckpointError):
        load_checkpoint(path)
    assert _peak_rss_mb() - before < 500


def test_spec_json_that_is_hostile_to_the_parser(tmp_path):
    cases = {
        "nested": "[" * 100_000 + "]" * 100_000,  # RecursionError in json
        "huge number": '{"architecture": "unet", "spatial_dims": ' + "9" * 5000 + "}",
        "not an object": "[1, 2, 3]",
        "unknown fields": json.dumps({**_spec_data(), "__class__": "os.system"}),
    }
    for name, text in cases.items():
        path = _write(tmp_path / f"{name}.safetensors", text)
        with pytest.raises(CheckpointError, match="spec"):
            load_checkpoint(path)


# ---------------------------------------------------------------------- safetensors structure
def test_wrong_shapes_are_listed_before_loading(tmp_path):
    tensors = dict(_model().state_dict())
    tensors["net.head.weight"] = torch.zeros(7, 4, 1, 1)
    path = _write(tmp_path / "m.safetensors", _spec_data(), tensors)
    with pytest.raises(CheckpointError, match=r"net.head.weight: file \(7, 4, 1, 1\)"):
        load_checkpoint(path)


@pytest.mark.parametrize("length", [0, 1, 2**63, 2**64 - 1, 101 * 2**20, 10**12])
def test_absurd_header_length_field(tmp_path, length):
    path = tmp_path / "m.safetensors"
    good = _write(tmp_path / "good.safetensors", _spec_data()).read_bytes()
    path.write_bytes(struct.pack("<Q", length) + good[8:])
    before = _peak_rss_mb()
    with pytest.raises(CheckpointError, match="not a safetensors checkpoint"):
        load_checkpoint(path)
    with pytest.raises(CheckpointError):
        import_state_dict(_model(), path)
    assert _peak_rss_mb() - before < 200


@pytest.mark.parametrize("keep", [0.0, 0.001, 0.02, 0.3, 0.7, 0.99])
def test_truncated_checkpoints_are_refused(tmp_path, keep):
    good = _write(tmp_path / "good.safetensors", _spec_data()).read_bytes()
    path = tmp_path / "cut.safetensors"
    path.write_bytes(good[: int(len(good) * keep)])
    with pytest.raises(CheckpointError, match=r"truncated|not a safetensors"):
        load_checkpoint(path)
    with pytest.raises(CheckpointError):
        import_state_dict(_model(), path)


@pytest.mark.parametrize(("entry", "match"), [
    ({"dtype": "F32", "shape": [10**6, 10**6], "data_offsets": [0, 16]}, "does not fit"),
    ({"dtype": "F32", "shape": [4], "data_offsets": [0, 10**12]}, "truncated"),
    ({"dtype": "F32", "shape": [-4], "data_offsets": [0, 16]}, "malformed"),
    ({"dtype": "PY_OBJECT", "shape": [4], "data_offsets": [0, 16]}, "malformed"),
    ({"dtype": "F32", "shape": "four", "data_offsets": [0, 16]}, "malformed"),
    ({"dtype": "F32", "shape": [4], "data_offsets": [16, 0]}, "malformed"),
    ({"shape": [4]}, "malformed"),
    ("not a dict", "malformed"),
])
def test_hostile_tensor_entries_are_refused_from_the_header(tmp_path, entry, match):
    header = {"__metadata__": {SPEC_KEY: json.dumps(_spec_data())}, "net.w": entry}
    path = _raw_safetensors(tmp_path / "m.safetensors", header, b"\x00" * 16)
    before = _peak_rss_mb()
    with pytest.raises(CheckpointError, match=match):
        load_checkpoint(path)
    with pytest.raises(CheckpointError):
        import_state_dict(_model(), path)
    assert _peak_rss_mb() - before < 200


def test_a_spec_that_is_not_a_string_is_refused(tmp_path):
    header = {"__metadata__": {SPEC_KEY: {"architecture": "unet"}}}
    with pytest.raises(CheckpointError, match="JSON string"):
        read_header(_raw_safetensors(tmp_path / "m.safetensors", header))


def test_a_good_checkpoint_still_loads(tmp_path):
    """The checks refuse nothing real: a saved model loads and predicts the same."""
    from napari_medseg.models import save_checkpoint

    model = _model()
    spec = CheckpointSpec(architecture="unet", spatial_dims=2, in_channels=1, out_channels=2,
                          options=dict(OPTIONS), patch_size=(64, 64), target_spacing=(0.8, 0.8))
    path = save_checkpoint(model, spec, tmp_path / "m.safetensors")
    loaded, back = load_checkpoint(path)
    x = torch.randn(1, 1, 32, 32)
    with torch.no_grad():
        assert torch.equal(model.eval()(x), loaded(x))
    assert back.patch_size == (64, 64)
    report = import_state_dict(_model(), path)
    assert not report.missing
    assert math.isclose(back.target_spacing[0], 0.8)


def test_errors_are_medseg_errors():
    assert issubclass(CheckpointError, MedsegError)
