"""Mean-field CRF refinement (DeepLab v1 post-processing), 2D and 3D."""

from __future__ import annotations

import pytest
import torch

from napari_medseg.models import crf_refine


@pytest.mark.parametrize("dims", [2, 3])
def test_crf_cleans_noisy_probabilities_along_edges(dims: int) -> None:
    torch.manual_seed(0)
    size = [24] * dims if dims == 2 else [12] * dims
    truth = torch.zeros(size)
    truth[..., size[-1] // 2:] = 1  # two regions split by an intensity edge
    image = truth[None, None] + 0.02 * torch.randn(1, 1, *size)
    noisy = (truth + 0.45 * torch.randn(size)).clamp(0.05, 0.95)  # P(class 1), noisy
    probabilities = torch.stack([1 - noisy, noisy])[None]
    refined = crf_refine(image, probabilities, iterations=5)
    assert refined.shape == probabilities.shape
    assert torch.allclose(refined.sum(dim=1), torch.ones(1, *size), atol=1e-5)
    before = (probabilities.argmax(1)[0] != truth).float().mean()
    after = (refined.argmax(1)[0] != truth).float().mean()
    assert after < 0.5 * before


def test_crf_refuses_mismatched_shapes() -> None:
    with pytest.raises(ValueError, match="spatial sizes"):
        crf_refine(torch.zeros(1, 1, 8, 8), torch.full((1, 2, 8, 9), 0.5))
