"""Export a zoo model to TorchScript or ONNX for deployment outside napari-medseg.

Both exports trace the model in eval mode on an example input ``(B, C_in, *S)``.  The pad and
crop of :class:`~.padding.SizeAgnostic` are traced for that input's size, so export at the
patch size you will run at (the inference engine tiles scans into patches of that size); the
ONNX graph is exported with dynamic batch and spatial axes where the network allows it.

Known limit (torch 2.13): SegNet cannot be traced (``MaxUnpool2d/3d`` check their output size
with a tensor condition); both exports raise :class:`ModelExportError` saying so.  The other
tested networks export and match torch (tests/models/test_export.py).
"""

from __future__ import annotations

import os
import warnings
from pathlib import Path

import torch
from torch import nn

from napari_medseg.errors import CheckpointExistsError, ModelExportError, setting


def _target(path: str | os.PathLike, overwrite: bool) -> Path:
    path = Path(path)
    if path.exists() and not overwrite:
        msg = f"{path} exists; pass {setting('overwrite')} to replace it"
        raise CheckpointExistsError(msg)
    return path


def export_torchscript(model: nn.Module, path: str | os.PathLike, example_input: torch.Tensor,
                       *, overwrite: bool = False) -> Path:
    """Trace ``model`` on ``example_input`` and save it with ``torch.jit.save``."""
    path = _target(path, overwrite)
    model = model.eval()
    try:
        with torch.no_grad(), warnings.catch_warnings():
            warnings.simplefilter("ignore")
            traced = torch.jit.trace(model, example_input, check_trace=False)
            expected = model(example_input)
            got = traced(example_input)
    except Exception as error:
        msg = f"TorchScript tracing failed: {error}"
        raise ModelExportError(msg) from error
    if not torch.allclose(expected, got, rtol=1e-4, atol=1e-5):
        msg = "the traced TorchScript model does not reproduce the model's output"
        raise ModelExportError(msg)
    torch.jit.save(traced, str(path))
    return path


def export_onnx(model: nn.Module, path: str | os.PathLike, example_input: torch.Tensor, *,
                opset: int = 17, dynamic: bool = False, overwrite: bool = False) -> Path:
    """Export to ONNX with the TorchScript-based exporter (no onnxscript needed).

    The graph has one input ``image`` ``(B, C_in, *S)`` and one output ``logits``; with
    ``dynamic`` the batch and spatial axes are symbolic (check the result at your sizes).
    """
    path = _target(path, overwrite)
    model = model.eval()
    spatial = range(2, example_input.dim())
    axes = {0: "batch", **{a: f"s{a - 2}" for a in spatial}} if dynamic else {0: "batch"}
    try:
        with torch.no_grad(), warnings.catch_warnings():
            warnings.simplefilter("ignore")
            torch.onnx.export(model, (example_input,), str(path), dynamo=False,
                              input_names=["image"], output_names=["logits"],
                              opset_version=opset,
                              dynamic_axes={"image": axes, "logits": axes})
    except Exception as error:
        msg = f"ONNX export failed: {error}"
        raise ModelExportError(msg) from error
    return path
