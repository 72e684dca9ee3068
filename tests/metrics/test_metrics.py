"""Our Dice/IoU/HD95/ASSD/volumes, checked by hand and against MONAI's metrics."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from monai.metrics import (
    compute_average_surface_distance,
    compute_dice,
    compute_hausdorff_distance,
    compute_iou,
)

from napari_medseg.errors import GeometryMismatchError
from napari_medseg.metrics import (
    assd,
    class_volumes_ml,
    dice,
    evaluate,
    evaluate_arrays,
    hd95,
    iou,
)
from napari_medseg.scan import Geometry, LabelMap


def _blobs(seed: int, shape: tuple[int, ...] = (20, 24, 28)) -> np.ndarray:
    rng = np.random.default_rng(seed)
    grid = np.indices(shape).astype(float)
    out = np.zeros(shape, dtype=np.uint8)
    for k in (1, 2):
        centre = rng.uniform(6, np.array(shape) - 6)
        radius = rng.uniform(3, 6, size=len(shape))
        inside = (((grid.T - centre) / radius) ** 2).sum(-1).T <= 1
        out[inside] = k
    return out


def _one_hot(a: np.ndarray, k: int) -> torch.Tensor:
    return torch.from_numpy(a == k)[None, None].float()


def test_dice_iou_by_hand() -> None:
    pred = np.array([[1, 1, 0, 0]])
    truth = np.array([[1, 0, 0, 0]])
    assert dice(pred, truth, 1) == pytest.approx(2 / 3)
    assert iou(pred, truth, 1) == pytest.approx(1 / 2)
    assert np.isnan(dice(pred, truth, 2))
    mask = np.array([[True, False, True, True]])
    assert dice(pred, truth, 1, mask=mask) == 1.0


def test_hd95_by_hand_uses_spacing() -> None:
    a = np.zeros((1, 10), bool)
    b = np.zeros((1, 10), bool)
    a[0, 2] = True
    b[0, 5] = True
    assert hd95(a, b, (1.0, 2.0)) == pytest.approx(6.0)
    assert assd(a, b, (1.0, 2.0)) == pytest.approx(6.0)
    assert hd95(a, np.zeros_like(a), (1.0, 1.0)) == float("inf")
    assert np.isnan(hd95(np.zeros_like(a), np.zeros_like(a), (1.0, 1.0)))


@pytest.mark.parametrize("seed", [0, 1])
def test_agrees_with_monai(seed: int) -> None:
    pred, truth = _blobs(seed), _blobs(seed + 10)
    spacing = (2.5, 0.8, 1.1)
    for k in (1, 2):
        p, t = _one_hot(pred, k), _one_hot(truth, k)
        assert dice(pred, truth, k) == pytest.approx(float(compute_dice(p, t)), abs=1e-6)
        assert iou(pred, truth, k) == pytest.approx(float(compute_iou(p, t)), abs=1e-6)
        expected_hd = float(compute_hausdorff_distance(p, t, percentile=95, spacing=spacing))
        assert hd95(pred == k, truth == k, spacing) == pytest.approx(expected_hd, rel=1e-5)
        expected_assd = float(compute_average_surface_distance(p, t, symmetric=True,
                                                               spacing=spacing))
        assert assd(pred == k, truth == k, spacing) == pytest.approx(expected_assd, rel=1e-5)


def test_volumes_in_ml() -> None:
    labels = np.zeros((10, 10, 10), np.uint8)
    labels[:5] = 1
    assert class_volumes_ml(labels, (2.0, 1.0, 1.0)) == {1: pytest.approx(1.0)}


def test_evaluate_table_json_csv() -> None:
    g = Geometry.identity(3, (2.0, 1.0, 1.0))
    pred = LabelMap(_blobs(3), g, {0: "background", 1: "liver", 2: "spleen"})
    truth = LabelMap(_blobs(3), g)
    result = evaluate(pred, truth)
    # the reference's names (it has none of its own), the prediction's beside them
    assert [r.name for r in result.rows] == ["class 1", "class 2"]
    assert [r.pred_name for r in result.rows] == ["liver", "spleen"]
    assert [r.matched_by for r in result.rows] == ["value", "value"]
    assert result.mean("dice") == 1.0
    assert result.rows[0].hd95_mm == 0.0
    assert '"dice": 1.0' in result.to_json()
    assert result.to_csv().splitlines()[0].startswith("label,name,dice")
    table = result.format_table()
    assert "mean" in table
    assert "1 liver (value)" in table
    assert "means over the reference's classes present in either map: 1 class 1, 2 class 2" \
        in table


def test_evaluate_refuses_other_grid() -> None:
    pred = LabelMap(_blobs(0), Geometry.identity(3))
    truth = LabelMap(_blobs(0), Geometry.identity(3, (2.0, 1.0, 1.0)))
    with pytest.raises(GeometryMismatchError, match="different grids"):
        evaluate(pred, truth)
    with pytest.raises(GeometryMismatchError):
        evaluate_arrays(np.zeros((4, 4)), np.zeros((4, 5)), (1, 1))
