"""SegNet (Badrinarayanan, Kendall & Cipolla, TPAMI 2017)."""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import nn

from .blocks import ConvNormAct, conv_nd, max_pool_nd, max_unpool_nd


class SegNet(nn.Module):
    """Encoder-decoder that upsamples with the encoder's max-pooling indices.

    The encoder is VGG-16's 13 conv layers (2, 2, 3, 3, 3 per stage, batch norm + ReLU); each
    pooling stores the argmax location of every window.  The decoder mirrors it: max-unpooling
    puts each value back where its maximum came from (a sparse map, no learned upsampling and
    no feature maps carried across, only indices), then convolutions densify it.  The paper is
    2D; 3D (2x2x2 pooling, 3x3x3 convs) is our extension.
    """

    def __init__(self, spatial_dims: int, in_channels: int, out_channels: int, *,
                 width: int = 16, convs: Sequence[int] = (2, 2, 3, 3, 3),
                 norm: str = "batch") -> None:
        super().__init__()
        d = spatial_dims
        widths = [width * m for m in (1, 2, 4, 8, 8)][: len(convs)]
        self.size_multiple = 2 ** len(convs)
        self.pool = max_pool_nd(d, 2, return_indices=True)
        self.unpool = max_unpool_nd(d, 2)
        encoders, decoders = [], []
        cin = in_channels
        for cout, n in zip(widths, convs, strict=True):
            encoders.append(nn.Sequential(*(ConvNormAct(d, cin if k == 0 else cout, cout,
                                                        norm=norm) for k in range(n))))
            cin = cout
        for level in reversed(range(len(widths))):
            cout = widths[level - 1] if level > 0 else widths[0]
            n = convs[level]
            decoders.append(nn.Sequential(*(
                ConvNormAct(d, widths[level], widths[level] if k < n - 1 else cout, norm=norm)
                for k in range(n)
            )))
        self.encoders = nn.ModuleList(encoders)
        self.decoders = nn.ModuleList(decoders)
        self.head = conv_nd(d, widths[0], out_channels, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """``(B, C_in, *S)``, ``S`` divisible by ``size_multiple`` -> ``(B, C_out, *S)``."""
        indices: list[torch.Tensor] = []
        for encoder in self.encoders:
            x, idx = self.pool(encoder(x))
            indices.append(idx)
        for decoder in self.decoders:
            x = decoder(self.unpool(x, indices.pop()))
        return self.head(x)
