"""FCN (Long, Shelhamer & Darrell, CVPR 2015): FCN-32s, FCN-16s and FCN-8s."""

from __future__ import annotations

import torch
from torch import nn
from torch.nn import ConvTranspose2d, ConvTranspose3d

from .backbones import VGGBackbone
from .blocks import bilinear_kernel_, conv_nd, resize


class FCN(nn.Module):
    """A VGG classifier made fully convolutional, with the skip architecture.

    The fully connected layers become convolutions (fc6: a 3x3 conv here instead of 7x7 on
    224-pixel crops, fc7: 1x1, with dropout), so the net outputs a coarse score map at stride
    32.  FCN-32s upsamples it directly; FCN-16s adds the scores of pool4 (stride 16) after a
    learned 2x up-convolution, FCN-8s also those of pool3 (stride 8): deep coarse semantics
    fused with shallow fine appearance.  As in the paper, the 2x up-convolutions are initialised
    to bilinear interpolation and learned, the final upsampling is fixed bilinear (trilinear in
    3D), and the pool3/pool4 score layers start at zero.  The paper is 2D; 3D is our extension.
    """

    def __init__(self, spatial_dims: int, in_channels: int, out_channels: int, *,
                 stride: int = 8, width: int = 16, fc_width: int | None = None,
                 norm: str = "none", dropout: float = 0.5) -> None:
        super().__init__()
        if stride not in (8, 16, 32):
            msg = f"FCN stride must be 8, 16 or 32, got {stride}"
            raise ValueError(msg)
        d = spatial_dims
        self.stride = stride
        self.size_multiple = 32
        self.backbone = VGGBackbone(d, in_channels, width=width, norm=norm)
        fc = fc_width or 16 * width
        drop = (nn.Dropout2d, nn.Dropout3d)[d - 2]
        self.fc = nn.Sequential(
            conv_nd(d, self.backbone.widths[4], fc, 3), nn.ReLU(inplace=True), drop(dropout),
            conv_nd(d, fc, fc, 1), nn.ReLU(inplace=True), drop(dropout),
        )
        self.score_fr = conv_nd(d, fc, out_channels, 1)
        transpose = (ConvTranspose2d, ConvTranspose3d)[d - 2]
        self.up2_fr = bilinear_kernel_(transpose(out_channels, out_channels, 4, stride=2,
                                                 padding=1, bias=False))
        self.score_pool4 = self._zero(conv_nd(d, self.backbone.widths[3], out_channels, 1))
        self.up2_pool4 = bilinear_kernel_(transpose(out_channels, out_channels, 4, stride=2,
                                                    padding=1, bias=False))
        self.score_pool3 = self._zero(conv_nd(d, self.backbone.widths[2], out_channels, 1))

    @staticmethod
    def _zero(conv: nn.Module) -> nn.Module:
        nn.init.zeros_(conv.weight)  # type: ignore[arg-type]
        nn.init.zeros_(conv.bias)  # type: ignore[arg-type]
        return conv

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """``(B, C_in, *S)``, ``S`` divisible by 32 -> ``(B, C_out, *S)``."""
        pools = self.backbone(x)
        score = self.score_fr(self.fc(pools[4]))
        if self.stride <= 16:
            score = self.up2_fr(score) + self.score_pool4(pools[3])
        if self.stride == 8:
            score = self.up2_pool4(score) + self.score_pool3(pools[2])
        return resize(score, x.shape[2:])


def build_fcn(stride: int):
    """Builder of FCN-``stride``s for the registry."""

    def build(spatial_dims: int, in_channels: int, out_channels: int, *, width: int = 16,
              fc_width: int | None = None, norm: str = "none", dropout: float = 0.5) -> FCN:
        return FCN(spatial_dims, in_channels, out_channels, stride=stride, width=width,
                   fc_width=fc_width, norm=norm, dropout=dropout)

    build.__doc__ = FCN.__doc__
    return build
