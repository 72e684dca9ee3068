"""The CPU fast paths of models/cpu_conv.py compute what torch's layers compute."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from napari_medseg.models import cpu_conv

TORCH = {cpu_conv.Conv2d: nn.Conv2d, cpu_conv.Conv3d: nn.Conv3d,
         cpu_conv.ConvTranspose2d: nn.ConvTranspose2d,
         cpu_conv.ConvTranspose3d: nn.ConvTranspose3d}

# (layer class, constructor args, input shape, the path the layer takes)
CASES = [
    (cpu_conv.Conv2d, (6, 3, 1), (2, 6, 9, 7), "pointwise"),
    (cpu_conv.Conv3d, (6, 3, 1), (1, 6, 5, 9, 7), "pointwise"),
    (cpu_conv.Conv2d, (4, 8, 2, 2), (2, 4, 8, 6), "blocks"),
    (cpu_conv.Conv3d, (4, 8, 2, 2), (1, 4, 8, 6, 4), "blocks"),
    (cpu_conv.Conv3d, (4, 6, 3, 1, 1), (1, 4, 9, 8, 7), "onednn-stride1"),
    (cpu_conv.Conv3d, (1, 6, 3, 1, 2, 2), (1, 1, 9, 8, 7), "onednn-stride1"),  # dilated
    (cpu_conv.Conv3d, (4, 6, 3, 2, 1), (1, 4, 9, 8, 7), "onednn"),  # strided
    (cpu_conv.Conv3d, (4, 6, 3, 1, 1), (2, 4, 9, 8, 7), "onednn-stride1"),  # batch 2: torch's
    (cpu_conv.Conv2d, (4, 6, 3, 1, 1), (1, 4, 9, 8), "torch"),
    (cpu_conv.ConvTranspose2d, (6, 3, 2, 2), (2, 6, 5, 4), "up"),
    (cpu_conv.ConvTranspose3d, (6, 3, 2, 2), (1, 6, 5, 4, 3), "up"),
]


def _pair(cls, args, *, bias: bool):
    torch.manual_seed(0)
    fast = cls(*args, bias=bias)
    plain = TORCH[cls](*args, bias=bias)
    plain.load_state_dict(fast.state_dict())
    return fast, plain


@pytest.mark.parametrize("bias", [True, False])
@pytest.mark.parametrize(("cls", "args", "shape", "path"), CASES)
def test_same_outputs_and_gradients_as_torch(cls, args, shape, path, bias: bool) -> None:
    fast, plain = _pair(cls, args, bias=bias)
    taken = getattr(fast, "_fast_path", "up" if getattr(fast, "_block_up", False) else None)
    assert taken == path
    x = torch.randn(shape)
    xa, xb = x.clone().requires_grad_(), x.clone().requires_grad_()
    ya, yb = fast(xa), plain(xb)
    torch.testing.assert_close(ya, yb, rtol=1e-5, atol=1e-5)
    grad = torch.randn_like(ya)
    ya.backward(grad)
    yb.backward(grad)
    torch.testing.assert_close(xa.grad, xb.grad, rtol=1e-5, atol=1e-5)
    for (name, p), q in zip(fast.named_parameters(), plain.parameters(), strict=True):
        torch.testing.assert_close(p.grad, q.grad, rtol=1e-4, atol=1e-4, msg=name)


def test_frozen_weights_and_input_without_grad() -> None:
    fast, plain = _pair(cpu_conv.Conv3d, (4, 6, 3, 1, 1), bias=True)
    fast.weight.requires_grad_(False)
    plain.weight.requires_grad_(False)
    x = torch.randn(1, 4, 6, 6, 6)
    fast(x).square().sum().backward()
    plain(x).square().sum().backward()
    assert fast.weight.grad is None
    torch.testing.assert_close(fast.bias.grad, plain.bias.grad)


def test_same_state_dict_as_torch() -> None:
    for cls, args, _, _ in CASES:
        fast, plain = _pair(cls, args, bias=True)
        assert {k: v.shape for k, v in fast.state_dict().items()} == {
            k: v.shape for k, v in plain.state_dict().items()}


def test_tracing_and_autocast_use_torch_kernels() -> None:
    conv = cpu_conv.Conv3d(4, 2, 1).eval()
    x = torch.randn(1, 4, 6, 6, 6)
    traced = torch.jit.trace(conv, x)
    graph = str(traced.inlined_graph)
    assert "aten::_convolution" in graph
    assert "bmm" not in graph
    with torch.autocast("cpu", dtype=torch.bfloat16):
        assert conv(x).dtype == torch.bfloat16


def test_a_double_backward_fails_clearly() -> None:
    conv = cpu_conv.Conv3d(2, 2, 3, padding=1)
    x = torch.randn(1, 2, 5, 5, 5, requires_grad=True)
    (grad,) = torch.autograd.grad(conv(x).sum(), x, create_graph=True)
    with pytest.raises(RuntimeError):
        grad.sum().backward()


def test_torch_kernels_lets_the_flop_counter_see_every_convolution() -> None:
    from torch.utils.flop_counter import FlopCounterMode

    conv = cpu_conv.Conv3d(4, 6, 3, padding=1)  # a size torch sends to its reference kernel
    x = torch.randn(1, 4, 8, 8, 8)
    counter = FlopCounterMode(display=False)
    with torch.no_grad(), cpu_conv.torch_kernels(), counter:
        y = conv(x)
    assert counter.get_total_flops() == 2 * 6 * 4 * 27 * 8**3
    torch.testing.assert_close(conv(x), y, rtol=1e-5, atol=1e-5)
