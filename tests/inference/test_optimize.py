"""Inference graph simplifications: same outputs, caller's model untouched."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from napari_medseg.inference.optimize import ConvReLU, fold_batch_norm, optimize_for_inference
from napari_medseg.models import create_model


def _trained_statistics(model: nn.Module, x: torch.Tensor) -> nn.Module:
    """Non-trivial running means/variances and affine parameters, as after training."""
    torch.manual_seed(1)
    for m in model.modules():
        if isinstance(m, nn.modules.batchnorm._BatchNorm):
            nn.init.uniform_(m.weight, 0.5, 1.5)
            nn.init.uniform_(m.bias, -0.2, 0.2)
    model.train()
    with torch.no_grad():
        for _ in range(3):
            model(x * 3.0 + 1.0)
    return model.eval()


@pytest.mark.parametrize(("name", "dims"), [("unet", 3), ("unet", 2), ("segnet", 2)])
def test_folded_model_gives_the_same_outputs(name, dims):
    torch.manual_seed(0)
    model = create_model(name, spatial_dims=dims, in_channels=1, out_channels=3,
                         **({"features": (4, 8, 16)} if name == "unet" else {"width": 4}))
    shape = (2, 1, *([16] * dims))
    x = torch.randn(shape)
    model = _trained_statistics(model, x)
    n_norms = sum(isinstance(m, nn.modules.batchnorm._BatchNorm) for m in model.modules())
    folded = fold_batch_norm(model)
    left = sum(isinstance(m, nn.modules.batchnorm._BatchNorm) for m in folded.modules())
    assert n_norms > 0
    assert left < n_norms  # the conv -> norm pairs were folded
    with torch.inference_mode():
        expected, got = model(x), folded(x)
    torch.testing.assert_close(got, expected, rtol=1e-4, atol=1e-4)
    # the caller's model keeps its norms and weights
    assert sum(isinstance(m, nn.modules.batchnorm._BatchNorm) for m in model.modules()) == n_norms


@pytest.mark.parametrize(("name", "dims", "options"), [
    ("unet", 3, {"features": (4, 8, 16)}),
    ("unet", 2, {"features": (4, 8, 16)}),
    ("deeplab-v3", 2, {}),  # atrous (dilated) convolutions
    ("vnet", 3, {"width": 4}),  # PReLU: nothing to fuse there, results unchanged
])
def test_optimized_model_gives_the_same_outputs(name, dims, options):
    torch.manual_seed(0)
    model = create_model(name, spatial_dims=dims, in_channels=2, out_channels=3, **options)
    x = torch.randn((2, 2, *([16] * dims)))
    model = _trained_statistics(model, x)
    optimized = optimize_for_inference(model)
    fused = sum(isinstance(m, ConvReLU) for m in optimized.modules())
    if name != "vnet":
        assert fused > 0
    fmt = torch.channels_last_3d if dims == 3 else torch.channels_last
    with torch.inference_mode():
        expected = model(x)
        got = optimized(x)
        got_channels_last = optimized.to(memory_format=fmt)(x.contiguous(memory_format=fmt))
    torch.testing.assert_close(got, expected, rtol=1e-4, atol=1e-4)
    torch.testing.assert_close(got_channels_last, expected, rtol=1e-4, atol=1e-4)
    assert not any(isinstance(m, ConvReLU) for m in model.modules())
