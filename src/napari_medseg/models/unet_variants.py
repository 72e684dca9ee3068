"""The U-Net variants of the review by Siddique et al. (IEEE Access 2021).

Each keeps the :class:`~.unet.UNet` skeleton and changes one thing: attention gates on the
skips, residual stages, dense stages, inception stages, or recurrent residual stages.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import nn

from .blocks import ConvNormAct, DoubleConv, conv_nd, max_pool_nd, norm_nd, resize
from .unet import UNet


class AttentionGate(nn.Module):
    """Additive attention gate (Oktay et al. 2018): ``skip * sigmoid(psi(relu(Wx x + Wg g)))``.

    As in the paper's grid attention, the skip is brought to the gating signal's coarser grid
    by a strided 2x conv, the coefficients are computed there and resampled to the skip's grid.
    """

    def __init__(self, spatial_dims: int, skip_channels: int, gating_channels: int) -> None:
        super().__init__()
        inter = max(skip_channels // 2, 1)
        self.theta_x = conv_nd(spatial_dims, skip_channels, inter, 2, stride=2, bias=False)
        self.phi_g = conv_nd(spatial_dims, gating_channels, inter, 1)
        self.psi = conv_nd(spatial_dims, inter, 1, 1)

    def forward(self, skip: torch.Tensor, gating: torch.Tensor) -> torch.Tensor:
        q = F.relu(self.theta_x(skip) + self.phi_g(gating))
        alpha = torch.sigmoid(self.psi(q))
        return skip * resize(alpha, skip.shape[2:])


class ResidualBlock(nn.Module):
    """Pre-activation residual unit (He 2016, as in ResUNet, Zhang 2018): x + F(x)."""

    def __init__(self, spatial_dims: int, cin: int, cout: int, *, norm: str = "batch") -> None:
        super().__init__()
        self.body = nn.Sequential(
            norm_nd(norm, spatial_dims, cin), nn.ReLU(),
            conv_nd(spatial_dims, cin, cout),
            norm_nd(norm, spatial_dims, cout), nn.ReLU(inplace=True),
            conv_nd(spatial_dims, cout, cout),
        )
        self.shortcut = nn.Identity() if cin == cout else conv_nd(spatial_dims, cin, cout, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.shortcut(x) + self.body(x)


class DenseBlock(nn.Module):
    """Dense block (Huang 2017): each layer sees the concatenation of all earlier outputs.

    ``layers`` BN-ReLU-conv3 layers of ``growth`` channels, then a 1x1 transition to ``cout``.
    """

    def __init__(self, spatial_dims: int, cin: int, cout: int, *, layers: int = 4,
                 norm: str = "batch") -> None:
        super().__init__()
        growth = max(cout // layers, 4)
        self.layers = nn.ModuleList(
            nn.Sequential(norm_nd(norm, spatial_dims, cin + i * growth), nn.ReLU(),
                          conv_nd(spatial_dims, cin + i * growth, growth))
            for i in range(layers)
        )
        self.transition = ConvNormAct(spatial_dims, cin + layers * growth, cout, 1, norm=norm)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        features = [x]
        for layer in self.layers:
            features.append(layer(torch.cat(features, dim=1)))
        return self.transition(torch.cat(features, dim=1))


class InceptionBlock(nn.Module):
    """Inception module (Szegedy 2015): parallel 1x1, 3x3, 5x5 and pool branches, concatenated.

    The 5x5 branch is two 3x3 convs (same receptive field, Inception v2), which keeps 3D cheap.
    """

    def __init__(self, spatial_dims: int, cin: int, cout: int, *, norm: str = "batch") -> None:
        super().__init__()
        b = max(cout // 4, 1)
        first = cout - 3 * b
        d = spatial_dims
        self.branch1 = ConvNormAct(d, cin, first, 1, norm=norm)
        self.branch3 = nn.Sequential(ConvNormAct(d, cin, b, 1, norm=norm),
                                     ConvNormAct(d, b, b, 3, norm=norm))
        self.branch5 = nn.Sequential(ConvNormAct(d, cin, b, 1, norm=norm),
                                     ConvNormAct(d, b, b, 3, norm=norm),
                                     ConvNormAct(d, b, b, 3, norm=norm))
        self.branch_pool = nn.Sequential(max_pool_nd(d, 3, stride=1, padding=1),
                                         ConvNormAct(d, cin, b, 1, norm=norm))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.cat(
            [self.branch1(x), self.branch3(x), self.branch5(x), self.branch_pool(x)], dim=1
        )


class RecurrentConv(nn.Module):
    """Recurrent conv layer (Liang 2015): ``h_t = f(conv(x + h_{t-1}))``, shared weights."""

    def __init__(self, spatial_dims: int, channels: int, *, steps: int = 2,
                 norm: str = "batch") -> None:
        super().__init__()
        self.steps = steps
        self.conv = ConvNormAct(spatial_dims, channels, channels, norm=norm)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = self.conv(x)
        for _ in range(self.steps):
            h = self.conv(x + h)
        return h


class RecurrentResidualBlock(nn.Module):
    """R2 unit (Alom et al. 2018): two recurrent conv layers inside a residual connection."""

    def __init__(self, spatial_dims: int, cin: int, cout: int, *, steps: int = 2,
                 norm: str = "batch") -> None:
        super().__init__()
        self.entry = conv_nd(spatial_dims, cin, cout, 1)
        self.body = nn.Sequential(RecurrentConv(spatial_dims, cout, steps=steps, norm=norm),
                                  RecurrentConv(spatial_dims, cout, steps=steps, norm=norm))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.entry(x)
        return x + self.body(x)


def build_attention_unet(spatial_dims: int, in_channels: int, out_channels: int, *,
                         features: Sequence[int] = (16, 32, 64, 128, 256),
                         norm: str = "batch", decoder_convs: int = 2) -> UNet:
    """Attention U-Net (Oktay et al., MIDL 2018): U-Net whose skips pass through additive
    attention gates driven by the coarser decoder features, suppressing irrelevant regions.

    ``decoder_convs``: convs of each decoder stage, 2 as in the paper's U-Net decoder; 1 gives
    the lighter decoder of MONAI's ``AttentionUnet`` (one conv after the concatenation).
    """
    if decoder_convs not in (1, 2):
        msg = f"decoder_convs must be 1 or 2, got {decoder_convs}"
        raise ValueError(msg)

    def block(cin: int, cout: int) -> nn.Module:
        return DoubleConv(spatial_dims, cin, cout, norm=norm)

    def decoder_block(cin: int, cout: int) -> nn.Module:
        if decoder_convs == 1:
            return ConvNormAct(spatial_dims, cin, cout, norm=norm)
        return block(cin, cout)

    feats = list(features)
    return UNet(spatial_dims, in_channels, out_channels, features=feats, block=block,
                decoder_block=decoder_block,
                gate=lambda skip, gating: AttentionGate(spatial_dims, skip, gating))


def build_residual_unet(spatial_dims: int, in_channels: int, out_channels: int, *,
                        features: Sequence[int] = (16, 32, 64, 128, 256),
                        norm: str = "batch") -> UNet:
    """Residual U-Net (ResUNet, Zhang et al. 2018): U-Net with pre-activation residual stages,
    easing optimisation of the deeper network."""
    return UNet(spatial_dims, in_channels, out_channels, features=features,
                block=lambda cin, cout: ResidualBlock(spatial_dims, cin, cout, norm=norm))


def build_dense_unet(spatial_dims: int, in_channels: int, out_channels: int, *,
                     features: Sequence[int] = (16, 32, 64, 128, 256), layers: int = 4,
                     norm: str = "batch") -> UNet:
    """Dense U-Net (e.g. Li et al. H-DenseUNet 2018, Cai 2020): U-Net whose stages are dense
    blocks, every layer reusing all earlier feature maps of its stage."""
    return UNet(spatial_dims, in_channels, out_channels, features=features,
                block=lambda cin, cout: DenseBlock(spatial_dims, cin, cout, layers=layers,
                                                   norm=norm))


def build_inception_unet(spatial_dims: int, in_channels: int, out_channels: int, *,
                         features: Sequence[int] = (16, 32, 64, 128, 256),
                         norm: str = "batch") -> UNet:
    """Inception U-Net (e.g. Punn & Agarwal 2020): U-Net whose stages run parallel 1x1, 3x3,
    5x5 and pooling branches, seeing several receptive fields at each level."""
    return UNet(spatial_dims, in_channels, out_channels, features=features,
                block=lambda cin, cout: InceptionBlock(spatial_dims, cin, cout, norm=norm))


def build_r2unet(spatial_dims: int, in_channels: int, out_channels: int, *,
                 features: Sequence[int] = (16, 32, 64, 128, 256), steps: int = 2,
                 norm: str = "batch") -> UNet:
    """R2U-Net (Alom et al. 2018): U-Net with recurrent residual conv units, accumulating
    features over ``steps`` recurrences with shared weights."""
    return UNet(spatial_dims, in_channels, out_channels, features=features,
                block=lambda cin, cout: RecurrentResidualBlock(spatial_dims, cin, cout,
                                                               steps=steps, norm=norm))

