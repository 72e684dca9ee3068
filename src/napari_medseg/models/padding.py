"""Any input size in, the same size out: pad to the multiple a network needs, crop back.

Encoder-decoders halve the grid ``n`` times, so they need every spatial size divisible by
``2**n`` (segmentation_models_pytorch refuses anything not divisible by 32).  The registry
wraps every network in :class:`SizeAgnostic` instead, which pads symmetrically with zeros up to
the next multiple and crops the logits back, so users never meet such a rule.  Networks declare
what they need with an attribute ``size_multiple`` (an int, or one per spatial axis) and,
where normalisation needs more than one voxel at the bottleneck, ``min_size``.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn


def pad_amounts(shape: list[int], multiple: list[int], min_size: int = 1) -> list[int]:
    """``F.pad`` amounts (last axis first, ``[before, after]`` pairs): each size grows to at
    least ``min_size``, then to the next multiple."""
    pads: list[int] = []
    for size, m in zip(reversed(shape), reversed(multiple), strict=True):
        target = max(size, min_size)
        total = target + (m - target % m) % m - size
        pads += [total // 2, total - total // 2]
    return pads


class SizeAgnostic(nn.Module):
    """Wrap ``net`` so that ``(B, C_in, *S)`` gives ``(B, C_out, *S)`` for every size ``S``.

    The padded border is zeros (the intensity-normalised background of most scans).  The
    wrapped network is ``self.net``; its weights are saved with a ``net.`` prefix.
    """

    def __init__(self, net: nn.Module, spatial_dims: int) -> None:
        super().__init__()
        self.net = net
        self.spatial_dims = spatial_dims
        multiple = getattr(net, "size_multiple", 1)
        if isinstance(multiple, int):
            multiple = [multiple] * spatial_dims
        self.multiple: list[int] = [int(m) for m in multiple]
        self.min_size = int(getattr(net, "min_size", 1))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """``(B, C_in, *spatial)`` -> logits ``(B, C_out, *spatial)``."""
        shape = list(x.shape[2:])
        pads = pad_amounts(shape, self.multiple, self.min_size)
        if sum(pads) == 0:
            return self.net(x)
        y = self.net(F.pad(x, pads))
        return self.crop(y, pads, shape)

    def deep_supervision(self, x: torch.Tensor) -> list[torch.Tensor]:
        """Every supervised head of the network, each cropped to the input size.

        Only U-Net++ has several (its nested decoder outputs ``X^{0,j}``); for the other
        networks this is ``[forward(x)]``.  Training code weights them in the loss.
        """
        heads = getattr(self.net, "heads", None)
        if heads is None:
            return [self.forward(x)]
        shape = list(x.shape[2:])
        pads = pad_amounts(shape, self.multiple, self.min_size)
        return [self.crop(y, pads, shape) for y in heads(F.pad(x, pads))]

    @staticmethod
    def crop(y: torch.Tensor, pads: list[int], shape: list[int]) -> torch.Tensor:
        """Undo :func:`pad_amounts` on ``y`` whose spatial grid equals the padded input's."""
        n = len(shape)
        for axis in range(n):
            before = pads[2 * (n - 1 - axis)]
            y = y.narrow(2 + axis, before, shape[axis])
        return y
