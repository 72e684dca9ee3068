"""V-Net (Milletari, Navab & Ahmadi, 3DV 2016)."""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import nn

from .blocks import conv_nd, conv_transpose_nd, norm_nd


def _conv_stage(d: int, channels: int, n: int, kernel: int, norm: str) -> nn.Sequential:
    layers: list[nn.Module] = []
    for _ in range(n):
        layers += [conv_nd(d, channels, channels, kernel, bias=norm == "none"),
                   norm_nd(norm, d, channels), nn.PReLU(channels)]
    return nn.Sequential(*layers)


class VNet(nn.Module):
    """Fully convolutional volumetric net with residual stages.

    What makes it V-Net: every stage (1, 2, 3, 3, 3 convs of 5x5x5 kernels) learns a residual
    function (stage input added to its output); down-sampling is a 2x2x2 stride-2 convolution
    doubling the channels (no pooling), up-sampling a 2x2x2 transposed convolution; PReLU
    non-linearities; fine-grained features forwarded from the left to the right part.  The
    Dice loss of the paper belongs to the training code.  Batch norm (``norm``) is our
    addition, as in common re-implementations; ``spatial_dims=2`` gives a 2D V-Net.

    ``convs`` counts the convs of each stage of the left (contracting) part, finest first (the
    first stage is the entry conv, always one); ``up_convs`` those of the right part's stages,
    finest first, one fewer (default ``convs[:-1]``: the paper's right part, 1, 2, 3, 3 from
    the finest, mirrors the left one).
    """

    def __init__(self, spatial_dims: int, in_channels: int, out_channels: int, *,
                 width: int = 8, convs: Sequence[int] = (1, 2, 3, 3, 3),
                 up_convs: Sequence[int] | None = None, kernel_size: int = 5,
                 norm: str = "batch") -> None:
        super().__init__()
        d = spatial_dims
        levels = len(convs)
        right = tuple(convs[:-1]) if up_convs is None else tuple(up_convs)
        if levels < 2 or len(right) != levels - 1 or min((*convs, *right)) < 0:
            msg = (f"convs needs a count per level (at least 2) and up_convs one fewer; got "
                   f"convs={tuple(convs)}, up_convs={up_convs}")
            raise ValueError(msg)
        widths = [width * 2**i for i in range(levels)]
        self.size_multiple = 2 ** (levels - 1)
        self.width = width
        self.entry = nn.Sequential(conv_nd(d, in_channels, width, kernel_size),
                                   norm_nd(norm, d, width))
        self.entry_act = nn.PReLU(width)
        self.down_stages = nn.ModuleList()
        self.downs = nn.ModuleList()
        for i in range(1, levels):
            self.downs.append(nn.Sequential(conv_nd(d, widths[i - 1], widths[i], 2, stride=2),
                                            norm_nd(norm, d, widths[i]), nn.PReLU(widths[i])))
            self.down_stages.append(_conv_stage(d, widths[i], convs[i], kernel_size, norm))
        self.ups = nn.ModuleList()
        self.up_stages = nn.ModuleList()
        for i in reversed(range(levels - 1)):
            coarse = widths[-1] if i == levels - 2 else 2 * widths[i + 1]
            self.ups.append(nn.Sequential(conv_transpose_nd(d, coarse, widths[i]),
                                          norm_nd(norm, d, widths[i]), nn.PReLU(widths[i])))
            self.up_stages.append(_conv_stage(d, 2 * widths[i], right[i], kernel_size, norm))
        self.head = conv_nd(d, 2 * widths[0], out_channels, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """``(B, C_in, *S)``, ``S`` divisible by ``size_multiple`` -> ``(B, C_out, *S)``."""
        repeat = [1, self.width // x.shape[1] + 1] + [1] * (x.dim() - 2)
        residual = x.repeat(repeat)[:, : self.width]
        x = self.entry_act(self.entry(x) + residual)
        skips = [x]
        for down, stage in zip(self.downs, self.down_stages, strict=True):
            x = down(x)
            x = stage(x) + x
            skips.append(x)
        skips.pop()
        for up, stage in zip(self.ups, self.up_stages, strict=True):
            x = up(x)
            x = torch.cat([x, skips.pop()], dim=1)
            x = stage(x) + x
        return self.head(x)
