"""The segment verb's core job: checkpoints by name or path, loaded once, run over scans."""

from __future__ import annotations

import numpy as np
import pytest

from napari_medseg.events import FitFinding, Progress, run_to_end
from napari_medseg.inference import InferenceError, PredictOptions, Predictor
from napari_medseg.inference.segment import PredictorCache, SegmentOptions, segment_job
from napari_medseg.scan import Scan
from tests.conftest import save_tiny_ct_checkpoint

NAMES = {0: "background", 1: "soft", 2: "bone"}


@pytest.fixture(scope="module")
def crop(shared_data) -> Scan:
    from napari_medseg.io import read_scan

    ct = read_scan(shared_data / "ct_abdomen" / "example_ct_sm.nii.gz")
    return Scan(np.ascontiguousarray(ct.array[4:20, 10:74, 20:84]), ct.geometry, "CT")


@pytest.fixture
def checkpoints(tmp_path):
    a = save_tiny_ct_checkpoint(tmp_path / "a.safetensors", NAMES, patch_size=(16, 32, 32))
    import torch

    torch.manual_seed(5)  # a second, different network with the same classes
    b = save_tiny_ct_checkpoint(tmp_path / "b.safetensors", NAMES, patch_size=(16, 32, 32))
    return a, b


def _options(*models, **predict) -> SegmentOptions:  # type: ignore[no-untyped-def]
    return SegmentOptions(models=tuple(str(m) for m in models),
                          predict=PredictOptions(device="cpu", tile=(16, 32, 32), **predict))


def test_the_job_loads_then_segments_as_the_engine_does(crop, checkpoints):
    options = _options(checkpoints[0], keep_probabilities=True)
    events = []
    prediction = run_to_end(segment_job(crop, options), events.append)
    progress = [e for e in events if isinstance(e, Progress)]
    findings = [e for e in events if isinstance(e, FitFinding)]
    assert progress[0].stage == "load model"
    assert any(e.stage == "segment" for e in progress)
    # the fit check runs first (a checkpoint without a training record: a note) and its
    # report is part of the result
    assert findings
    assert events.index(findings[0]) < events.index(progress[0])
    assert {f.rule for f in findings} == {"fit-unknown"}
    assert [r.fits for r in prediction.fit] == [True]
    expected = Predictor.load(checkpoints[0], device="cpu").predict(crop, options.predict)
    np.testing.assert_array_equal(prediction.labels.array, expected.labels.array)
    assert prediction.labels.geometry == crop.geometry
    assert prediction.labels.class_names == NAMES
    assert prediction.probabilities is not None


def test_a_cache_reads_each_checkpoint_once(crop, checkpoints):
    cache = PredictorCache()
    options = _options(checkpoints[0])
    run_to_end(segment_job(crop, options, cache=cache))
    first = cache.get(options)
    run_to_end(segment_job(crop, options, cache=cache))
    assert cache.get(options) is first
    assert len(cache) == 1
    run_to_end(segment_job(crop, _options(*checkpoints), cache=cache))  # an ensemble: another
    assert len(cache) == 2


def test_an_ensemble_averages_its_members(crop, checkpoints):
    options = _options(*checkpoints, keep_probabilities=True)
    assert options.model_name == "a+b"
    mean = run_to_end(segment_job(crop, options))
    members = [Predictor.load(c, device="cpu").predict(crop, options.predict)
               for c in checkpoints]
    expected = sum(m.probabilities.astype(np.float32) for m in members) / 2
    np.testing.assert_allclose(mean.probabilities.astype(np.float32), expected, atol=5e-3)


def test_a_model_must_be_named():
    with pytest.raises(InferenceError, match="choose a model"):
        SegmentOptions(models=())
    with pytest.raises(InferenceError, match="choose a model"):
        SegmentOptions(models=(" ",))
    with pytest.raises(ValueError, match="combine must be one of"):
        SegmentOptions(models=("a",), combine="median")
    assert SegmentOptions(models="head-ct-tissue").models == ("head-ct-tissue",)


def test_asked_for_one_the_job_builds_the_runs_provenance_record(crop, checkpoints):
    from napari_medseg.inference.segment import segment_record
    from napari_medseg.provenance import content_hash, file_hash

    options = _options(checkpoints[0], overlap=0.25)
    assert run_to_end(segment_job(crop, options)).provenance is None  # not asked: no hashing
    prediction = run_to_end(segment_job(crop, options, made_by="a script"))
    record = prediction.provenance
    assert record is not None
    assert record.made_by == "a script"
    assert record.scan is not None
    assert record.scan.content_hash == content_hash(crop.array, geometry=crop.geometry)
    assert record.result_hash == content_hash(prediction.labels.array)
    assert [m.file_hash for m in record.models] == [file_hash(checkpoints[0])]
    assert record.options["overlap"] == 0.25  # the window options, as the CLI records them
    # a record that cannot be completed says why instead of failing the run
    gone = _options(checkpoints[0].parent / "deleted.safetensors")
    broken = segment_record(crop, gone, prediction.labels, made_by="a script")
    assert broken.models == ()
    assert any("deleted" in note and "could not be completed" in note for note in broken.notes)
