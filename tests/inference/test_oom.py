"""Out of memory while segmenting: fall back and finish, or stop with a message naming what to
change (tile, batch, device, resampling) -- never a raw allocator error.

The allocator error is simulated: a network wrapper raises what CUDA, torch's CPU allocator
or numpy raise when a batch holds more than ``limit`` windows.
"""

from __future__ import annotations

from collections import Counter

import numpy as np
import pytest
import torch
from torch import nn

from napari_medseg.events import Log, run_to_end
from napari_medseg.inference import InferenceError, PredictOptions, Predictor
from napari_medseg.scan import Scan

from .conftest import Pointwise, spec_for

CALLS: Counter[str] = Counter()

ERRORS = {
    "cuda": lambda: torch.OutOfMemoryError(
        "CUDA out of memory. Tried to allocate 2.00 GiB (GPU 0; 7.79 GiB total capacity)"),
    "cpu allocator": lambda: RuntimeError(
        "[enforce fail at alloc_cpu.cpp:127] err == 0. DefaultCPUAllocator: can't allocate "
        "memory: you tried to allocate 8589934592 bytes. Error code 12 (Cannot allocate memory)"),
    "mps": lambda: RuntimeError("MPS backend out of memory (MPS allocated: 9.00 GB)"),
    "numpy": lambda: MemoryError("Unable to allocate 8.00 GiB for an array"),
}


class OutOfMemoryAbove(nn.Module):
    """``net`` that fails like an exhausted allocator when a batch has more than ``limit``
    windows (``limit=0``: always)."""

    def __init__(self, net: nn.Module, limit: int, error: str) -> None:
        super().__init__()
        self.net = net
        self.limit = limit
        self.error = error

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        CALLS[f"batch {x.shape[0]}"] += 1
        if x.shape[0] > self.limit:
            raise ERRORS[self.error]()
        return self.net(x)


@pytest.fixture(scope="module")
def ct_scan(shared_data) -> Scan:
    """A 20 x 80 x 80 crop of the real abdominal CT (small: CI has 2 cores)."""
    from napari_medseg.io import read_scan

    ct = read_scan(shared_data / "ct_abdomen" / "example_ct_sm.nii.gz")
    return Scan(np.ascontiguousarray(ct.array[5:25, 10:90, 20:100]), ct.geometry, "CT")


def _events(job):  # type: ignore[no-untyped-def]
    events = []
    while True:
        try:
            events.append(next(job))
        except StopIteration as stop:
            return events, stop.value


@pytest.mark.parametrize("error", sorted(ERRORS))
def test_batch_is_halved_until_it_fits_and_the_result_is_unchanged(ct_scan, error):
    torch.manual_seed(3)
    net = Pointwise(3)
    options = PredictOptions(tile=(10, 40, 40), batch_size=8, device="cpu")
    reference = Predictor(net, spec_for(3), device="cpu").predict(ct_scan, options)
    CALLS.clear()
    predictor = Predictor(OutOfMemoryAbove(net, 2, error), spec_for(3), device="cpu")
    events, result = _events(predictor.predict_job(ct_scan, options))
    warnings = [e.message for e in events if isinstance(e, Log) and e.level == "warning"]
    assert warnings[:2] == ["out of memory: batch size lowered to 4",
                            "out of memory: batch size lowered to 2"]
    assert CALLS["batch 2"] > 0
    assert not any(k in CALLS for k in ("batch 3", "batch 4")) or CALLS["batch 4"] == 1
    np.testing.assert_array_equal(result.labels.array, reference.labels.array)


@pytest.mark.parametrize("error", sorted(ERRORS))
def test_when_even_one_window_does_not_fit_the_message_names_what_to_change(ct_scan, error):
    predictor = Predictor(OutOfMemoryAbove(Pointwise(3), 0, error), spec_for(3), device="cpu")
    with pytest.raises(InferenceError) as info:
        predictor.predict(ct_scan, PredictOptions(tile=(10, 40, 40), batch_size=4))
    from napari_medseg.cli.options import cli_spelling
    from napari_medseg.errors import render

    message = str(info.value)
    for words in ("out of memory on cpu", "batch size 1", "smaller tile", "(10, 40, 40)",
                  "tile=(5, 20, 20)", "device='cpu'", "crop"):
        assert words in message, message
    on_the_cli = render(info.value, cli_spelling)  # the CLI names its flags
    for words in ("--tile 5 20 20", "--device cpu"):
        assert words in on_the_cli, on_the_cli
    assert isinstance(info.value.__cause__, RuntimeError | MemoryError)


def test_other_runtime_errors_are_not_taken_for_out_of_memory(ct_scan):
    class Broken(nn.Module):
        def forward(self, x: torch.Tensor) -> torch.Tensor:
            msg = "cuDNN error: CUDNN_STATUS_INTERNAL_ERROR"
            raise RuntimeError(msg)

    with pytest.raises(RuntimeError, match="CUDNN_STATUS_INTERNAL_ERROR"):
        Predictor(Broken(), spec_for(3), device="cpu").predict(ct_scan, PredictOptions(
            tile=(10, 40, 40)))


def test_out_of_memory_outside_the_windows_is_a_clear_error(ct_scan, monkeypatch):
    """Preparing the volume (normalising, resampling, 2.5D stacking) can run out too."""
    import napari_medseg.inference.predictor as predictor_module

    def exhausted(*args, **kwargs):  # type: ignore[no-untyped-def]
        raise ERRORS["numpy"]()

    monkeypatch.setattr(predictor_module, "prepare_channels", exhausted)
    predictor = Predictor(Pointwise(3), spec_for(3), device="cpu")
    with pytest.raises(InferenceError, match=r"out of memory on cpu while preparing.*crop"):
        predictor.predict(ct_scan, PredictOptions(tile=(10, 40, 40)))


def test_a_target_spacing_that_would_explode_the_grid_is_refused(ct_scan):
    """A checkpoint asking for 0.01 mm voxels would resample a CT to ~10^13 voxels."""
    spec = spec_for(3, target_spacing=(0.01, 0.01, 0.01))
    predictor = Predictor(Pointwise(3), spec, device="cpu")
    with pytest.raises(InferenceError, match=r"would make a .* grid.*resample=False") as info:
        predictor.predict(ct_scan, PredictOptions(tile=(10, 40, 40)))
    from napari_medseg.cli.options import cli_spelling
    from napari_medseg.errors import render

    assert "turn resampling off (--no-resample)" in render(info.value, cli_spelling)
    result = predictor.predict(ct_scan, PredictOptions(tile=(10, 40, 40), resample=False))
    assert result.labels.shape == ct_scan.shape


def test_the_predictor_still_works_after_an_out_of_memory_error(ct_scan):
    """A failed run leaves nothing behind: the next run succeeds once memory is there."""
    predictor = Predictor(OutOfMemoryAbove(Pointwise(3), 0, "cuda"), spec_for(3),
                          device="cpu")
    with pytest.raises(InferenceError):
        predictor.predict(ct_scan, PredictOptions(tile=(10, 40, 40), batch_size=2))
    predictor.models[0].limit = 2  # memory was freed
    result = run_to_end(predictor.predict_job(ct_scan, PredictOptions(tile=(10, 40, 40),
                                                                       batch_size=2)))
    assert result.labels.shape == ct_scan.shape


@pytest.mark.gpu
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
def test_on_a_gpu_stitching_moves_to_the_cpu(ct_scan, monkeypatch):
    """After the batch reached 1, the blending buffers leave the GPU and the run finishes."""
    from napari_medseg.inference import tiling

    real_add = tiling.SlabAccumulator.add

    def add(self, tile, scores):  # type: ignore[no-untyped-def]
        if self.scores.device.type == "cuda":
            raise ERRORS["cuda"]()
        return real_add(self, tile, scores)

    monkeypatch.setattr(tiling.SlabAccumulator, "add", add)
    predictor = Predictor(Pointwise(3), spec_for(3), device="cuda")
    events, result = _events(predictor.predict_job(ct_scan, PredictOptions(
        tile=(10, 40, 40), batch_size=2)))
    messages = [e.message for e in events if isinstance(e, Log)]
    assert "out of memory: stitching on the CPU" in messages
    assert result.labels.shape == ct_scan.shape
