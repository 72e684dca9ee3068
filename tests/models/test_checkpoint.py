"""Checkpoints: one safetensors file with a JSON spec; loading never runs code."""

from __future__ import annotations

import json
import pickle
from pathlib import Path

import pytest
import torch
from safetensors.torch import save_file

from napari_medseg.errors import CheckpointError, MedsegError, OutputExistsError
from napari_medseg.models import (
    CheckpointSpec,
    IntensityContract,
    create_model,
    import_state_dict,
    load_checkpoint,
    save_checkpoint,
)
from napari_medseg.models.checkpoint import SPEC_KEY, read_header
from napari_medseg.models.training_record import ChannelRecord, Spread, TrainingDataRecord

OPTIONS = {"features": [4, 8, 16]}


def _spec(**changes) -> CheckpointSpec:
    fields = {
        "architecture": "unet", "spatial_dims": 2, "in_channels": 2, "out_channels": 3,
        "options": dict(OPTIONS), "class_names": {0: "background", 1: "liver", 2: "spleen"},
        "intensity": [IntensityContract("CT", "ct_window", window=(-160, 240)),
                      IntensityContract("MR", "percentile", percentiles=(0.5, 99.5))],
        "target_spacing": (1.5, 1.5), "patch_size": (128, 128),
        "provenance": {"data_hash": "sha256:abc", "steps": 10, "date": "2026-11-22",
                       "metrics": {"dice": 0.9}},
    }
    fields.update(changes)
    return CheckpointSpec(**fields)


def _model():
    torch.manual_seed(0)
    return create_model("unet", spatial_dims=2, in_channels=2, out_channels=3, **OPTIONS)


class _Evil:
    """Unpickling this creates a marker file: proof that code ran."""

    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self):  # type: ignore[no-untyped-def]
        return (open, (str(self.marker), "w"))


def test_spec_round_trips_through_the_file(tmp_path: Path) -> None:
    path = save_checkpoint(_model(), _spec(), tmp_path / "m.safetensors")
    _, spec = read_header(path)
    assert spec == _spec(options=OPTIONS)
    assert spec.intensity[0].window == (-160.0, 240.0)
    assert spec.class_names[1] == "liver"
    assert list(tmp_path.iterdir()) == [path]  # no temp file left behind


def test_save_refuses_to_overwrite(tmp_path: Path) -> None:
    path = save_checkpoint(_model(), _spec(), tmp_path / "m.safetensors")
    with pytest.raises(OutputExistsError, match="overwrite=True"):
        save_checkpoint(_model(), _spec(), path)
    save_checkpoint(_model(), _spec(), path, overwrite=True)


def test_save_refuses_a_model_that_does_not_match_the_spec(tmp_path: Path) -> None:
    with pytest.raises(CheckpointError, match="wrong shape"):
        save_checkpoint(_model(), _spec(out_channels=4), tmp_path / "m.safetensors")


@pytest.mark.parametrize("how", ["pickle", "torch.save"])
def test_pickled_files_are_refused_without_running_code(tmp_path: Path, how: str) -> None:
    marker = tmp_path / "code-ran"
    path = tmp_path / "evil.safetensors"
    if how == "pickle":
        path.write_bytes(pickle.dumps({"weight": _Evil(marker)}))
    else:
        torch.save({"weight": _Evil(marker)}, path)
    with pytest.raises(CheckpointError, match="not a safetensors checkpoint"):
        load_checkpoint(path)
    with pytest.raises(CheckpointError, match="weights-only"):
        import_state_dict(_model(), path.rename(tmp_path / "evil.pt"))
    assert not marker.exists()


def test_garbage_and_missing_files_are_refused(tmp_path: Path) -> None:
    (tmp_path / "junk.safetensors").write_bytes(b"\x10\x00\x00\x00\x00\x00\x00\x00not json at all")
    with pytest.raises(CheckpointError, match="not a safetensors"):
        load_checkpoint(tmp_path / "junk.safetensors")
    with pytest.raises(MedsegError, match="does not exist"):
        load_checkpoint(tmp_path / "absent.safetensors")


def _write(path: Path, spec_json: str, tensors=None) -> Path:
    tensors = tensors if tensors is not None else _model().state_dict()
    save_file({k: v.contiguous() for k, v in tensors.items()}, str(path),
              metadata={SPEC_KEY: spec_json})
    return path


def test_plain_safetensors_without_spec_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "plain.safetensors"
    save_file({"w": torch.zeros(2)}, str(path))
    with pytest.raises(CheckpointError, match="import_state_dict"):
        load_checkpoint(path)


def test_unknown_architecture_is_refused(tmp_path: Path) -> None:
    data = json.loads(_spec().to_json())
    data["architecture"] = "resnet-9000"
    with pytest.raises(CheckpointError, match="not registered; known: fcn-32s"):
        load_checkpoint(_write(tmp_path / "m.safetensors", json.dumps(data)))


@pytest.mark.parametrize(("options", "match"), [
    ({"features": [4, 8, 16], "bogus": 1}, "no option bogus"),
    ({"features": [60000, 60000, 60000, 60000]}, "parameters"),
    ({"features": [4, 8, 10**9]}, "absurdly large"),
    ({"features": list(range(1, 100))}, "at most"),
    ({"features": [{"__class__": "os.system"}]}, "only numbers"),
])
def test_absurd_or_unknown_options_are_refused(tmp_path: Path, options: dict,
                                               match: str) -> None:
    data = json.loads(_spec().to_json())
    data["options"] = options
    with pytest.raises(CheckpointError, match=match):
        load_checkpoint(_write(tmp_path / "m.safetensors", json.dumps(data)))


def test_malformed_spec_is_refused(tmp_path: Path) -> None:
    with pytest.raises(CheckpointError, match="not valid JSON"):
        load_checkpoint(_write(tmp_path / "a.safetensors", "{oops"))
    data = json.loads(_spec().to_json())
    del data["in_channels"]
    with pytest.raises(CheckpointError, match="malformed"):
        load_checkpoint(_write(tmp_path / "b.safetensors", json.dumps(data)))
    data = json.loads(_spec().to_json())
    data["format_version"] = 99
    with pytest.raises(CheckpointError, match="newer"):
        load_checkpoint(_write(tmp_path / "c.safetensors", json.dumps(data)))


def _record(channels: int = 2) -> TrainingDataRecord:
    levels = (5.0, 50.0, 95.0)
    spread = Spread(median=(0.1, 0.5, 0.9), low=(0.0, 0.4, 0.8), high=(0.2, 0.6, 1.0))
    return TrainingDataRecord(
        n_scans=3, levels=levels,
        channels=tuple(ChannelRecord(modality=m, raw=spread, normalised=spread,
                                     mr_contrast="T1" if m == "MR" else None)
                       for m in ("CT", "MR")[:channels]),
        spacing_mm=Spread((1.5, 1.5), (1.0, 1.0), (2.0, 2.0)),
        extent_mm=Spread((300.0, 300.0), (250.0, 250.0), (350.0, 350.0)),
        body_mm=Spread((280.0,), (250.0,), (300.0,)))


def test_training_data_record_round_trips_and_older_specs_have_none(tmp_path: Path) -> None:
    path = save_checkpoint(_model(), _spec(training_data=_record()), tmp_path / "m.safetensors")
    _, spec = read_header(path)
    assert spec.training_data == _record()
    assert spec.training_data.channels[1].mr_contrast == "T1"
    old = json.loads(_spec().to_json())
    assert "training_data" not in old  # files without a record are what older versions wrote
    assert CheckpointSpec.from_json(json.dumps(old)).training_data is None


@pytest.mark.parametrize(("change", "match"), [
    (lambda r: r.update(n_scans=0), "n_scans=0"),
    (lambda r: r.update(n_scans="3"), "whole number"),
    (lambda r: r.update(colour="red"), "unknown fields"),
    (lambda r: r["channels"][0].update(modality="CAT"), "not one of"),
    (lambda r: r["channels"][0].update(mr_contrast="T7"), "mr_contrast"),
    (lambda r: r["channels"][0].update(skull_stripped="yes"), "skull_stripped"),
    (lambda r: r["channels"][0]["raw"].update(median=[0.1, 0.5]), "raw.median has 2 values"),
    (lambda r: r["channels"][0]["raw"].update(low=[0.1, "x", 0.2]), "finite numbers"),
    (lambda r: r["spacing_mm"].update(high=[1.0, 1.0, 1.0, 1.0]), "spacing_mm.high"),
    (lambda r: r["body_mm"].update(low=[400.0]), "must not exceed"),
    (lambda r: r.update(channels=r["channels"][:1]), "1 channel"),
    (lambda r: r.update(channels="CT"), "channels must be a list"),
    (lambda r: r.update(levels=[50.0, 5.0, 95.0]), "increasing percentiles"),
])
def test_malformed_training_data_records_are_refused(tmp_path: Path, change, match) -> None:
    data = json.loads(_spec(training_data=_record()).to_json())
    change(data["training_data"])
    with pytest.raises(CheckpointError, match=match):
        read_header(_write(tmp_path / "m.safetensors", json.dumps(data)))


def test_non_finite_record_values_are_refused(tmp_path: Path) -> None:
    text = _spec(training_data=_record()).to_json().replace('"median": [280.0]',
                                                            '"median": [NaN]')
    with pytest.raises(CheckpointError, match="finite numbers"):
        read_header(_write(tmp_path / "m.safetensors", text))


def test_wrong_tensor_names_and_shapes_are_listed(tmp_path: Path) -> None:
    tensors = dict(_model().state_dict())
    tensors["net.head.weight"] = torch.zeros(5, 4, 1, 1)
    del tensors["net.head.bias"]
    tensors["extra"] = torch.zeros(1)
    path = _write(tmp_path / "m.safetensors", _spec().to_json(), tensors)
    with pytest.raises(CheckpointError) as info:
        load_checkpoint(path)
    message = str(info.value)
    assert "missing: net.head.bias" in message
    assert "unexpected: extra" in message
    assert "net.head.weight: file (5, 4, 1, 1) vs model (3, 4, 1, 1)" in message


def test_intensity_contract_validation() -> None:
    with pytest.raises(ValueError, match="needs window"):
        IntensityContract("CT", "ct_window")
    with pytest.raises(ValueError, match="unknown normalization"):
        IntensityContract("CT", "minmax")
    with pytest.raises(CheckpointError, match="one per channel"):
        _spec(intensity=[IntensityContract()]).validate()


def test_import_plain_state_dict_with_prefixes(tmp_path: Path) -> None:
    source = _model()
    with torch.no_grad():
        for p in source.parameters():
            p.add_(1)
    plain = {f"module.{k.removeprefix('net.')}": v for k, v in source.state_dict().items()}
    path = tmp_path / "weights.pt"
    torch.save({"state_dict": plain}, path)
    target = _model()
    report = import_state_dict(target, path)
    assert not report.missing
    assert not report.unexpected
    x = torch.randn(1, 2, 16, 16)
    with torch.no_grad():
        assert torch.equal(source.eval()(x), target.eval()(x))


def test_import_reports_mismatches(tmp_path: Path) -> None:
    state = {k: v for k, v in _model().state_dict().items() if "head" not in k}
    state["encoders.0.0.0.weight"] = torch.zeros(1)
    with pytest.raises(CheckpointError, match="strict=False"):
        import_state_dict(_model(), state)
    report = import_state_dict(_model(), state, strict=False)
    assert "head.weight" in report.missing
    assert report.mismatched[0].startswith("encoders.0.0.0.weight")


def test_orientation_round_trips_and_is_left_out_when_absent(tmp_path: Path) -> None:
    path = save_checkpoint(_model(), _spec(orientation="RAS"), tmp_path / "m.safetensors")
    assert read_header(path)[1].orientation == "RAS"
    old = json.loads(_spec().to_json())
    assert "orientation" not in old  # what older versions wrote and read
    assert CheckpointSpec.from_json(json.dumps(old)).orientation is None
    with pytest.raises(CheckpointError, match="orientation must be 'RAS'"):
        CheckpointSpec.from_json(json.dumps({**old, "orientation": "LPI"}))
