"""Random augmentation of a batch of patches, on torch tensors (CPU or GPU).

Spatial transforms (flips, 90-degree rotations, a small affine and an elastic deformation,
the last two in one ``grid_sample``) move the image, the target and the weight together; the
weight is resampled with zero padding, so voxels pulled in from outside the patch are
unlabeled.  The target uses nearest-neighbour sampling.  Intensity changes touch the image
only.  Shapes: ``image (B, C, *S)``, ``target (B, *S)``, ``weight (B, *S)``, ``S`` 2D or 3D.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F

from napari_medseg.training.options import AugmentOptions


def _rotation(dims: int, max_deg: float, generator: torch.Generator,
              in_plane: int | None = None) -> torch.Tensor:
    """A random rotation in ``affine_grid``'s coordinates (x, y, z = array axes reversed);
    ``in_plane``: only about that array axis."""
    def angle() -> float:
        return math.radians(max_deg) * (2 * float(torch.rand((), generator=generator)) - 1)

    def plane(i: int, j: int, a: float) -> torch.Tensor:
        r = torch.eye(dims)
        r[i, i], r[i, j], r[j, i], r[j, j] = math.cos(a), -math.sin(a), math.sin(a), math.cos(a)
        return r

    if dims == 2:
        return plane(0, 1, angle())
    if in_plane is not None:
        i, j = (k for k in range(3) if k != 2 - in_plane)
        return plane(i, j, angle())
    return plane(0, 1, angle()) @ plane(0, 2, angle()) @ plane(1, 2, angle())


def _warp(image: torch.Tensor, target: torch.Tensor, weight: torch.Tensor,
          options: AugmentOptions, generator: torch.Generator, *, affine: bool, elastic: bool
          ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """One ``grid_sample`` applying a small affine and/or elastic displacement (one sample)."""
    dims = image.ndim - 2
    spatial = image.shape[2:]
    matrix = torch.eye(dims)
    in_plane = options.in_plane if dims == 3 else None
    if affine:
        scale = 1 + options.scale * (2 * float(torch.rand((), generator=generator)) - 1)
        matrix = _rotation(dims, options.rotation_deg, generator, in_plane) * scale
        if in_plane is not None:  # nothing moves across slices
            across = 2 - in_plane
            matrix[across, :] = 0.0
            matrix[:, across] = 0.0
            matrix[across, across] = 1.0
    theta = torch.zeros(1, dims, dims + 1)
    theta[0, :, :dims] = matrix
    grid = F.affine_grid(theta, [1, 1, *spatial], align_corners=False).to(image.device)
    if elastic:
        coarse = torch.randn(1, dims, *([options.elastic_grid] * dims), generator=generator)
        mode = "trilinear" if dims == 3 else "bilinear"
        field = F.interpolate(coarse, size=tuple(spatial), mode=mode, align_corners=True)
        field = field * (2 * options.elastic_magnitude)
        if in_plane is not None:
            field[:, 2 - in_plane] = 0.0
        grid = grid + field.to(image.device).movedim(1, -1)
    image = F.grid_sample(image, grid, mode="bilinear", padding_mode="border",
                          align_corners=False)
    target = F.grid_sample(target[:, None].float(), grid, mode="nearest",
                           align_corners=False)[:, 0].round().long()
    weight = F.grid_sample(weight[:, None], grid, mode="nearest", padding_mode="zeros",
                           align_corners=False)[:, 0]
    return image, target, weight


def augment(image: torch.Tensor, target: torch.Tensor, weight: torch.Tensor,
            options: AugmentOptions, generator: torch.Generator
            ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Augment each sample of the batch independently; returns new tensors."""
    out_i, out_t, out_w = [], [], []
    dims = image.ndim - 2

    def chance(p: float) -> bool:
        return p > 0 and float(torch.rand((), generator=generator)) < p

    for b in range(image.shape[0]):
        x, y, w = image[b : b + 1], target[b : b + 1], weight[b : b + 1]
        if options.flip:
            allowed = range(dims) if options.flip_axes is None else options.flip_axes
            axes = [2 + a for a in allowed if a < dims and chance(0.5)]
            if axes:
                x, y, w = x.flip(axes), y.flip([a - 1 for a in axes]), w.flip([a - 1 for a in axes])
        if options.rotate90 and x.shape[-1] == x.shape[-2]:
            k = int(torch.randint(4, (1,), generator=generator))
            x, y, w = (x.rot90(k, (-2, -1)), y.rot90(k, (-2, -1)), w.rot90(k, (-2, -1)))
        affine = chance(options.affine_probability)
        elastic = chance(options.elastic_probability)
        if affine or elastic:
            x, y, w = _warp(x, y, w, options, generator, affine=affine, elastic=elastic)
        if chance(options.intensity_probability):
            r = torch.rand(4, generator=generator) * 2 - 1
            x = x * (1 + 0.1 * float(r[0])) + 0.1 * float(r[1])
            gamma = math.exp(0.3 * float(r[2]))
            lo, hi = x.amin(), x.amax()
            span = (hi - lo).clamp_min(1e-6)
            x = ((x - lo) / span).clamp_min(0) ** gamma * span + lo
            noise = torch.randn(x.shape, generator=generator).to(x.device)
            x = x + 0.02 * noise
        out_i.append(x)
        out_t.append(y)
        out_w.append(w)
    return torch.cat(out_i), torch.cat(out_t), torch.cat(out_w)
