"""Dense CRF refinement for DeepLab v1: an efficient mean-field approximation in plain torch.

DeepLab v1 refines its scores with the fully connected CRF of Krähenbühl & Koltun (2011):
unaries ``-log P`` and Potts pairwise terms weighted by an appearance kernel
``w1 exp(-|p_i - p_j|^2 / 2 theta_alpha^2 - |I_i - I_j|^2 / 2 theta_beta^2)`` and a smoothness
kernel ``w2 exp(-|p_i - p_j|^2 / 2 theta_gamma^2)``, solved by mean-field iterations.

Our approximation (documented, 2D and 3D, differentiable, no compiled extension):

* the smoothness message is an exact separable Gaussian filter of ``Q``;
* the appearance (bilateral) message is summed over a local window of ``(2 radius + 1)^d``
  neighbours sampled every ``step`` voxels (a dilated window reaching ``radius * step`` voxels)
  instead of over all voxels via the permutohedral lattice.  Beyond about
  ``2 theta_alpha`` the spatial factor is negligible anyway, so for ``radius * step`` of that
  order the result is close to the fully connected one;
* Potts compatibility, so one update is ``Q <- softmax(log P + w1 A(Q) + w2 G(Q))``.

Distances are in voxels (scale ``theta_*`` by spacing yourself for anisotropic scans);
intensities in the units of ``image`` (use the normalised image the network saw).
"""

from __future__ import annotations

import itertools
import math

import torch
import torch.nn.functional as F


def _gaussian_filter(q: torch.Tensor, sigma: float) -> torch.Tensor:
    """Separable Gaussian blur of ``(B, C, *S)`` along every spatial axis, zero padded."""
    radius = max(1, math.ceil(3 * sigma))
    t = torch.arange(-radius, radius + 1, dtype=q.dtype, device=q.device)
    kernel = torch.exp(-(t**2) / (2 * sigma**2))
    kernel = kernel / kernel.sum()
    n = q.dim() - 2
    channels = q.shape[1]
    conv = F.conv2d if n == 2 else F.conv3d
    for axis in range(n):
        shape = [1, 1] + [1] * n
        shape[2 + axis] = kernel.numel()
        weight = kernel.reshape(shape).expand(channels, *shape[1:])
        padding = [0] * n
        padding[axis] = radius
        q = conv(q, weight, padding=padding, groups=channels)
    return q


def _shift(x: torch.Tensor, offset: tuple[int, ...], pad: int) -> torch.Tensor:
    """``x`` shifted by ``offset`` voxels (``x_padded[p + offset]``), with a replicated border."""
    n = x.dim() - 2
    padded = F.pad(x, [pad] * (2 * n), mode="replicate")
    for axis, o in enumerate(offset):
        padded = padded.narrow(2 + axis, pad + o, x.shape[2 + axis])
    return padded


def crf_refine(
    image: torch.Tensor,
    probabilities: torch.Tensor,
    *,
    iterations: int = 5,
    appearance_weight: float = 4.0,
    theta_alpha: float = 3.0,
    theta_beta: float = 0.1,
    smoothness_weight: float = 3.0,
    theta_gamma: float = 1.0,
    radius: int = 2,
    step: int = 2,
) -> torch.Tensor:
    """Refine class probabilities with mean-field inference on a dense CRF (approximation).

    Args:
        image: ``(B, C_img, *S)`` intensities (normalised), ``S`` = ``(Y, X)`` or ``(Z, Y, X)``.
        probabilities: ``(B, K, *S)`` softmax output of the network.
        iterations: mean-field updates.
        appearance_weight, theta_alpha, theta_beta: bilateral kernel (voxels, intensity units).
        smoothness_weight, theta_gamma: Gaussian smoothness kernel (voxels).
        radius, step: the bilateral window, ``2 * radius + 1`` samples per axis every ``step``.

    Returns:
        ``(B, K, *S)`` refined probabilities (sum to 1 over ``K``).
    """
    if image.shape[0] != probabilities.shape[0] or image.shape[2:] != probabilities.shape[2:]:
        msg = (f"image {tuple(image.shape)} and probabilities {tuple(probabilities.shape)} "
               "must share batch and spatial sizes")
        raise ValueError(msg)
    n = probabilities.dim() - 2
    image = image.to(probabilities.dtype)
    unary = torch.log(probabilities.clamp_min(1e-8))
    offsets = [tuple(step * o for o in off)
               for off in itertools.product(range(-radius, radius + 1), repeat=n) if any(off)]
    pad = radius * step
    weights = []
    for off in offsets:
        spatial = sum(o * o for o in off) / (2 * theta_alpha**2)
        diff = ((image - _shift(image, off, pad)) ** 2).sum(dim=1, keepdim=True)
        weights.append(torch.exp(-spatial - diff / (2 * theta_beta**2)))
    q = probabilities
    for _ in range(iterations):
        appearance = torch.zeros_like(q)
        for off, w in zip(offsets, weights, strict=True):
            appearance = appearance + w * _shift(q, off, pad)
        smooth = _gaussian_filter(q, theta_gamma) - q * _center_weight(theta_gamma, n)
        q = torch.softmax(unary + appearance_weight * appearance + smoothness_weight * smooth,
                          dim=1)
    return q


def _center_weight(sigma: float, n: int) -> float:
    """Weight the normalised Gaussian filter gives a voxel itself (excluded: no self-message)."""
    radius = max(1, math.ceil(3 * sigma))
    t = torch.arange(-radius, radius + 1, dtype=torch.float64)
    k = torch.exp(-(t**2) / (2 * sigma**2))
    return float((1 / k.sum()) ** n)
