"""Options that set a network's depth: V-Net's stage depths, Attention U-Net's decoder."""

from __future__ import annotations

import pytest
import torch

from napari_medseg.models import create_model


def test_vnet_stage_depths_of_both_parts() -> None:
    paper = create_model("vnet", spatial_dims=2, in_channels=1, out_channels=2, width=4)
    mirrored = create_model("vnet", spatial_dims=2, in_channels=1, out_channels=2, width=4,
                            up_convs=(1, 2, 3, 3))
    assert paper.state_dict().keys() == mirrored.state_dict().keys()
    lighter = create_model("vnet", spatial_dims=2, in_channels=1, out_channels=2, width=4,
                           convs=(1, 1, 2, 3, 2), up_convs=(1, 1, 2, 2))
    assert [len(s) // 3 for s in lighter.net.up_stages] == [2, 2, 1, 1]  # coarsest first
    assert lighter(torch.randn(1, 1, 20, 20)).shape == (1, 2, 20, 20)
    with pytest.raises(ValueError, match="up_convs"):
        create_model("vnet", spatial_dims=2, in_channels=1, out_channels=2, up_convs=(1, 2))


def test_attention_unet_one_conv_decoder() -> None:
    paper = create_model("attention-unet", spatial_dims=2, in_channels=1, out_channels=2,
                         features=(4, 8, 16))
    light = create_model("attention-unet", spatial_dims=2, in_channels=1, out_channels=2,
                         features=(4, 8, 16), decoder_convs=1)
    # one 3x3 conv (+ norm) fewer per decoder stage, the gates unchanged
    assert [len(d.block) for d in paper.net.decoders] == [2, 2]
    assert [len(d.block) for d in light.net.decoders] == [3, 3]  # conv, norm, act
    assert {k for k in light.state_dict() if ".gate." in k} == {
        k for k in paper.state_dict() if ".gate." in k}
    assert light(torch.randn(2, 1, 19, 23)).shape == (2, 2, 19, 23)
    with pytest.raises(ValueError, match="decoder_convs"):
        create_model("attention-unet", spatial_dims=2, in_channels=1, out_channels=2,
                     decoder_convs=3)
