"""Adapters over MONAI networks, so they are reachable through the same registry.

Each adapter builds the MONAI network and declares the input-size multiple it needs (the
registry's :class:`~.padding.SizeAgnostic` pads to it).  Transformers with a fixed token grid
(UNETR) also tile inputs larger than their ``img_size``.  Weights trained with MONAI itself load
with :func:`~.checkpoint.import_state_dict` (the ``net.`` prefixes are matched for you).
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import nn


class MonaiAdapter(nn.Module):
    """A MONAI network returning one logits tensor, with its ``size_multiple``.

    MONAI's U-Net++ returns a list of heads: the last (deepest) one is returned.  With
    ``tile``, inputs of a multiple of ``tile`` are cut into non-overlapping tiles of exactly
    ``tile`` run as one batch (UNETR's position embedding fixes its input size); for overlap
    and blending use the inference engine's sliding window at patch size ``tile``.
    """

    def __init__(self, net: nn.Module, *, size_multiple: int, tile: int | None = None,
                 min_size: int = 1) -> None:
        super().__init__()
        self.net = net
        self.size_multiple = size_multiple
        self.min_size = min_size
        self.tile = tile

    def _run(self, x: torch.Tensor) -> torch.Tensor:
        y = self.net(x)
        if isinstance(y, (list, tuple)):
            y = y[-1]
        return y

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.tile is None or all(s == self.tile for s in x.shape[2:]):
            return self._run(x)
        b, c, *sizes = x.shape
        t, n = self.tile, len(sizes)
        counts = [s // t for s in sizes]
        split = [b, c] + [v for pair in zip(counts, [t] * n, strict=True) for v in pair]
        order = [0, *range(2, 2 + 2 * n, 2), 1, *range(3, 3 + 2 * n, 2)]
        tiles = x.reshape(split).permute(order).reshape(-1, c, *([t] * n))
        y = self._run(tiles)
        k = y.shape[1]
        y = y.reshape([b, *counts, k] + [t] * n)
        back = [0, n + 1] + [v for i in range(n) for v in (1 + i, n + 2 + i)]
        return y.permute(back).reshape(b, k, *sizes)


def build_segresnet(spatial_dims: int, in_channels: int, out_channels: int, *,
                    init_filters: int = 16, blocks_down: Sequence[int] = (1, 2, 2, 4),
                    blocks_up: Sequence[int] = (1, 1, 1)) -> MonaiAdapter:
    """SegResNet (Myronenko, BrainLes 2018), MONAI's: ResNet-like encoder with group norm,
    a light decoder (the paper's VAE branch is omitted)."""
    from monai.networks.nets import SegResNet

    net = SegResNet(spatial_dims=spatial_dims, init_filters=init_filters,
                    in_channels=in_channels, out_channels=out_channels,
                    blocks_down=tuple(blocks_down), blocks_up=tuple(blocks_up))
    return MonaiAdapter(net, size_multiple=2 ** (len(blocks_down) - 1))


def build_dynunet(spatial_dims: int, in_channels: int, out_channels: int, *,
                  filters: Sequence[int] = (16, 32, 64, 128, 256),
                  res_block: bool = False) -> MonaiAdapter:
    """DynUNet, MONAI's nnU-Net-style U-Net (Isensee 2021): instance norm, leaky ReLU, strided
    conv down-sampling, one 3x3(x3) kernel and stride 2 per level (no deep supervision here)."""
    from monai.networks.nets import DynUNet

    levels = len(filters)
    net = DynUNet(spatial_dims, in_channels, out_channels, kernel_size=[3] * levels,
                  strides=[1] + [2] * (levels - 1), upsample_kernel_size=[2] * (levels - 1),
                  filters=list(filters), res_block=res_block)
    # instance norm needs more than one voxel at the bottleneck, even in eval mode
    return MonaiAdapter(net, size_multiple=2 ** (levels - 1), min_size=2 ** levels)


def build_unetr(spatial_dims: int, in_channels: int, out_channels: int, *,
                img_size: int | None = None, feature_size: int = 16, hidden_size: int = 768,
                mlp_dim: int = 3072, num_heads: int = 12) -> MonaiAdapter:
    """UNETR (Hatamizadeh, WACV 2022), MONAI's: a ViT encoder on 16^d patches whose token maps
    at four depths feed a conv decoder.  The token grid fixes the input to ``img_size`` (default
    96 in 3D, 256 in 2D, divisible by 16): smaller inputs are padded, larger ones tiled."""
    from monai.networks.nets import UNETR

    size = img_size or (96 if spatial_dims == 3 else 256)
    if size % 16:
        msg = f"UNETR img_size must be divisible by 16 (its patch size), got {size}"
        raise ValueError(msg)
    net = UNETR(in_channels, out_channels, img_size=size, feature_size=feature_size,
                hidden_size=hidden_size, mlp_dim=mlp_dim, num_heads=num_heads,
                spatial_dims=spatial_dims)
    return MonaiAdapter(net, size_multiple=size, tile=size)


def build_swinunetr(spatial_dims: int, in_channels: int, out_channels: int, *,
                    feature_size: int = 24, depths: Sequence[int] = (2, 2, 2, 2),
                    num_heads: Sequence[int] = (3, 6, 12, 24),
                    window_size: int = 7) -> MonaiAdapter:
    """Swin UNETR (Hatamizadeh, BrainLes 2021), MONAI's: shifted-window transformer encoder at
    five scales with a conv decoder; ``feature_size`` must be divisible by 12."""
    from monai.networks.nets import SwinUNETR

    net = SwinUNETR(in_channels=in_channels, out_channels=out_channels,
                    feature_size=feature_size, depths=tuple(depths), num_heads=tuple(num_heads),
                    window_size=window_size, spatial_dims=spatial_dims)
    # instance norm at the 1/32 bottleneck needs more than one voxel there
    return MonaiAdapter(net, size_multiple=32, min_size=64)


def build_monai_basicunet(spatial_dims: int, in_channels: int, out_channels: int, *,
                          features: Sequence[int] = (32, 32, 64, 128, 256, 32),
                          norm: str = "instance") -> MonaiAdapter:
    """MONAI's BasicUNet (a U-Net, Ronneberger 2015), for side-by-side comparison with ours."""
    from monai.networks.nets import BasicUNet

    net = BasicUNet(spatial_dims=spatial_dims, in_channels=in_channels,
                    out_channels=out_channels, features=tuple(features), norm=norm)
    return MonaiAdapter(net, size_multiple=16, min_size=32)


def build_monai_basicunetplusplus(spatial_dims: int, in_channels: int, out_channels: int, *,
                                  features: Sequence[int] = (32, 32, 64, 128, 256, 32),
                                  norm: str = "instance") -> MonaiAdapter:
    """MONAI's BasicUNetPlusPlus (U-Net++, Zhou 2018) without pruning, for comparison."""
    from monai.networks.nets import BasicUNetPlusPlus

    net = BasicUNetPlusPlus(spatial_dims=spatial_dims, in_channels=in_channels,
                            out_channels=out_channels, features=tuple(features), norm=norm)
    return MonaiAdapter(net, size_multiple=16, min_size=32)


def build_monai_attentionunet(spatial_dims: int, in_channels: int, out_channels: int, *,
                              channels: Sequence[int] = (16, 32, 64, 128, 256)) -> MonaiAdapter:
    """MONAI's AttentionUnet (Oktay 2018), for side-by-side comparison with ours."""
    from monai.networks.nets import AttentionUnet

    net = AttentionUnet(spatial_dims, in_channels, out_channels, channels=tuple(channels),
                        strides=(2,) * (len(channels) - 1))
    return MonaiAdapter(net, size_multiple=2 ** (len(channels) - 1))
