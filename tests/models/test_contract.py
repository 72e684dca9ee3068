"""One contract for every registered model, in 2D and 3D (tiny widths, see tiny_options.TINY).

Output shape and dtype, a backward pass, odd input sizes, multi-channel input, checkpoint round
trip with identical outputs, and a short overfit on a real CT patch in which the loss halves.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from napari_medseg.models import (
    CheckpointSpec,
    create_model,
    load_checkpoint,
    model_names,
    save_checkpoint,
)
from tests.data_root import SHARED_DATA, missing_reason

from .tiny_options import TINY

DATA = SHARED_DATA
#: 3D cases too heavy for CI on 2 cores (Swin UNETR needs 64^3 so that its 1/32 bottleneck
#: has more than one voxel for instance norm); run them with ``-m slow``.
HEAVY = {("monai-swinunetr", 3)}
CASES = [pytest.param(name, dims, id=f"{name}-{dims}d",
                      marks=[pytest.mark.slow] if (name, dims) in HEAVY else [])
         for name in model_names() for dims in (2, 3)]


def _model(name: str, dims: int, in_channels: int = 1, out_channels: int = 2):
    torch.manual_seed(0)
    return create_model(name, spatial_dims=dims, in_channels=in_channels,
                        out_channels=out_channels, **TINY[name])


def test_every_model_has_tiny_options() -> None:
    assert set(TINY) == set(model_names())


@pytest.mark.parametrize(("name", "dims"), CASES)
def test_shape_dtype_backward_multichannel_odd_size(name: str, dims: int) -> None:
    model = _model(name, dims, in_channels=3, out_channels=4).train()
    shape = (2, 3, 37, 29) if dims == 2 else (2, 3, 19, 13, 17)
    x = torch.randn(shape, requires_grad=True)
    y = model(x)
    assert y.shape == (2, 4, *shape[2:])
    assert y.dtype == torch.float32
    y.square().mean().backward()
    assert x.grad is not None
    assert torch.isfinite(x.grad).all()
    assert any(p.grad is not None and p.grad.abs().sum() > 0 for p in model.parameters())


@pytest.mark.parametrize(("name", "dims"), CASES)
def test_any_size_in_eval(name: str, dims: int) -> None:
    model = _model(name, dims).eval()
    sizes = [(1, 1), (33, 18)] if dims == 2 else [(1, 1, 1), (9, 17, 4)]
    with torch.no_grad():
        for size in sizes:
            y = model(torch.randn(1, 1, *size))
            assert y.shape == (1, 2, *size)
            assert torch.isfinite(y).all()


@pytest.mark.parametrize(("name", "dims"), CASES)
def test_checkpoint_round_trip(name: str, dims: int, tmp_path: Path) -> None:
    model = _model(name, dims, in_channels=2, out_channels=3)
    with torch.no_grad():  # move batch-norm statistics away from their defaults
        model.train()(torch.randn(2, 2, *([20] * dims)))
    model.eval()
    spec = CheckpointSpec(architecture=name, spatial_dims=dims, in_channels=2, out_channels=3,
                          options=dict(TINY[name]), class_names={0: "background", 1: "a", 2: "b"})
    path = save_checkpoint(model, spec, tmp_path / "m.safetensors")
    loaded, loaded_spec = load_checkpoint(path)
    assert loaded_spec.architecture == name
    assert loaded_spec.class_names == spec.class_names
    x = torch.randn(1, 2, *([11] * dims))
    with torch.no_grad():
        assert torch.equal(model(x), loaded(x))


def _ct_patch(dims: int, *, large: bool) -> tuple[torch.Tensor, torch.Tensor]:
    """A real abdominal CT patch (window -160..240 HU -> [0, 1]) and its liver mask.

    ``large`` patches (64 voxels in-plane) are for nets that downsample 32x (FCN), which
    would otherwise see a single coarse cell.
    """
    sitk = pytest.importorskip("SimpleITK")
    image_path = DATA / "ct_abdomen" / "example_ct_sm.nii.gz"
    label_path = DATA / "ct_abdomen" / "example_seg.nii.gz"
    if not image_path.exists() or not label_path.exists():
        pytest.skip(missing_reason())
    image = sitk.GetArrayFromImage(sitk.ReadImage(str(image_path))).astype(np.float32)
    label = sitk.GetArrayFromImage(sitk.ReadImage(str(label_path))) == 5  # liver
    if dims == 2:
        crop = (18, slice(28, 92), slice(42, 106)) if large else (18, slice(28, 60),
                                                                  slice(60, 92))
    elif large:
        crop = (slice(10, 26), slice(28, 92), slice(42, 106))
    else:
        crop = (slice(12, 24), slice(32, 56), slice(64, 88))
    image_crop = np.clip((image[crop] + 160) / 400, 0, 1)
    label_crop = label[crop].astype(np.int64)
    return torch.from_numpy(image_crop)[None, None], torch.from_numpy(label_crop)[None]


#: Adam steps where the default 25 are not enough at tiny widths (3D DeepLab v3 ends right at
#: half its starting loss after 25, on either side of it with float rounding).
STEPS = {"segnet": 40, "monai-unetr": 40, "deeplab-v3": 35}
#: FCN-32s's logits are a fixed bilinear interpolation of a stride-32 grid: on a 64-voxel patch
#: that is 2x2 cells, too coarse to draw the liver (the loss plateaus near 0.66 of its start).
COARSE = {"fcn-32s"}


#: the slowest overfits on 2 cores (64-voxel 3D patches for stride-32 nets): ``-m slow``
SLOW_OVERFIT = {("segnet", 3), ("fcn-32s", 2), ("fcn-32s", 3)}
OVERFIT_CASES = [pytest.param(*p.values, id=p.id, marks=[*p.marks, pytest.mark.slow]
                              if tuple(p.values) in SLOW_OVERFIT else p.marks) for p in CASES]


@pytest.mark.parametrize(("name", "dims"), OVERFIT_CASES)
def test_overfit_real_patch(name: str, dims: int, request: pytest.FixtureRequest) -> None:
    if name in COARSE:
        request.applymarker(pytest.mark.xfail(reason="stride-32 output too coarse for 64 px",
                                              strict=False))
    model = _model(name, dims).train()
    x, target = _ct_patch(dims, large=max(model.multiple) >= 32)
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-2)
    losses = []
    for _ in range(STEPS.get(name, 25)):
        optimizer.zero_grad()
        loss = F.cross_entropy(model(x), target)
        loss.backward()
        optimizer.step()
        losses.append(loss.item())
    assert min(losses[-5:]) <= 0.5 * losses[0], losses
