"""Loss, freezing, sampling, augmentation, hold-out and input checks of the training core."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from monai.losses import MaskedDiceLoss

from napari_medseg.errors import GeometryMismatchError, TrainingError
from napari_medseg.models import create_model
from napari_medseg.scan import Geometry, LabelMap, Scan
from napari_medseg.training import (
    AugmentOptions,
    LabeledVolume,
    MaskedDiceCELoss,
    encoder_parameter_names,
    freeze_encoder,
    prepare_volume,
)
from napari_medseg.training.augment import augment
from napari_medseg.training.labeled_volume import hold_out
from napari_medseg.training.sampling import PatchSampler, crop
from tests.training.conftest import tiny_spec


def _volume(shape: tuple[int, ...] = (12, 16, 16), labeled: np.ndarray | None = None,
            **kwargs: object) -> LabeledVolume:
    rng = np.random.default_rng(0)
    g = Geometry.identity(len(shape))
    labels = np.zeros(shape, np.uint8)
    labels[3:9, 4:12, 4:12] = 1
    labels[5:7, 6:10, 6:10] = 2
    scan = Scan(rng.normal(size=shape).astype(np.float32) + labels, g, modality="MR")
    return LabeledVolume([scan], LabelMap(labels, g), labeled=labeled, **kwargs)  # type: ignore[arg-type]


def test_dice_term_matches_monai_masked_dice() -> None:
    torch.manual_seed(0)
    logits = torch.randn(2, 3, 6, 7, 8)
    target = torch.randint(0, 3, (2, 6, 7, 8))
    mask = (torch.rand(2, 6, 7, 8) > 0.5).float()
    ours = MaskedDiceCELoss(dice_weight=1.0, ce_weight=0.0, include_background=False)(
        logits, target, mask)
    monai = MaskedDiceLoss(to_onehot_y=True, batch=True, smooth_nr=1e-5, smooth_dr=1e-5,
                           include_background=False)(
        torch.softmax(logits, 1), target[:, None], mask=mask[:, None])
    assert float(ours) == pytest.approx(float(monai), abs=1e-5)


def test_unlabeled_voxels_do_not_change_the_loss() -> None:
    logits = torch.randn(1, 3, 4, 4, 4)
    target = torch.randint(0, 3, (1, 4, 4, 4))
    weight = torch.ones(1, 4, 4, 4)
    weight[..., :2] = 0
    loss = MaskedDiceCELoss()
    other = target.clone()
    other[..., :2] = (other[..., :2] + 1) % 3
    assert float(loss(logits, target, weight)) == pytest.approx(float(loss(logits, other, weight)))


def test_freeze_encoder_rule() -> None:
    model = create_model("unet-3d", spatial_dims=3, in_channels=1, out_channels=2,
                         features=(4, 8))
    names = freeze_encoder(model)
    assert names
    assert all(".encoders." in n for n in names)
    assert all(not p.requires_grad for n, p in model.named_parameters() if n in names)
    assert any(p.requires_grad for p in model.parameters())
    basic = create_model("monai-basicunet", spatial_dims=2, in_channels=1, out_channels=2)
    assert any("conv_0" in n for n in encoder_parameter_names(basic))
    assert not any("upcat" in n for n in encoder_parameter_names(basic))


def test_labeled_mask_ignore_value_and_edits() -> None:
    labeled = np.zeros((12, 16, 16), bool)
    labeled[4] = True
    edited = np.zeros_like(labeled)
    edited[6, 6, 6] = True
    volume = _volume(labeled=labeled, edited=edited)
    mask = volume.labeled_mask()
    assert mask[4].all()
    assert mask[6, 6, 6]
    assert mask.sum() == 16 * 16 + 1
    prepared = prepare_volume(volume, tiny_spec(), edited_weight=3.0)
    assert prepared.weight[6, 6, 6] == 3.0
    assert prepared.weight[4, 0, 0] == 1.0
    assert prepared.weight[0].sum() == 0
    ignored = _volume(ignore_value=2)
    assert not ignored.labeled_mask()[6, 8, 8]


def test_bad_inputs_are_refused_clearly() -> None:
    with pytest.raises(TrainingError, match="no labeled voxel"):
        prepare_volume(_volume(labeled=np.zeros((12, 16, 16), bool)), tiny_spec())
    volume = _volume()
    volume.labels.array[0, 0, 0] = 7
    with pytest.raises(TrainingError, match=r"class value\(s\) \[7\]"):
        prepare_volume(volume, tiny_spec())
    scan = Scan(np.zeros((12, 16, 16), np.float32), Geometry.identity(3))
    other = LabelMap(np.zeros((12, 16, 16), np.uint8), Geometry.identity(3, (2.0, 1.0, 1.0)))
    with pytest.raises(GeometryMismatchError, match="different grids"):
        LabeledVolume([scan], other)


def test_sampler_centres_on_labeled_slices_and_hold_out() -> None:
    labeled = np.zeros((12, 16, 16), bool)
    labeled[[2, 5, 8]] = True
    prepared = prepare_volume(_volume(labeled=labeled), tiny_spec())
    rng = np.random.default_rng(0)
    n_val = hold_out([prepared], 0.2, 4, rng)
    assert 0 < n_val < labeled.sum()
    assert not (prepared.validation & ~labeled).any()
    sampler = PatchSampler([prepared], (1, 8, 8), foreground_fraction=1.0, rng=rng)
    batch = sampler.batch(6)
    assert batch.image.shape == (6, 1, 1, 8, 8)
    assert (batch.weight.reshape(6, -1).sum(1) > 0).all()
    assert crop(np.ones((3, 3)), (1, 1), (5, 5)).shape == (5, 5)


def test_sampler_draws_a_small_class_as_often_as_a_big_one() -> None:
    from napari_medseg.training.labeled_volume import PreparedVolume

    target = np.ones((8, 32, 32), np.int64)  # class 1 everywhere ...
    target[4, 10:12, 10:12] = 2  # ... but 4 voxels of class 2
    weight = np.ones(target.shape, np.float32)
    prepared = PreparedVolume(image=np.zeros((1, *target.shape), np.float32), target=target,
                              weight=weight, validation=np.zeros(target.shape, bool),
                              grid=None)  # the sampler never looks at the grid
    sampler = PatchSampler([prepared], (1, 4, 4), foreground_fraction=1.0,
                           rng=np.random.default_rng(0))
    small = sum(target[sampler.centre()[1]] == 2 for _ in range(2000))
    assert 0.4 < small / 2000 < 0.6  # uniform over classes, not over voxels (4 / 8192)


def test_augmentation_keeps_shapes_and_label_values() -> None:
    g = torch.Generator().manual_seed(0)
    image = torch.rand(2, 1, 8, 12, 12)
    target = torch.randint(0, 3, (2, 8, 12, 12))
    weight = torch.ones(2, 8, 12, 12)
    options = AugmentOptions(affine_probability=1.0, elastic_probability=1.0,
                             intensity_probability=1.0, rotate90=True)
    x, y, w = augment(image, target, weight, options, g)
    assert x.shape == image.shape
    assert y.shape == target.shape
    assert w.shape == weight.shape
    assert set(torch.unique(y).tolist()) <= {0, 1, 2}
    assert set(torch.unique(w).tolist()) <= {0.0, 1.0}


def test_training_flips_a_volume_to_the_checkpoint_orientation() -> None:
    volume = _volume()  # identity direction: stored as a DICOM series is
    plain = prepare_volume(volume, tiny_spec())
    ras = prepare_volume(volume, tiny_spec(orientation="RAS"))
    np.testing.assert_array_equal(plain.target, volume.labels.array)
    np.testing.assert_array_equal(ras.target, volume.labels.array[:, ::-1, ::-1])
    np.testing.assert_allclose(ras.image[0], plain.image[0][:, ::-1, ::-1], atol=1e-5)
    np.testing.assert_array_equal(ras.grid.geometry.direction, np.diag([1.0, -1.0, -1.0]))
