"""Masked Dice + cross-entropy: the loss of sparse (partly labeled) training.

Every voxel carries a weight ``w >= 0``: 0 for unlabeled voxels (ignored entirely), 1 for
labeled ones, more for voxels a person edited.  Cross-entropy is the ``w``-weighted mean over
voxels; soft Dice counts each voxel's probability and one-hot target with weight ``w``, summed
over the whole batch (``batch=True`` in MONAI's terms, so a class absent from one patch does
not blow up) and averaged over classes.  With 0/1 weights and ``include_background=False``
the Dice term equals MONAI's ``MaskedDiceLoss(to_onehot_y=True, batch=True,
include_background=False)`` on softmax probabilities (tested; MONAI's masked target turns
unlabeled voxels into background, so its background term differs from ours by design).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn


class MaskedDiceCELoss(nn.Module):
    """``dice_weight * soft Dice loss + ce_weight * cross-entropy``, both voxel-weighted.

    ``forward(logits (B, K, *S), target (B, *S) int64, weight (B, *S) float)`` -> scalar.
    Unlabeled voxels (weight 0) may hold any target value.
    """

    def __init__(self, *, dice_weight: float = 1.0, ce_weight: float = 1.0,
                 smooth: float = 1e-5, include_background: bool = True) -> None:
        super().__init__()
        self.include_background = include_background
        self.dice_weight = dice_weight
        self.ce_weight = ce_weight
        self.smooth = smooth

    def forward(self, logits: torch.Tensor, target: torch.Tensor, weight: torch.Tensor
                ) -> torch.Tensor:
        n_classes = logits.shape[1]
        target = torch.where(weight > 0, target, torch.zeros_like(target)).clamp(0, n_classes - 1)
        total = weight.sum().clamp_min(1e-8)
        ce = (F.cross_entropy(logits, target, reduction="none") * weight).sum() / total
        probabilities = torch.softmax(logits, dim=1)
        one_hot = F.one_hot(target, n_classes).movedim(-1, 1).to(probabilities.dtype)
        w = weight.unsqueeze(1)
        dims = [0, *range(2, logits.ndim)]
        intersection = (probabilities * one_hot * w).sum(dims)
        denominator = ((probabilities + one_hot) * w).sum(dims)
        dice = 1.0 - (2.0 * intersection + self.smooth) / (denominator + self.smooth)
        if not self.include_background:
            dice = dice[1:]
        return self.dice_weight * dice.mean() + self.ce_weight * ce
