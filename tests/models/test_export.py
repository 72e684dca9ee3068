"""Export to TorchScript and ONNX; ONNX Runtime reproduces torch's outputs."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from napari_medseg.errors import ModelExportError
from napari_medseg.models import create_model, export_onnx, export_torchscript

from .tiny_options import TINY

CASES = [("unet", 2), ("attention-unet", 3), ("deeplab-v3plus", 2), ("fcn-8s", 3),
         ("unet++", 3), ("monai-dynunet", 3)]


def _model(name: str, dims: int):
    torch.manual_seed(0)
    return create_model(name, spatial_dims=dims, in_channels=2, out_channels=3,
                        **TINY[name]).eval()


@pytest.mark.parametrize(("name", "dims"), CASES)
def test_torchscript(name: str, dims: int, tmp_path: Path) -> None:
    model = _model(name, dims)
    x = torch.randn(1, 2, *([13] * dims))
    path = export_torchscript(model, tmp_path / "m.pt", x)
    loaded = torch.jit.load(str(path))
    with torch.no_grad():
        torch.testing.assert_close(loaded(x), model(x))


@pytest.mark.parametrize(("name", "dims"), CASES)
def test_onnx_matches_torch(name: str, dims: int, tmp_path: Path) -> None:
    ort = pytest.importorskip("onnxruntime")
    pytest.importorskip("onnx")
    model = _model(name, dims)
    x = torch.randn(1, 2, *([13] * dims))
    path = export_onnx(model, tmp_path / "m.onnx", x)
    session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    (got,) = session.run(None, {"image": x.numpy()})
    with torch.no_grad():
        expected = model(x).numpy()
    np.testing.assert_allclose(got, expected, rtol=1e-3, atol=1e-4)


def test_segnet_export_fails_clearly(tmp_path: Path) -> None:
    """MaxUnpool cannot be traced in torch 2.13: a clear error, no broken file."""
    model = _model("segnet", 2)
    x = torch.randn(1, 2, 16, 16)
    with pytest.raises(ModelExportError, match="tracing failed"):
        export_torchscript(model, tmp_path / "m.pt", x)
    assert not (tmp_path / "m.pt").exists()
