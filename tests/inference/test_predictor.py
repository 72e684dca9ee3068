"""The inference engine on real scans: tiling, geometry, TTA, ensembles, cancel, OOM fallback."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from napari_medseg.errors import GeometryMismatchError
from napari_medseg.events import Log, Progress
from napari_medseg.inference import InferenceError, PredictOptions, Predictor
from napari_medseg.models import save_checkpoint
from napari_medseg.models.device import DeviceError
from napari_medseg.scan import Geometry, Scan

from .conftest import Pointwise, spec_for


def test_tiled_equals_whole_volume_for_a_pointwise_model(ct_scan):
    torch.manual_seed(1)
    predictor = Predictor(Pointwise(3), spec_for(3), device="cpu")
    whole = predictor.predict(ct_scan, PredictOptions(tile=ct_scan.shape, keep_probabilities=True))
    tiled = predictor.predict(
        ct_scan, PredictOptions(tile=(8, 24, 20), overlap=0.5, batch_size=3,
                                keep_probabilities=True)
    )
    assert tiled.n_tiles > 20
    assert whole.n_tiles == 1
    np.testing.assert_array_equal(tiled.labels.array, whole.labels.array)
    np.testing.assert_allclose(
        tiled.probabilities.astype(np.float32), whole.probabilities.astype(np.float32), atol=2e-3
    )
    assert len(np.unique(whole.labels.array)) == 3  # the check is not vacuous


def test_tta_and_ensembles_on_a_pointwise_model(ct_scan):
    torch.manual_seed(2)
    a, b = Pointwise(3), Pointwise(3, shift=1.5)
    spec = spec_for(3)
    options = PredictOptions(tile=(16, 64, 64), keep_probabilities=True)
    plain = Predictor(a, spec, device="cpu").predict(ct_scan, options)
    flipped = Predictor(a, spec, device="cpu").predict(
        ct_scan, PredictOptions(tile=(16, 64, 64), tta=True, keep_probabilities=True))
    # flips commute with a pointwise model: mirroring TTA changes nothing
    np.testing.assert_array_equal(flipped.labels.array, plain.labels.array)
    pb = Predictor(b, spec, device="cpu").predict(ct_scan, options)
    mean = Predictor([a, b], spec, device="cpu").predict(ct_scan, options)
    expected = (plain.probabilities.astype(np.float32) + pb.probabilities.astype(np.float32)) / 2
    np.testing.assert_allclose(mean.probabilities.astype(np.float32), expected, atol=5e-3)
    vote = Predictor([a, a, b], spec, device="cpu", combine="vote").predict(ct_scan, options)
    np.testing.assert_array_equal(vote.labels.array, plain.labels.array)  # 2 of 3 agree


@pytest.mark.parametrize("relpath", ["mri_lesion/brain1_image.nrrd", "dicom_series_mr"])
def test_output_keeps_the_geometry_of_anisotropic_and_oblique_scans(
    shared_data, relpath, tiny_unet_3d, mr_dicom_series
):
    from napari_medseg.io import read_scan

    scan = mr_dicom_series if relpath == "dicom_series_mr" else read_scan(shared_data / relpath)
    model, spec = tiny_unet_3d
    spec.target_spacing = (3.0, 1.5, 1.5)  # the model's spacing differs: resample and back
    result = Predictor(model, spec, device="cpu").predict(
        scan, PredictOptions(tile=(24, 64, 64), overlap=0.25, keep_probabilities=True))
    assert result.labels.shape == scan.shape
    assert result.labels.geometry == scan.geometry
    assert result.probabilities.shape == (3, *scan.shape)
    result.labels.check_matches(scan)


def test_2d_model_on_3d_scan_needs_an_axis(ct_scan):
    spec = spec_for(2)
    predictor = Predictor(Pointwise(2), spec, device="cpu")
    with pytest.raises(InferenceError, match="slice_axis"):
        predictor.predict(ct_scan)
    per_axis = {}
    for axis in (0, 1, 2):
        result = predictor.predict(ct_scan, PredictOptions(slice_axis=axis, tile=(64, 64)))
        assert result.labels.shape == ct_scan.shape
        per_axis[axis] = result.labels.array
    # a pointwise model gives the same answer whichever way it is sliced
    np.testing.assert_array_equal(per_axis[0], per_axis[1])
    np.testing.assert_array_equal(per_axis[0], per_axis[2])


def test_25d_context_channels(ct_scan):
    predictor = Predictor(Pointwise(2, in_channels=3), spec_for(2, in_channels=3, n_contracts=1),
                          device="cpu")
    result = predictor.predict(ct_scan, PredictOptions(slice_axis=0, context_slices=1))
    assert result.labels.shape == ct_scan.shape
    with pytest.raises(InferenceError, match="3 input channel"):
        predictor.predict(ct_scan, PredictOptions(slice_axis=0))


def test_channel_and_grid_mismatches_are_clear(ct_scan):
    predictor = Predictor(Pointwise(3, in_channels=2), spec_for(3, in_channels=2), device="cpu")
    with pytest.raises(InferenceError, match="takes 2 input channel"):
        predictor.predict(ct_scan)
    g = ct_scan.geometry
    moved = Scan(ct_scan.array, Geometry(g.spacing, (g.origin[0] + 5, *g.origin[1:]), g.direction))
    with pytest.raises(GeometryMismatchError, match="share one grid"):
        predictor.predict([ct_scan, moved])
    both = predictor.predict([ct_scan, ct_scan], PredictOptions(tile=(16, 50, 50)))
    assert both.labels.shape == ct_scan.shape


def test_cancel_between_yields_leaves_nothing_and_the_predictor_still_works(ct_scan, tiny_unet_3d):
    model, spec = tiny_unet_3d
    predictor = Predictor(model, spec, device="cpu")
    job = predictor.predict_job(ct_scan, PredictOptions(tile=(16, 32, 32)))
    events = [next(job) for _ in range(3)]
    assert all(isinstance(e, Progress) for e in events)
    assert events[-1].total > 3
    assert events[-1].done < events[-1].total
    job.close()  # what the GUI's Cancel does
    with pytest.raises(StopIteration):
        next(job)
    again = predictor.predict(ct_scan, PredictOptions(tile=(32, 64, 64)))
    assert again.labels.shape == ct_scan.shape


def test_out_of_memory_lowers_the_batch_and_finishes(ct_scan, monkeypatch):
    torch.manual_seed(3)
    predictor = Predictor(Pointwise(3), spec_for(3), device="cpu")
    options = PredictOptions(tile=(10, 40, 40), batch_size=4)
    reference = predictor.predict(ct_scan, options)
    real = Predictor._scores
    calls = {"n": 0}

    def flaky(self, source, batch, opts, squeeze):
        calls["n"] += 1
        if len(batch) > 1:
            msg = "CUDA out of memory. Tried to allocate 2.00 GiB"
            raise torch.OutOfMemoryError(msg)
        return real(self, source, batch, opts, squeeze)

    monkeypatch.setattr(Predictor, "_scores", flaky)
    events = []
    job = predictor.predict_job(ct_scan, options)
    while True:
        try:
            events.append(next(job))
        except StopIteration as stop:
            result = stop.value
            break
    warnings = [e.message for e in events if isinstance(e, Log)]
    assert any("batch size lowered to 2" in w for w in warnings)
    assert any("batch size lowered to 1" in w for w in warnings)
    np.testing.assert_array_equal(result.labels.array, reference.labels.array)

    def always(self, source, batch, opts, squeeze):
        msg = "CUDA out of memory."
        raise torch.OutOfMemoryError(msg)

    monkeypatch.setattr(Predictor, "_scores", always)
    with pytest.raises(InferenceError, match="smaller tile"):
        predictor.predict(ct_scan, PredictOptions(tile=(10, 40, 40), batch_size=1))


def test_load_checkpoint_file_and_unknown_names(ct_scan, tiny_unet_3d, tmp_path):
    model, spec = tiny_unet_3d
    path = save_checkpoint(model, spec, tmp_path / "m.safetensors")
    loaded = Predictor.load(path, device="cpu")
    a = loaded.predict(ct_scan, PredictOptions(tile=(32, 64, 64), keep_probabilities=True))
    b = Predictor(model, spec, device="cpu").predict(
        ct_scan, PredictOptions(tile=(32, 64, 64), keep_probabilities=True))
    np.testing.assert_array_equal(a.labels.array, b.labels.array)
    from napari_medseg.inference import CheckpointNotFoundError

    with pytest.raises(CheckpointNotFoundError, match="not a file"):
        Predictor.load("no-such-model")
    with pytest.raises(DeviceError, match="no CUDA"):
        Predictor(model, spec, device="cuda:0") if not torch.cuda.is_available() else (
            pytest.skip("a GPU is present"))


class _LeftRight(torch.nn.Module):
    """Class 2 where intensity rises along the array's columns, 0 where it falls: a network
    that knows which way its input runs, as every trained one does."""

    def __init__(self) -> None:
        super().__init__()
        self.conv = torch.nn.Conv3d(1, 3, (1, 1, 3), padding=(0, 0, 1), bias=False)
        with torch.no_grad():
            self.conv.weight.zero_()
            self.conv.weight[0, 0, 0, 0] = torch.tensor([8.0, 0.0, -8.0])
            self.conv.weight[2, 0, 0, 0] = torch.tensor([-8.0, 0.0, 8.0])

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.conv(x)


def _stored_the_dicom_way(scan: Scan) -> Scan:
    """The same voxels in world space with rows and columns stored in reverse."""
    g = scan.geometry
    direction = g.direction.copy()
    direction[:, 1:] *= -1
    corner = [0, scan.shape[1] - 1, scan.shape[2] - 1]
    geometry = Geometry(spacing=g.spacing, origin=tuple(g.index_to_world(corner)),
                        direction=direction)
    return Scan(array=scan.array[:, ::-1, ::-1].copy(), geometry=geometry, modality="CT")


def test_a_model_with_an_orientation_reads_both_storage_orders_the_same_way(ct_scan):
    flipped = _stored_the_dicom_way(ct_scan)
    options = PredictOptions(tile=(16, 64, 64))
    stored = Predictor(_LeftRight(), spec_for(3), device="cpu")
    a = stored.predict(ct_scan, options).labels.array
    b = stored.predict(flipped, options).labels.array
    assert (a == 2).sum() > 1000  # both classes occur
    assert (a == 0).sum() > 1000
    # without an orientation the network sees mirrored columns: its answer flips
    assert (a != b[:, ::-1, ::-1]).mean() > 0.3
    oriented = Predictor(_LeftRight(), spec_for(3, orientation="RAS"), device="cpu")
    a_ras = oriented.predict(ct_scan, options)
    b_ras = oriented.predict(flipped, options)
    np.testing.assert_array_equal(a_ras.labels.array, a)  # stored RAS already: unchanged
    np.testing.assert_array_equal(b_ras.labels.array[:, ::-1, ::-1], a)  # same in world space
    assert b_ras.labels.geometry == flipped.geometry  # returned on the scan's own grid
