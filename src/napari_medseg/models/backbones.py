"""Classification-style backbones written for 2D and 3D (no torchvision).

* :class:`VGGBackbone`: VGG-16's five conv stages (Simonyan & Zisserman 2015), used fully
  convolutionally by FCN and, with atrous conv5 and stride-1 pool4/pool5, by DeepLab v1.
* :class:`DilatedResNet`: a ResNet-18-like net (He 2016) whose last strides become dilations
  to reach an output stride of 8 or 16 (DeepLab v3/v3+, multi-grid on the last stage).
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import nn

from .blocks import ConvNormAct, conv_nd, max_pool_nd, norm_nd


class VGGBackbone(nn.Module):
    """Five stages of 3x3 conv + ReLU (2, 2, 3, 3, 3 convs), each followed by a max pool.

    ``forward`` returns the five pooled maps (strides up to 2, 4, 8, 16, 32 of the input).
    ``pool_strides`` / ``dilations`` per stage let DeepLab keep resolution with atrous convs.
    """

    def __init__(
        self,
        spatial_dims: int,
        in_channels: int,
        *,
        width: int = 16,
        convs: Sequence[int] = (2, 2, 3, 3, 3),
        pool_strides: Sequence[int] = (2, 2, 2, 2, 2),
        dilations: Sequence[int] = (1, 1, 1, 1, 1),
        pool_kernel: int = 2,
        norm: str = "none",
    ) -> None:
        super().__init__()
        self.widths = [width, 2 * width, 4 * width, 8 * width, 8 * width]
        stages = []
        cin = in_channels
        for cout, n, stride, dil in zip(self.widths, convs, pool_strides, dilations, strict=True):
            layers: list[nn.Module] = []
            for k in range(n):
                layers.append(ConvNormAct(spatial_dims, cin if k == 0 else cout, cout,
                                          dilation=dil, norm=norm))
            if stride > 1:
                layers.append(max_pool_nd(spatial_dims, pool_kernel, stride=stride,
                                          padding=(pool_kernel - 1) // 2))
            else:  # DeepLab: a 3x3 stride-1 pool keeps the grid
                layers.append(max_pool_nd(spatial_dims, 3, stride=1, padding=1))
            stages.append(nn.Sequential(*layers))
            cin = cout
        self.stages = nn.ModuleList(stages)

    def forward(self, x: torch.Tensor) -> list[torch.Tensor]:
        outputs: list[torch.Tensor] = []
        for stage in self.stages:
            x = stage(x)
            outputs.append(x)
        return outputs


class BasicBlock(nn.Module):
    """ResNet basic block: two 3x3 convs with batch norm and an identity (or 1x1) shortcut."""

    def __init__(self, spatial_dims: int, cin: int, cout: int, *, stride: int = 1,
                 dilation: int = 1, norm: str = "batch") -> None:
        super().__init__()
        self.conv1 = ConvNormAct(spatial_dims, cin, cout, stride=stride, dilation=dilation,
                                 norm=norm)
        self.conv2 = nn.Sequential(
            conv_nd(spatial_dims, cout, cout, dilation=dilation, bias=False),
            norm_nd(norm, spatial_dims, cout),
        )
        self.shortcut: nn.Module = nn.Identity()
        if stride != 1 or cin != cout:
            self.shortcut = nn.Sequential(
                conv_nd(spatial_dims, cin, cout, 1, stride=stride, bias=False),
                norm_nd(norm, spatial_dims, cout),
            )
        self.relu = nn.ReLU(inplace=True)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.relu(self.conv2(self.conv1(x)) + self.shortcut(x))


class DilatedResNet(nn.Module):
    """ResNet with atrous convolution: output stride 8 or 16 instead of 32.

    Stem: three 3x3 convs (the first strided) and a max pool (stride 4).  Stages of basic blocks
    with widths ``width * (1, 2, 4, 8)``; once the output stride is reached, further strides
    become dilations.  The last stage uses multi-grid rates ``rate * multi_grid[k]``.
    ``forward`` returns ``(low_level, high_level)``: stage-1 features (stride 4) and the last.
    """

    def __init__(
        self,
        spatial_dims: int,
        in_channels: int,
        *,
        width: int = 32,
        blocks: Sequence[int] = (2, 2, 2, 3),
        output_stride: int = 16,
        multi_grid: Sequence[int] = (1, 2, 4),
        norm: str = "batch",
    ) -> None:
        super().__init__()
        if output_stride not in (8, 16):
            msg = f"output_stride must be 8 or 16, got {output_stride}"
            raise ValueError(msg)
        d = spatial_dims
        self.stem = nn.Sequential(
            ConvNormAct(d, in_channels, width, stride=2, norm=norm),
            ConvNormAct(d, width, width, norm=norm),
            ConvNormAct(d, width, width, norm=norm),
            max_pool_nd(d, 3, stride=2, padding=1),
        )
        self.widths = [width * m for m in (1, 2, 4, 8)]
        stages = []
        stride_so_far, dilation = 4, 1
        cin = width
        for s, (cout, n) in enumerate(zip(self.widths, blocks, strict=True)):
            stride = 1 if s == 0 else 2
            if s > 0 and stride_so_far >= output_stride:
                dilation, stride = dilation * 2, 1
            stride_so_far *= stride
            layers = []
            for k in range(n):
                rate = dilation * (multi_grid[k % len(multi_grid)] if s == 3 else 1)
                layers.append(BasicBlock(d, cin if k == 0 else cout, cout,
                                         stride=stride if k == 0 else 1, dilation=rate,
                                         norm=norm))
            stages.append(nn.Sequential(*layers))
            cin = cout
        self.stages = nn.ModuleList(stages)

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        x = self.stem(x)
        low = x
        for i, stage in enumerate(self.stages):
            x = stage(x)
            if i == 0:
                low = x
        return low, x
