"""Layer factories and small building blocks shared by every network of the zoo.

Each network is written once for 2D and 3D: it asks these factories for a convolution, a
normalisation or a pooling layer of ``spatial_dims`` dimensions (the idea of MONAI's
``Conv["conv", dims]``).  Tensors are ``(B, C, Y, X)`` in 2D and ``(B, C, Z, Y, X)`` in 3D.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import nn

from . import cpu_conv

NORMS = ("batch", "instance", "group", "none")
ACTIVATIONS = ("relu", "leaky_relu", "prelu", "none")


def _check_dims(spatial_dims: int) -> int:
    if spatial_dims not in (2, 3):
        msg = f"spatial_dims must be 2 or 3, got {spatial_dims!r}"
        raise ValueError(msg)
    return spatial_dims


def conv_nd(
    spatial_dims: int,
    in_channels: int,
    out_channels: int,
    kernel_size: int = 3,
    *,
    stride: int = 1,
    dilation: int = 1,
    groups: int = 1,
    bias: bool = True,
) -> nn.Module:
    """A ``Conv2d``/``Conv3d`` with "same" padding for odd kernels (``stride`` 1).

    The layers are :mod:`.cpu_conv`'s subclasses of torch's: same parameters, faster on CPU
    for 1x1, kernel = stride and small-batch 3D convolutions.
    """
    conv = (cpu_conv.Conv2d, cpu_conv.Conv3d)[_check_dims(spatial_dims) - 2]
    padding = dilation * (kernel_size - 1) // 2
    return conv(
        in_channels,
        out_channels,
        kernel_size,
        stride=stride,
        padding=padding,
        dilation=dilation,
        groups=groups,
        bias=bias,
    )


def conv_transpose_nd(
    spatial_dims: int, in_channels: int, out_channels: int, *, factor: int = 2
) -> nn.Module:
    """A transposed convolution that enlarges every spatial axis exactly ``factor`` times.

    Kernel = stride = ``factor``: each input voxel writes its own output block, which
    :mod:`.cpu_conv` computes as one matrix product on CPU.
    """
    conv = (cpu_conv.ConvTranspose2d, cpu_conv.ConvTranspose3d)[_check_dims(spatial_dims) - 2]
    return conv(in_channels, out_channels, factor, stride=factor)


def norm_nd(kind: str, spatial_dims: int, channels: int) -> nn.Module:
    """A normalisation layer: ``"batch"``, ``"instance"`` (affine), ``"group"`` or ``"none"``."""
    dims = _check_dims(spatial_dims)
    if kind == "batch":
        return (nn.BatchNorm2d, nn.BatchNorm3d)[dims - 2](channels)
    if kind == "instance":
        return (nn.InstanceNorm2d, nn.InstanceNorm3d)[dims - 2](channels, affine=True)
    if kind == "group":
        return nn.GroupNorm(min(8, channels), channels) if channels % min(8, channels) == 0 else (
            nn.GroupNorm(1, channels)
        )
    if kind == "none":
        return nn.Identity()
    msg = f"unknown norm {kind!r}; use one of {', '.join(NORMS)}"
    raise ValueError(msg)


def activation(kind: str = "relu", channels: int = 1) -> nn.Module:
    """A non-linearity: ``"relu"`` (in place), ``"leaky_relu"``, ``"prelu"`` or ``"none"``."""
    if kind == "relu":
        return nn.ReLU(inplace=True)
    if kind == "leaky_relu":
        return nn.LeakyReLU(0.01, inplace=True)
    if kind == "prelu":
        return nn.PReLU(channels)
    if kind == "none":
        return nn.Identity()
    msg = f"unknown activation {kind!r}; use one of {', '.join(ACTIVATIONS)}"
    raise ValueError(msg)


def max_pool_nd(spatial_dims: int, kernel_size: int = 2, *, stride: int | None = None,
                padding: int = 0, return_indices: bool = False) -> nn.Module:
    """Max pooling; with ``return_indices`` it also returns the argmax positions (SegNet)."""
    pool = (nn.MaxPool2d, nn.MaxPool3d)[_check_dims(spatial_dims) - 2]
    return pool(kernel_size, stride=stride, padding=padding, return_indices=return_indices)


def max_unpool_nd(spatial_dims: int, kernel_size: int = 2) -> nn.Module:
    """Inverse of :func:`max_pool_nd`: scatters values back to the stored argmax positions."""
    return (nn.MaxUnpool2d, nn.MaxUnpool3d)[_check_dims(spatial_dims) - 2](kernel_size)


def global_avg_pool_nd(spatial_dims: int) -> nn.Module:
    """Average over every spatial axis, keeping them as size 1: ``(B, C, 1, 1[, 1])``."""
    return (nn.AdaptiveAvgPool2d, nn.AdaptiveAvgPool3d)[_check_dims(spatial_dims) - 2](1)


def resize(x: torch.Tensor, size: Sequence[int]) -> torch.Tensor:
    """Bi/trilinear resampling of ``(B, C, *spatial)`` to ``size`` (corners not aligned)."""
    mode = "bilinear" if x.dim() == 4 else "trilinear"
    return F.interpolate(x, size=list(size), mode=mode, align_corners=False)


class ConvNormAct(nn.Sequential):
    """conv -> norm -> activation, the unit most networks here are made of."""

    def __init__(
        self,
        spatial_dims: int,
        in_channels: int,
        out_channels: int,
        kernel_size: int = 3,
        *,
        stride: int = 1,
        dilation: int = 1,
        groups: int = 1,
        norm: str = "batch",
        act: str = "relu",
    ) -> None:
        super().__init__(
            conv_nd(spatial_dims, in_channels, out_channels, kernel_size, stride=stride,
                    dilation=dilation, groups=groups, bias=norm in ("none", "instance")),
            norm_nd(norm, spatial_dims, out_channels),
            activation(act, out_channels),
        )


class DoubleConv(nn.Sequential):
    """Two 3x3(x3) ConvNormAct: the U-Net stage (Ronneberger 2015)."""

    def __init__(self, spatial_dims: int, in_channels: int, out_channels: int, *,
                 mid_channels: int | None = None, norm: str = "batch", act: str = "relu") -> None:
        mid = mid_channels or out_channels
        super().__init__(
            ConvNormAct(spatial_dims, in_channels, mid, norm=norm, act=act),
            ConvNormAct(spatial_dims, mid, out_channels, norm=norm, act=act),
        )


class SeparableConv(nn.Sequential):
    """Depthwise 3x3 (atrous) conv, then pointwise 1x1, each with norm + ReLU (DeepLab v3+)."""

    def __init__(self, spatial_dims: int, in_channels: int, out_channels: int, *,
                 dilation: int = 1, norm: str = "batch") -> None:
        super().__init__(
            ConvNormAct(spatial_dims, in_channels, in_channels, dilation=dilation,
                        groups=in_channels, norm=norm),
            ConvNormAct(spatial_dims, in_channels, out_channels, 1, norm=norm),
        )


def check_features(features: Sequence[int], *, minimum: int = 2, name: str = "features") -> tuple:
    """Validate a tuple of positive widths, one per resolution level."""
    feats = tuple(int(f) for f in features)
    if len(feats) < minimum or any(f < 1 for f in feats):
        msg = f"{name} must be at least {minimum} positive widths, one per level; got {features!r}"
        raise ValueError(msg)
    return feats


def bilinear_kernel_(conv: nn.Module) -> nn.Module:
    """Initialise a ``ConvTranspose`` as bi/trilinear interpolation (FCN's upsampling init)."""
    weight: torch.Tensor = conv.weight  # type: ignore[assignment]  # (in, out, *k)
    bias: torch.Tensor | None = conv.bias  # type: ignore[assignment]
    k = weight.shape[-1]
    factor = (k + 1) // 2
    center = factor - 1 if k % 2 == 1 else factor - 0.5
    og = torch.arange(k, dtype=torch.float32)
    filt1 = 1 - (og - center).abs() / factor
    filt = filt1
    for _ in range(weight.dim() - 3):
        filt = filt.unsqueeze(-1) * filt1
    with torch.no_grad():
        weight.zero_()
        for c in range(min(weight.shape[0], weight.shape[1])):
            weight[c, c] = filt
        if bias is not None:
            bias.zero_()
    return conv
