"""DeepLab v1 (Chen 2015), v3 (Chen 2017) and v3+ (Chen 2018), without torchvision."""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import nn

from .backbones import DilatedResNet, VGGBackbone
from .blocks import ConvNormAct, SeparableConv, conv_nd, global_avg_pool_nd, resize
from .crf import crf_refine


class DeepLabV1(nn.Module):
    """DeepLab-LargeFOV: atrous VGG-16 and an optional fully connected CRF.

    Atrous ("hole") convolution keeps a dense score map: pool4 and pool5 have stride 1, conv5
    has dilation 2 and fc6 is a 3x3 conv with dilation 12 (large field of view), so the output
    stride is 8; the scores are upsampled bilinearly.  The paper refines them with a fully
    connected CRF as post-processing; ``crf=True`` runs :func:`.crf.crf_refine` (our efficient
    mean-field approximation, see there) in eval mode only, on the input's first channel, and
    returns log-probabilities.  Training stays a plain differentiable net, as in the paper.
    The paper is 2D; 3D is our extension.
    """

    def __init__(self, spatial_dims: int, in_channels: int, out_channels: int, *,
                 width: int = 16, fc_width: int | None = None, dilation: int = 12,
                 dropout: float = 0.5, norm: str = "none", crf: bool = False,
                 crf_iterations: int = 5) -> None:
        super().__init__()
        d = spatial_dims
        self.size_multiple = 8
        self.crf = crf
        self.crf_iterations = crf_iterations
        self.backbone = VGGBackbone(d, in_channels, width=width, pool_kernel=3, norm=norm,
                                    pool_strides=(2, 2, 2, 1, 1), dilations=(1, 1, 1, 1, 2))
        fc = fc_width or 16 * width
        drop = (nn.Dropout2d, nn.Dropout3d)[d - 2]
        self.head = nn.Sequential(
            conv_nd(d, self.backbone.widths[4], fc, 3, dilation=dilation), nn.ReLU(inplace=True),
            drop(dropout),
            conv_nd(d, fc, fc, 1), nn.ReLU(inplace=True), drop(dropout),
            conv_nd(d, fc, out_channels, 1),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        logits = resize(self.head(self.backbone(x)[-1]), x.shape[2:])
        if self.crf and not self.training:
            q = crf_refine(x[:, :1], torch.softmax(logits, dim=1),
                           iterations=self.crf_iterations)
            return torch.log(q.clamp_min(1e-8))
        return logits


class ASPP(nn.Module):
    """Atrous spatial pyramid pooling with image-level features (DeepLab v3).

    Parallel 1x1 conv, three 3x3 atrous convs (``rates``) and global average pooling (1x1 conv,
    broadcast back; no norm there so batch 1 trains), concatenated and fused by a 1x1 conv.
    ``separable`` uses depthwise separable atrous convs (DeepLab v3+).
    """

    def __init__(self, spatial_dims: int, cin: int, cout: int, *, rates: Sequence[int],
                 separable: bool = False, norm: str = "batch") -> None:
        super().__init__()
        d = spatial_dims
        branches: list[nn.Module] = [ConvNormAct(d, cin, cout, 1, norm=norm)]
        for rate in rates:
            if separable:
                branches.append(SeparableConv(d, cin, cout, dilation=rate, norm=norm))
            else:
                branches.append(ConvNormAct(d, cin, cout, dilation=rate, norm=norm))
        self.branches = nn.ModuleList(branches)
        self.image_pool = nn.Sequential(global_avg_pool_nd(d), conv_nd(d, cin, cout, 1),
                                        nn.ReLU(inplace=True))
        self.project = ConvNormAct(d, cout * (len(rates) + 2), cout, 1, norm=norm)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        outs = [branch(x) for branch in self.branches]
        outs.append(self.image_pool(x).expand_as(outs[0]))
        return self.project(torch.cat(outs, dim=1))


def aspp_rates(atrous_rates: Sequence[int] | None, output_stride: int) -> tuple[int, ...]:
    """ASPP dilation rates: the paper's (6, 12, 18) at output stride 16, doubled at 8."""
    rates = tuple(atrous_rates or (6, 12, 18))
    if atrous_rates is None and output_stride == 8:
        rates = tuple(2 * r for r in rates)
    return rates


class DeepLabV3(nn.Module):
    """DeepLab v3: dilated ResNet (output stride 8 or 16, multi-grid) + ASPP, bilinear output.

    Atrous rates are (6, 12, 18) at output stride 16 and doubled at 8, as in the paper.  The
    paper is 2D; 3D is our extension (consider smaller ``atrous_rates`` for small patches).
    """

    def __init__(self, spatial_dims: int, in_channels: int, out_channels: int, *,
                 width: int = 32, output_stride: int = 16, aspp_channels: int = 128,
                 atrous_rates: Sequence[int] | None = None, norm: str = "batch") -> None:
        super().__init__()
        d = spatial_dims
        self.size_multiple = output_stride
        rates = aspp_rates(atrous_rates, output_stride)
        self.backbone = DilatedResNet(d, in_channels, width=width, output_stride=output_stride,
                                      norm=norm)
        self.aspp = ASPP(d, self.backbone.widths[-1], aspp_channels, rates=rates, norm=norm)
        self.classifier = conv_nd(d, aspp_channels, out_channels, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        _, high = self.backbone(x)
        return resize(self.classifier(self.aspp(high)), x.shape[2:])


class DeepLabV3Plus(nn.Module):
    """DeepLab v3+: v3 as encoder plus a decoder that recovers boundaries.

    The ASPP output (stride 16) is upsampled 4x, concatenated with 1x1-reduced low-level
    features (stride 4), refined by two 3x3 depthwise separable convs and upsampled 4x.  ASPP
    and decoder use depthwise separable convolutions; the backbone is our dilated ResNet, not
    the paper's aligned Xception.  The paper is 2D; 3D is our extension.
    """

    def __init__(self, spatial_dims: int, in_channels: int, out_channels: int, *,
                 width: int = 32, output_stride: int = 16, aspp_channels: int = 128,
                 low_level_channels: int = 32, atrous_rates: Sequence[int] | None = None,
                 norm: str = "batch") -> None:
        super().__init__()
        d = spatial_dims
        self.size_multiple = output_stride
        rates = aspp_rates(atrous_rates, output_stride)
        self.backbone = DilatedResNet(d, in_channels, width=width, output_stride=output_stride,
                                      norm=norm)
        self.aspp = ASPP(d, self.backbone.widths[-1], aspp_channels, rates=rates,
                         separable=True, norm=norm)
        self.reduce = ConvNormAct(d, self.backbone.widths[0], low_level_channels, 1, norm=norm)
        self.decoder = nn.Sequential(
            SeparableConv(d, aspp_channels + low_level_channels, aspp_channels, norm=norm),
            SeparableConv(d, aspp_channels, aspp_channels, norm=norm),
        )
        self.classifier = conv_nd(d, aspp_channels, out_channels, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        low, high = self.backbone(x)
        y = resize(self.aspp(high), low.shape[2:])
        y = self.decoder(torch.cat([y, self.reduce(low)], dim=1))
        return resize(self.classifier(y), x.shape[2:])
