"""U-Net (Ronneberger 2015) and 3D U-Net (Cicek 2016), on one encoder-decoder skeleton.

:class:`UNet` is the skeleton the U-Net variants of :mod:`.unet_variants` also build on: a
contracting path of stages separated by 2x max pooling, an expanding path of 2x transposed
convolutions each followed by concatenation with the skip of the same level and a stage, and a
1x1 convolution to the class logits.  What a variant changes is the stage (``block``) and what
happens to a skip before it is concatenated (``gate``).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import torch
from torch import nn

from .blocks import DoubleConv, check_features, conv_nd, conv_transpose_nd, max_pool_nd

#: ``(in_channels, out_channels) -> stage``
BlockFactory = Callable[[int, int], nn.Module]
#: ``(skip_channels, gating_channels) -> gate`` whose ``forward(skip, gating)`` returns a skip
GateFactory = Callable[[int, int], nn.Module]


class PassSkip(nn.Module):
    """The plain U-Net skip: the encoder features go to the decoder unchanged."""

    def forward(self, skip: torch.Tensor, gating: torch.Tensor) -> torch.Tensor:
        return skip


class UpStage(nn.Module):
    """Upsample 2x, gate the skip, concatenate ``[skip, up]``, run a stage."""

    def __init__(self, up: nn.Module, gate: nn.Module, block: nn.Module) -> None:
        super().__init__()
        self.up = up
        self.gate = gate
        self.block = block

    def forward(self, x: torch.Tensor, skip: torch.Tensor) -> torch.Tensor:
        skip = self.gate(skip, x)
        return self.block(torch.cat([skip, self.up(x)], dim=1))


class UNet(nn.Module):
    """Encoder-decoder with concatenated skips, ``len(features) - 1`` poolings.

    Args:
        features: output width of each level, finest first (the last is the bottleneck).
        block: stage factory for the encoder; ``decoder_block`` for the decoder (default same).
        gate: skip gate factory (attention gates); default passes skips unchanged.
        up_keeps_channels: the transposed conv keeps the width of the coarser level (Cicek)
            instead of halving it to the finer level's width (Ronneberger).
    """

    def __init__(
        self,
        spatial_dims: int,
        in_channels: int,
        out_channels: int,
        *,
        features: Sequence[int],
        block: BlockFactory,
        decoder_block: BlockFactory | None = None,
        gate: GateFactory | None = None,
        up_keeps_channels: bool = False,
    ) -> None:
        super().__init__()
        feats = check_features(features)
        decoder_block = decoder_block or block
        self.size_multiple = 2 ** (len(feats) - 1)
        self.pool = max_pool_nd(spatial_dims, 2)
        widths = [in_channels, *feats]
        self.encoders = nn.ModuleList(block(widths[i], widths[i + 1]) for i in range(len(feats)))
        stages = []
        for level in reversed(range(len(feats) - 1)):
            coarse, fine = feats[level + 1], feats[level]
            up_width = coarse if up_keeps_channels else fine
            stages.append(
                UpStage(
                    conv_transpose_nd(spatial_dims, coarse, up_width),
                    gate(fine, coarse) if gate is not None else PassSkip(),
                    decoder_block(fine + up_width, fine),
                )
            )
        self.decoders = nn.ModuleList(stages)
        self.head = conv_nd(spatial_dims, feats[0], out_channels, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """``(B, C_in, *S)`` with ``S`` divisible by ``size_multiple`` -> ``(B, C_out, *S)``."""
        skips: list[torch.Tensor] = []
        for i, encoder in enumerate(self.encoders):
            if i > 0:
                skips.append(x)
                x = self.pool(x)
            x = encoder(x)
        for decoder in self.decoders:
            x = decoder(x, skips.pop())
        return self.head(x)


def build_unet(
    spatial_dims: int,
    in_channels: int,
    out_channels: int,
    *,
    features: Sequence[int] = (16, 32, 64, 128, 256),
    norm: str = "batch",
) -> UNet:
    """U-Net (Ronneberger et al., MICCAI 2015).

    Contracting path of two-conv stages and 2x max pooling, expanding path of 2x up-convolutions
    whose output is concatenated with the cropped features of the same level (here "same"
    padding, so no cropping), then two convs.  We add batch norm (``norm="none"`` for the
    paper's plain convs).  The paper is 2D; 3D is the same net with 3x3x3 convs.
    """

    def block(cin: int, cout: int) -> nn.Module:
        return DoubleConv(spatial_dims, cin, cout, norm=norm)

    return UNet(spatial_dims, in_channels, out_channels, features=features, block=block)


def build_unet_3d(
    spatial_dims: int,
    in_channels: int,
    out_channels: int,
    *,
    features: Sequence[int] = (32, 64, 128, 256),
    norm: str = "batch",
) -> UNet:
    """3D U-Net (Cicek et al., MICCAI 2016).

    The volumetric U-Net: 3x3x3 convs, batch norm before each ReLU, three 2x2x2 poolings,
    and channels doubled *before* each max pooling (the first conv of a stage outputs half the
    stage's width) to avoid bottlenecks; the up-convolution keeps the coarse width.  Learning
    from sparse annotations is a loss matter (weight 0 on unlabelled voxels) for the training
    code.  ``spatial_dims=2`` gives the same design in 2D.
    """

    def block(cin: int, cout: int) -> nn.Module:
        return DoubleConv(spatial_dims, cin, cout, mid_channels=max(cout // 2, 1), norm=norm)

    def decoder_block(cin: int, cout: int) -> nn.Module:
        return DoubleConv(spatial_dims, cin, cout, norm=norm)

    return UNet(spatial_dims, in_channels, out_channels, features=features, block=block,
                decoder_block=decoder_block, up_keeps_channels=True)
