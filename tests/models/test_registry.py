"""The registry: names, errors that list what is valid, metadata, size handling."""

from __future__ import annotations

import pytest
import torch

from napari_medseg.models import available_models, count_parameters, create_model, model_names
from napari_medseg.models.padding import pad_amounts
from napari_medseg.models.unetpp import UNetPlusPlus

SEED_NAMES = {
    "fcn-32s", "fcn-16s", "fcn-8s", "segnet", "unet", "unet++", "unet-3d", "vnet",
    "attention-unet", "residual-unet", "dense-unet", "inception-unet", "r2unet", "deeplab-v1",
    "deeplab-v3", "deeplab-v3plus", "monai-segresnet", "monai-dynunet", "monai-unetr",
    "monai-swinunetr",
}


def test_every_seed_network_is_registered() -> None:
    assert set(model_names()) >= SEED_NAMES


def test_unknown_name_lists_valid_names() -> None:
    with pytest.raises(KeyError, match="valid names") as info:
        create_model("unet4", spatial_dims=2, in_channels=1, out_channels=2)
    assert "unet++" in str(info.value)
    assert "deeplab-v3plus" in str(info.value)


def test_unknown_option_lists_valid_options() -> None:
    with pytest.raises(TypeError, match="valid options: features"):
        create_model("unet", spatial_dims=2, in_channels=1, out_channels=2, width=3)


@pytest.mark.parametrize(("kwargs", "match"), [
    ({"spatial_dims": 4, "in_channels": 1, "out_channels": 2}, "spatial_dims"),
    ({"spatial_dims": 2, "in_channels": 0, "out_channels": 2}, "in_channels"),
    ({"spatial_dims": 2, "in_channels": 1, "out_channels": 2.5}, "out_channels"),
])
def test_bad_arguments_are_refused(kwargs: dict, match: str) -> None:
    with pytest.raises(ValueError, match=match):
        create_model("unet", **kwargs)


def test_available_models_metadata() -> None:
    infos = {info.name: info for info in available_models()}
    assert list(infos) == model_names()
    for info in infos.values():
        assert info.dims == (2, 3)
        assert info.paper
        assert info.params[2] > 0
        assert info.params[3] > info.params[2]
        assert len(info.patch_size_2d) == 2
        assert len(info.patch_size_3d) == 3
        assert info.implementation in ("ours", "monai")
    assert infos["unet"].default_options["features"] == (16, 32, 64, 128, 256)
    assert infos["unet-3d"].extension_3d is False
    assert infos["segnet"].extension_3d is True


def test_parameter_count_on_meta_matches_real_model() -> None:
    model = create_model("unet", spatial_dims=3, in_channels=2, out_channels=3,
                         features=(4, 8, 16))
    assert count_parameters("unet", spatial_dims=3, in_channels=2, out_channels=3,
                            features=(4, 8, 16)) == sum(p.numel() for p in model.parameters())


def test_pad_amounts_symmetric_and_minimum() -> None:
    assert pad_amounts([5, 16], [16, 16]) == [0, 0, 5, 6]
    assert pad_amounts([5], [16], min_size=64) == [29, 30]


def test_unetpp_deep_supervision_and_pruning() -> None:
    torch.manual_seed(0)
    model = create_model("unet++", spatial_dims=2, in_channels=1, out_channels=2,
                         features=(4, 8, 16, 32)).eval()
    x = torch.randn(1, 1, 19, 23)
    with torch.no_grad():
        heads = model.deep_supervision(x)
        assert [h.shape for h in heads] == [(1, 2, 19, 23)] * 3
        assert torch.allclose(model(x), heads[-1], atol=1e-6)
        model.net.prune_level = 1  # the paper's fast mode: only X^{0,0}, X^{1,0}, X^{0,1}
        assert torch.allclose(model(x), heads[0], atol=1e-6)
    with pytest.raises(ValueError, match="deep_supervision"):
        UNetPlusPlus(2, 1, 2, features=(4, 8, 16), deep_supervision=False, prune_level=1)


def test_deeplab_v1_crf_option_refines_in_eval_only() -> None:
    torch.manual_seed(0)
    kwargs = {"spatial_dims": 2, "in_channels": 1, "out_channels": 2, "width": 2,
              "fc_width": 8, "dropout": 0.0}
    plain = create_model("deeplab-v1", **kwargs).eval()
    with_crf = create_model("deeplab-v1", crf=True, **kwargs).eval()
    with_crf.load_state_dict(plain.state_dict())
    x = torch.rand(1, 1, 24, 24)
    with torch.no_grad():
        refined = with_crf(x)
        assert torch.allclose(refined.exp().sum(dim=1), torch.ones(1, 24, 24), atol=1e-4)
        assert not torch.allclose(refined, plain(x).log_softmax(dim=1))
        assert torch.equal(with_crf.train()(x), plain.train()(x))  # no CRF while training


def test_output_stride_option_of_deeplab_v3() -> None:
    model = create_model("deeplab-v3", spatial_dims=2, in_channels=1, out_channels=2, width=4,
                         aspp_channels=8, output_stride=8)
    assert model.multiple == [8, 8]
    with pytest.raises(ValueError, match="output_stride"):
        create_model("deeplab-v3", spatial_dims=2, in_channels=1, out_channels=2,
                     output_stride=32)
