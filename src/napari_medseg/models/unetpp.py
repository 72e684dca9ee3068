"""U-Net++ (Zhou et al., DLMIA 2018): nested dense skip pathways, deep supervision, pruning."""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import nn

from .blocks import DoubleConv, check_features, conv_nd, conv_transpose_nd, max_pool_nd


class UNetPlusPlus(nn.Module):
    """U-Net++: the skips become a grid of conv nodes ``X^{i,j}`` (level ``i``, column ``j``).

    ``X^{i,0}`` is the encoder; every other node convolves the concatenation of all earlier
    nodes of its level with the 2x up-convolved node below-left:
    ``X^{i,j} = H([X^{i,0}, ..., X^{i,j-1}, Up(X^{i+1,j-1})])``, which bridges the semantic gap
    between encoder and decoder features.  With ``deep_supervision`` a 1x1 head sits on every
    ``X^{0,j}``; :meth:`heads` returns all of them for the loss.  ``prune_level`` (1..depth)
    chooses which head ``forward`` returns and computes only the sub-network that head needs
    (the paper's pruning at inference: a smaller, faster net).  Pruning below the full depth
    needs ``deep_supervision=True``, since the shallower heads must have been trained.
    """

    def __init__(
        self,
        spatial_dims: int,
        in_channels: int,
        out_channels: int,
        *,
        features: Sequence[int] = (16, 32, 64, 128, 256),
        deep_supervision: bool = True,
        prune_level: int | None = None,
        norm: str = "batch",
    ) -> None:
        super().__init__()
        feats = check_features(features)
        self.depth = len(feats) - 1
        self.size_multiple = 2**self.depth
        self.deep_supervision = deep_supervision
        self.prune_level = self.depth if prune_level is None else int(prune_level)
        if not 1 <= self.prune_level <= self.depth:
            msg = f"prune_level must be between 1 and {self.depth}, got {prune_level}"
            raise ValueError(msg)
        if self.prune_level < self.depth and not deep_supervision:
            msg = "prune_level below the full depth needs deep_supervision=True (trained heads)"
            raise ValueError(msg)
        d = spatial_dims
        self.pool = max_pool_nd(d, 2)
        widths = [in_channels, *feats]
        self.encoders = nn.ModuleList(
            DoubleConv(d, widths[i], widths[i + 1], norm=norm) for i in range(len(feats))
        )
        self.ups = nn.ModuleDict()
        self.nodes = nn.ModuleDict()
        for j in range(1, self.depth + 1):
            for i in range(self.depth + 1 - j):
                self.ups[f"{i}_{j}"] = conv_transpose_nd(d, feats[i + 1], feats[i])
                self.nodes[f"{i}_{j}"] = DoubleConv(d, feats[i] * (j + 1), feats[i], norm=norm)
        columns = range(1, self.depth + 1) if deep_supervision else [self.depth]
        self.head_convs = nn.ModuleDict(
            {str(j): conv_nd(d, feats[0], out_channels, 1) for j in columns}
        )

    def _grid(self, x: torch.Tensor, depth: int) -> list[list[torch.Tensor]]:
        """Nodes ``grid[i][j]`` of the sub-network of the given depth."""
        grid: list[list[torch.Tensor]] = []
        for i in range(depth + 1):
            x = self.encoders[i](x if i == 0 else self.pool(x))
            grid.append([x])
        for j in range(1, depth + 1):
            for i in range(depth + 1 - j):
                up = self.ups[f"{i}_{j}"](grid[i + 1][j - 1])
                grid[i].append(self.nodes[f"{i}_{j}"](torch.cat([*grid[i], up], dim=1)))
        return grid

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Logits of the head at ``prune_level``: ``(B, C_out, *S)``."""
        grid = self._grid(x, self.prune_level)
        return self.head_convs[str(self.prune_level)](grid[0][self.prune_level])

    def heads(self, x: torch.Tensor) -> list[torch.Tensor]:
        """Logits of every head, shallowest first (deep supervision loss)."""
        grid = self._grid(x, self.depth)
        return [conv(grid[0][int(j)]) for j, conv in self.head_convs.items()]
