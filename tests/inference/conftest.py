"""Small models and specs for inference tests (tiny widths: CI has 2 cores)."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from napari_medseg.models import CheckpointSpec, IntensityContract, create_model

CT_WINDOW = IntensityContract(modality="CT", normalization="ct_window", window=(-160, 240))


class Pointwise(nn.Module):
    """A 1x1(x1) convolution: its output at a voxel depends on that voxel alone, so tiled and
    whole-volume inference must agree exactly (up to float rounding)."""

    def __init__(self, spatial_dims: int, in_channels: int = 1, shift: float = 0.0) -> None:
        super().__init__()
        conv = nn.Conv3d if spatial_dims == 3 else nn.Conv2d
        self.conv = conv(in_channels, 3, 1)
        # three classes over the [0, 1] window: low (x < ~0.4), middle, high (x > ~0.6)
        with torch.no_grad():
            self.conv.weight.zero_()
            for k, slope in enumerate((-8.0, 0.0, 8.0)):
                self.conv.weight[k, :] = slope / in_channels
            self.conv.bias.copy_(torch.tensor([3.0, 0.0, -5.0]) + shift * torch.tensor([-1, 0, 1]))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.conv(x)


def spec_for(dims: int, *, in_channels: int = 1, out_channels: int = 3, **kwargs) -> CheckpointSpec:
    return CheckpointSpec(
        architecture="unet",
        spatial_dims=dims,
        in_channels=in_channels,
        out_channels=out_channels,
        options={"features": [4, 8, 16]},
        intensity=[CT_WINDOW] * (kwargs.pop("n_contracts", in_channels)),
        **kwargs,
    )


@pytest.fixture
def tiny_unet_3d():
    torch.manual_seed(0)
    model = create_model("unet", spatial_dims=3, in_channels=1, out_channels=3, features=(4, 8, 16))
    return model, spec_for(3, patch_size=(16, 32, 32))


@pytest.fixture(scope="session")
def ct_scan(shared_data):
    from napari_medseg.io import read_scan

    return read_scan(shared_data / "ct_abdomen" / "example_ct_sm.nii.gz")
