"""CPU fast paths for the convolutions of the zoo: same layers, same weights, same results.

``conv_nd`` and ``conv_transpose_nd`` (``blocks.py``) build these subclasses of
``nn.Conv2d/3d`` and ``nn.ConvTranspose2d/3d``; parameters and ``state_dict`` are torch's.
Only the CPU computation changes, in four cases where PyTorch's own kernel choice is slow
(each measured against torch's layer; ``benchmarks/bench_models.py`` measures the networks):

* **1x1(x1) convolutions** (class heads, attention-gate projections) are one matrix product
  per image, ``(C_out, C_in) @ (C_in, voxels)``; torch's im2col path has a ~2x slower backward.
* **2x up-convolutions** (kernel = stride, the U-Net/V-Net decoders): every input voxel writes
  its own 2x2(x2) output block, so the layer is one matrix product
  ``(C_out * 8, C_in) @ (C_in, voxels)`` and one reshuffle; torch's 3D transposed convolution
  takes its reference kernel and copies (1.5-2x slower).
* **Kernel = stride convolutions** (V-Net's down-convolutions, attention-gate strides): the
  forward is torch's, the backward two matrix products (torch's backward: 1.3-2x slower).
* **3D convolutions that torch sends to its reference kernel**: for batch 1 and kernels up to
  3, torch uses oneDNN only if ``N * C * D * H > 20480`` (a rule written for 2D, where it
  reads ``N * C * H * W``), so a 3D U-Net's first layer (one input channel) and its coarse
  levels run the vol2col reference kernel, 2-7x slower than oneDNN on the same data.  There we
  call oneDNN for the forward and, for stride 1, compute the input gradient as a oneDNN
  convolution of the output gradient with the flipped kernel, leaving only the weight
  gradient to torch's ``convolution_backward`` (1.1-1.7x faster backward).  Where torch
  already picks oneDNN, its own forward and backward run.

Elsewhere (CUDA, other dtypes, autocast, tracing for TorchScript/ONNX export,
``torch.compile``) the layers run torch's own code, so exported graphs keep their ``Conv``
nodes.  Results differ from torch's kernels by float rounding only (the 1x1 and
up-convolution products came out bit-identical on one thread).
"""

from __future__ import annotations

import contextlib
import math
from collections.abc import Iterator

import torch
import torch.nn.functional as F
from torch import nn
from torch.autograd.function import once_differentiable
from torch.nn.modules.conv import _ConvNd, _ConvTransposeNd

_ENABLED = [True]


@contextlib.contextmanager
def torch_kernels() -> Iterator[None]:
    """Run torch's own convolution kernels inside the block (for comparisons, and for
    ``FlopCounterMode``, which counts only the convolutions that torch dispatches itself)."""
    _ENABLED.append(False)
    try:
        yield
    finally:
        _ENABLED.pop()


def _fast_cpu(x: torch.Tensor, weight: torch.Tensor) -> bool:
    """Plain eager float32 execution on CPU, where the fast paths apply."""
    return (
        _ENABLED[-1]
        and x.device.type == "cpu"
        and x.dtype == torch.float32
        and weight.dtype == torch.float32
        and not torch.jit.is_tracing()
        and not torch.jit.is_scripting()
        and not torch.compiler.is_compiling()
        and not _cpu_autocast()
    )


def _cpu_autocast() -> bool:
    try:
        return torch.is_autocast_enabled("cpu")
    except TypeError:  # torch < 2.4 has no device argument
        return torch.is_autocast_cpu_enabled()


def _onednn() -> bool:
    return bool(torch.backends.mkldnn.is_available() and torch.backends.mkldnn.enabled)


def _onednn_conv(x: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor | None,
                 padding: list[int], stride: list[int], dilation: list[int],
                 groups: int) -> torch.Tensor:
    return torch.ops.aten.mkldnn_convolution(x, weight, bias, padding, stride, dilation, groups)


def pointwise_conv(x: torch.Tensor, weight: torch.Tensor,
                   bias: torch.Tensor | None) -> torch.Tensor:
    """A 1x1(x1) convolution as a matrix product: ``(B, C_in, *S)`` -> ``(B, C_out, *S)``."""
    b, cin, *spatial = x.shape
    cout = weight.shape[0]
    xf = x.reshape(b, cin, -1)
    wf = weight.reshape(cout, cin).expand(b, cout, cin)
    if bias is None:
        y = torch.bmm(wf, xf)
    else:
        y = torch.baddbmm(bias.view(1, cout, 1).expand(b, cout, xf.shape[2]), wf, xf)
    return y.view(b, cout, *spatial)


def up_conv(x: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor | None,
            factor: int) -> torch.Tensor:
    """A transposed convolution with kernel = stride = ``f`` as a matrix product.

    ``x`` ``(B, C_in, *S)``, ``weight`` ``(C_in, C_out, f, f[, f])`` -> ``(B, C_out, *(f S))``
    with ``out[:, o, f i + a] = sum_c weight[c, o, a] x[:, c, i]`` (+ ``bias[o]``).
    """
    b, cin, *spatial = x.shape
    n = len(spatial)
    cout = weight.shape[1]
    block = factor**n
    voxels = math.prod(spatial)
    wt = weight.reshape(cin, cout * block).t().expand(b, cout * block, cin)
    xf = x.reshape(b, cin, voxels)
    if bias is None:
        y = torch.bmm(wt, xf)
    else:
        y = torch.baddbmm(bias.repeat_interleave(block).view(1, -1, 1).expand(b, -1, voxels),
                          wt, xf)
    # (B, C_out, f, f[, f], *S) -> (B, C_out, S_0, f, S_1, f[, S_2, f])
    y = y.view(b, cout, *([factor] * n), *spatial)
    order = [0, 1, *(i for axis in range(n) for i in (2 + n + axis, 2 + axis))]
    return y.permute(order).reshape(b, cout, *(s * factor for s in spatial))


def space_to_depth(x: torch.Tensor, factor: int) -> torch.Tensor:
    """``(B, C, *S)`` -> ``(B, prod(S / f), C * f**n)``: the ``f x f (x f)`` blocks as rows, in
    the ``(c, a[, b, c])`` order of a kernel = stride = ``f`` convolution's weight."""
    b, c, *spatial = x.shape
    n = len(spatial)
    coarse = [s // factor for s in spatial]
    split = [v for q in coarse for v in (q, factor)]
    order = [0, *(2 + 2 * axis for axis in range(n)), 1, *(3 + 2 * axis for axis in range(n))]
    return x.view(b, c, *split).permute(order).reshape(b, math.prod(coarse), c * factor**n)


class _BlockConv(torch.autograd.Function):
    """Kernel = stride convolution: torch's (or oneDNN's) forward, matrix-product backward.

    ``grad_x`` is the up-convolution of the output gradient with the same weight
    (:func:`up_conv`); ``grad_w = grad_y @ space_to_depth(x)``.
    """

    @staticmethod
    def forward(ctx, x: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor | None,
                conv: _ConvNd) -> torch.Tensor:
        ctx.save_for_backward(x, weight)
        ctx.has_bias = bias is not None
        if x.dim() == 5 and _onednn():
            return _onednn_conv(x, weight, bias, [0, 0, 0], list(conv.stride), [1, 1, 1], 1)
        return (F.conv2d if x.dim() == 4 else F.conv3d)(x, weight, bias, conv.stride)

    @staticmethod
    @once_differentiable
    def backward(ctx, grad: torch.Tensor):
        x, weight = ctx.saved_tensors
        factor = weight.shape[-1]
        b, cout = grad.shape[:2]
        grad_x = grad_w = grad_b = None
        if ctx.needs_input_grad[0]:
            grad_x = up_conv(grad, weight, None, factor)
        if ctx.needs_input_grad[1]:
            rows = space_to_depth(x, factor)
            grad_w = torch.bmm(grad.reshape(b, cout, -1), rows).sum(0).view(weight.shape)
        if ctx.has_bias and ctx.needs_input_grad[2]:
            grad_b = grad.sum(dim=[0, *range(2, grad.dim())])
        return grad_x, grad_w, grad_b, None


class _Conv3dStride1(torch.autograd.Function):
    """oneDNN forward; input gradient as a oneDNN convolution, weight gradient by torch."""

    @staticmethod
    def forward(ctx, x: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor | None,
                padding: list[int], dilation: list[int]) -> torch.Tensor:
        ctx.save_for_backward(x, weight)
        ctx.padding, ctx.dilation, ctx.has_bias = padding, dilation, bias is not None
        return _onednn_conv(x, weight, bias, padding, [1, 1, 1], dilation, 1)

    @staticmethod
    @once_differentiable
    def backward(ctx, grad: torch.Tensor):
        x, weight = ctx.saved_tensors
        grad = grad.contiguous()
        grad_x = grad_w = grad_b = None
        if ctx.needs_input_grad[0]:
            # the adjoint of a stride-1 correlation: correlate with the flipped kernel, in/out
            # channels swapped, padded to the full kernel extent
            flipped = weight.flip(2, 3, 4).transpose(0, 1).contiguous()
            pad = [d * (k - 1) - p
                   for k, p, d in zip(weight.shape[2:], ctx.padding, ctx.dilation, strict=True)]
            grad_x = _onednn_conv(grad, flipped, None, pad, [1, 1, 1], ctx.dilation, 1)
        if ctx.needs_input_grad[1] or ctx.needs_input_grad[2]:
            _, grad_w, grad_b = torch.ops.aten.convolution_backward(
                grad, x, weight, [weight.shape[0]] if ctx.has_bias else None, [1, 1, 1],
                ctx.padding, ctx.dilation, False, [0, 0, 0], 1,
                [False, ctx.needs_input_grad[1], ctx.needs_input_grad[2]],
            )
        return grad_x, grad_w, grad_b, None, None


def _conv_path(conv: _ConvNd) -> str:
    """Which fast path a convolution layer takes on CPU: its shape decides once."""
    if conv.padding_mode != "zeros" or isinstance(conv.padding, str):
        return "torch"
    kernel, stride = tuple(conv.kernel_size), tuple(conv.stride)
    padding, dilation = _ints(conv.padding), tuple(conv.dilation)
    plain = conv.groups == 1 and all(d == 1 for d in dilation) and not any(padding)
    if plain and all(k == 1 for k in kernel) and all(s == 1 for s in stride):
        return "pointwise"
    if plain and len(set(kernel)) == 1 and kernel[0] > 1 and stride == kernel:
        return "blocks"
    if len(kernel) == 3 and conv.groups == 1 and all(s == 1 for s in stride) and all(
            d * (k - 1) >= p for k, p, d in zip(kernel, padding, dilation, strict=True)):
        return "onednn-stride1"
    if len(kernel) == 3:
        return "onednn"
    return "torch"


def _ints(values: str | tuple[int, ...]) -> list[int]:
    return [int(v) for v in values]


def _conv(conv: _ConvNd, x: torch.Tensor, weight: torch.Tensor,
          bias: torch.Tensor | None) -> torch.Tensor | None:
    """The fast computation of ``conv`` on ``x``, or ``None`` where torch's own applies."""
    path = conv._fast_path
    if path == "torch" or not _fast_cpu(x, weight):
        return None
    if path == "pointwise":
        return pointwise_conv(x, weight, bias)
    if path == "blocks":
        if any(s % k for s, k in zip(x.shape[2:], conv.kernel_size, strict=True)):
            return None
        return _BlockConv.apply(x, weight, bias, conv)
    if not _onednn() or not _torch_takes_reference_3d(x, weight, conv.groups):
        return None
    if path == "onednn-stride1":
        return _Conv3dStride1.apply(x, weight, bias, _ints(conv.padding), list(conv.dilation))
    return _onednn_conv(x, weight, bias, _ints(conv.padding), list(conv.stride),
                        list(conv.dilation), conv.groups)


def _torch_takes_reference_3d(x: torch.Tensor, weight: torch.Tensor, groups: int) -> bool:
    """Whether torch (``ConvParams::use_mkldnn``) sends this float32 CPU 3D convolution to its
    vol2col reference kernel instead of oneDNN; elsewhere torch's own choice is oneDNN."""
    n, c, d, h = x.shape[:4]
    large_kernel = weight.shape[-1] > 3 and weight.shape[-2] > 3
    return groups == 1 and not large_kernel and n == 1 and n * c * d * h <= 20480


class _FastConv:
    """The CPU fast paths of this module for a ``Conv2d``/``Conv3d`` subclass."""

    _fast_path: str

    def __init__(self, *args, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self._fast_path = _conv_path(self)  # type: ignore[arg-type]

    def _conv_forward(self, input: torch.Tensor, weight: torch.Tensor,
                      bias: torch.Tensor | None) -> torch.Tensor:
        y = _conv(self, input, weight, bias)  # type: ignore[arg-type]
        return super()._conv_forward(input, weight, bias) if y is None else y  # type: ignore[misc]


class Conv2d(_FastConv, nn.Conv2d):
    """``nn.Conv2d`` with the CPU fast paths of this module (1x1, kernel = stride)."""


class Conv3d(_FastConv, nn.Conv3d):
    """``nn.Conv3d`` with the CPU fast paths of this module (1x1x1, kernel = stride, oneDNN)."""


def _is_block_up(conv: _ConvTransposeNd) -> bool:
    kernel = tuple(conv.kernel_size)
    return (len(set(kernel)) == 1 and tuple(conv.stride) == kernel and conv.groups == 1
            and not any(_ints(conv.padding)) and not any(conv.output_padding)
            and all(d == 1 for d in conv.dilation) and conv.padding_mode == "zeros")


class _FastConvTranspose:
    """The kernel = stride matrix-product form of this module for a ``ConvTranspose2d/3d``."""

    _block_up: bool

    def __init__(self, *args, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self._block_up = _is_block_up(self)  # type: ignore[arg-type]

    def forward(self, input: torch.Tensor, output_size: list[int] | None = None) -> torch.Tensor:
        weight, bias, stride = self.weight, self.bias, self.stride  # type: ignore[attr-defined]
        if self._block_up and output_size is None and _fast_cpu(input, weight):
            return up_conv(input, weight, bias, stride[0])
        return super().forward(input, output_size)  # type: ignore[misc]


class ConvTranspose2d(_FastConvTranspose, nn.ConvTranspose2d):
    """``nn.ConvTranspose2d`` whose kernel = stride form is a matrix product on CPU."""


class ConvTranspose3d(_FastConvTranspose, nn.ConvTranspose3d):
    """``nn.ConvTranspose3d`` whose kernel = stride form is a matrix product on CPU."""
