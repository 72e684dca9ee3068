"""The compute plan of a training run: :mod:`napari_medseg.training.plan`.

Most tests replace the step and inference measurements by fixed times, so that what the
plan does with a budget is exact; one measures for real on a tiny scan.
"""

from __future__ import annotations

import numpy as np
import pytest

from napari_medseg.errors import TrainingError
from napari_medseg.events import run_to_end
from napari_medseg.scan import Geometry, LabelMap, Scan
from napari_medseg.training import plan as plan_module
from napari_medseg.training.annotation import describe_annotation
from napari_medseg.training.labeled_volume import LabeledVolume
from napari_medseg.training.plan import (
    CONTEXT_SLICES,
    FOLD_IN,
    INFERENCE_SHARE,
    MAX_STEPS,
    MIN_STEPS,
    LearnOptions,
    choose_contract,
    choose_dims,
    ct_window,
    plan_training,
)
from tests.training.conftest import torch_threads

SHAPE = (12, 32, 32)


@pytest.fixture(autouse=True)
def _one_thread():
    """One torch thread: the measured steps are not slowed by threads fighting for cores."""
    with torch_threads(1):
        yield


def _structure() -> np.ndarray:
    z, y, x = np.indices(SHAPE)
    return (((z - 6) / 5) ** 2 + ((y - 16) / 9) ** 2 + ((x - 16) / 8) ** 2 <= 1).astype(np.uint8)


def _volume(*, modality: str = "MR", spacing: tuple[float, float, float] = (1.0, 1.0, 1.0),
            slices: tuple[int, ...] | None = (3, 6, 9)) -> LabeledVolume:
    """A bright structure in noise; labeled on ``slices`` (``None``: every voxel)."""
    rng = np.random.default_rng(0)
    truth = _structure()
    base = 40.0 if modality == "CT" else 100.0
    image = (truth * base + rng.normal(0, 10, SHAPE)).astype(np.float32)
    geometry = Geometry.identity(3, spacing)
    if slices is None:
        return LabeledVolume([Scan(image, geometry, modality)], LabelMap(truth, geometry))
    labeled = np.zeros(SHAPE, bool)
    labeled[list(slices)] = True
    labels = np.where(labeled, truth, 0).astype(np.uint8)
    return LabeledVolume([Scan(image, geometry, modality)], LabelMap(labels, geometry),
                         labeled=labeled)


def _layout(volume: LabeledVolume):
    return describe_annotation(volume.labeled_mask(), volume.labels.array)


@pytest.fixture
def timed(monkeypatch):
    """Fixed measurements: ``timed(step_s, inference_s)``; ``step_s`` may be a function of
    the candidate spec.  Records the specs measured."""
    measured: list = []

    def install(step_s, inference_s: float = 1.0) -> list:
        def step(spec, patch, batch, device, *, repeats=2):
            measured.append(spec)
            return step_s(spec) if callable(step_s) else step_s

        monkeypatch.setattr(plan_module, "measure_step", step)
        monkeypatch.setattr(plan_module, "measure_inference",
                            lambda spec, window, device, n_windows: inference_s)
        return measured

    return install


def _plan(volume: LabeledVolume, **options: object):
    return run_to_end(plan_training([volume], LearnOptions(device="cpu", **options)))


# ------------------------------------------------------------------ choose_dims
def test_slice_annotation_trains_across_the_slices_even_for_a_3d_paper() -> None:
    layout = _layout(_volume())
    assert choose_dims(LearnOptions(), layout, (1.0, 1.0, 1.0), 3)[0] == 2
    dims, why = choose_dims(LearnOptions(architecture="unet-3d"), layout, (1.0, 1.0, 1.0), 3)
    assert dims == 2
    assert "--dims 3" in why
    assert choose_dims(LearnOptions(architecture="unet-3d", dims="3"), layout,
                       (1.0, 1.0, 1.0), 3)[0] == 3


def test_dense_labels_choose_by_voxel_shape_and_architecture() -> None:
    dense = _layout(_volume(slices=None))
    assert dense.dense
    assert choose_dims(LearnOptions(), dense, (1.0, 1.0, 1.0), 3)[0] == 3
    dims, why = choose_dims(LearnOptions(), dense, (5.0, 1.0, 1.0), 3)
    assert dims == 2
    assert "thick slices" in why
    assert choose_dims(LearnOptions(architecture="unet-3d"), dense, (5.0, 1.0, 1.0), 3)[0] == 3
    assert choose_dims(LearnOptions(dims="2"), dense, (1.0, 1.0, 1.0), 3)[0] == 2
    assert choose_dims(LearnOptions(dims="3"), dense, (1.0, 1.0, 1.0), 2)[0] == 2  # 2D image


def test_strokes_on_near_isotropic_voxels_train_3d() -> None:
    labeled = np.zeros(SHAPE, bool)
    labeled[4:8, 10:20, 10:20] = True
    strokes = describe_annotation(labeled, np.where(labeled, _structure(), 0))
    assert strokes.slices == ()
    assert choose_dims(LearnOptions(), strokes, (1.0, 1.2, 1.2), 3)[0] == 3
    assert choose_dims(LearnOptions(), strokes, (4.0, 1.0, 1.0), 3)[0] == 2


def test_options_are_checked() -> None:
    with pytest.raises(TrainingError, match="unknown architecture"):
        LearnOptions(architecture="no-such-net")
    with pytest.raises(TrainingError, match="dims"):
        LearnOptions(dims="4")
    with pytest.raises(TrainingError, match="positive"):
        LearnOptions(budget_s=0)


# ------------------------------------------------------------------ the intensity contract
def test_ct_gets_an_hu_window_and_mr_percentiles() -> None:
    ct = _volume(modality="CT")
    contracts, why = choose_contract(ct.scans, ct.labels.array, ct.labeled_mask(),
                                     LearnOptions())
    assert contracts[0].normalization == "ct_window"
    low, high = contracts[0].window
    inside = ct.scans[0].array[(ct.labels.array > 0) & ct.labeled_mask()]
    assert low < inside.min()  # the window holds the annotated class
    assert inside.max() < high
    assert "HU window" in why

    mr = _volume(modality="MR")
    contracts, why = choose_contract(mr.scans, mr.labels.array, mr.labeled_mask(),
                                     LearnOptions())
    assert contracts[0].normalization == "percentile"
    assert contracts[0].percentiles == (0.5, 99.5)
    assert "percentiles" in why

    told = choose_contract(mr.scans, mr.labels.array, mr.labeled_mask(),
                           LearnOptions(modality="CT", window=(-100, 300)))[0][0]
    assert told.normalization == "ct_window"
    assert told.window == (-100.0, 300.0)
    asked = choose_contract(ct.scans, ct.labels.array, ct.labeled_mask(),
                            LearnOptions(normalization="zscore"))[0][0]
    assert asked.normalization == "zscore"


def test_ct_window_holds_the_annotated_values() -> None:
    image = np.full((4, 4), -1000.0)
    labels = np.zeros((4, 4), np.uint8)
    labeled = np.ones((4, 4), bool)
    assert ct_window(image, labels, labeled) == (-160.0, 240.0)  # nothing annotated
    image[1:3, 1:3] = [[40, 50], [55, 60]]
    labels[1:3, 1:3] = 1
    low, high = ct_window(image, labels, labeled)
    values = image[labels > 0]
    # the 1st..99th percentiles of the class with 150 HU to spare
    assert low == round(np.percentile(values, 1) - 150)
    assert high == round(np.percentile(values, 99) + 150)
    assert ct_window(image, labels, np.zeros((4, 4), bool)) == (-160.0, 240.0)
    image[1:3, 1:3] = [[-990, 500], [1000, 1990]]
    assert ct_window(image, labels, labeled) == (-1000, 2000)  # clipped to the HU range


# ------------------------------------------------------------------ the plan
def test_the_plan_follows_the_annotation_and_the_modality(timed) -> None:
    timed(0.01)
    plan = _plan(_volume(modality="CT"), architecture="unet-3d")
    assert plan.spec.architecture == "unet-3d"
    assert plan.spec.spatial_dims == 2
    assert plan.spec.slice_axis == 0
    assert plan.spec.intensity[0].normalization == "ct_window"
    assert plan.spec.out_channels == 2
    assert plan.train.patch_size is not None
    assert len(plan.train.patch_size) == 2
    assert plan.train.fold_in == FOLD_IN
    assert plan.notes[0] == _layout(_volume()).summary()

    plan = _plan(_volume(modality="MR"), architecture="unet-3d", dims="3")
    assert plan.spec.spatial_dims == 3
    assert plan.spec.slice_axis is None
    assert plan.spec.context_slices == 0
    assert len(plan.train.patch_size or ()) == 3
    assert plan.spec.intensity[0].normalization == "percentile"


def test_no_context_slices_across_thick_slices(timed) -> None:
    timed(0.01)
    thin = _plan(_volume(spacing=(1.0, 1.0, 1.0)))
    assert thin.spec.context_slices == CONTEXT_SLICES == 1
    assert thin.spec.in_channels == 2 * CONTEXT_SLICES + 1
    thick = _plan(_volume(spacing=(5.0, 1.0, 1.0)))
    assert thick.spec.spatial_dims == 2
    assert thick.spec.context_slices == 0
    assert thick.spec.in_channels == 1
    assert any("thick slices" in note for note in thick.notes)
    asked = _plan(_volume(spacing=(5.0, 1.0, 1.0)), context_slices=2)
    assert asked.spec.context_slices == 2
    assert asked.spec.in_channels == 5


def test_fold_in_defaults(timed) -> None:
    timed(0.01)
    assert _plan(_volume()).train.fold_in == FOLD_IN
    assert _plan(_volume(slices=None)).train.fold_in == 0.0  # dense: every eighth slice
    assert _plan(_volume(), fold_in=0.1).train.fold_in == 0.1
    assert _plan(_volume(slices=None), fold_in=0.2).train.fold_in == 0.2


@pytest.mark.parametrize(("budget", "step_s", "inference_s"),
                         [(60.0, 0.05, 2.0), (120.0, 0.2, 30.0), (45.0, 0.1, 0.5)])
def test_the_steps_fit_the_budget(timed, budget: float, step_s: float,
                                  inference_s: float) -> None:
    timed(step_s, inference_s)
    plan = _plan(_volume(), budget_s=budget)
    reserved = 2 * min(inference_s, INFERENCE_SHARE * budget / 2)
    assert plan.step_s == step_s
    assert plan.budget_s == budget
    assert MIN_STEPS <= plan.train.steps <= MAX_STEPS
    assert plan.train.steps * plan.step_s <= budget - reserved + 1e-9
    # as many as fit: one more step would not
    assert (plan.train.steps + 1) * plan.step_s > budget - reserved
    assert plan.train.time_limit_s is not None
    assert plan.train.time_limit_s >= plan.train.steps * plan.step_s
    if inference_s <= INFERENCE_SHARE * budget / 2:
        assert plan.eta_s <= budget + 1e-9


def test_a_large_budget_stops_at_max_steps(timed) -> None:
    timed(0.001, 0.5)
    assert _plan(_volume(), budget_s=3600).train.steps == MAX_STEPS


def test_a_budget_too_small_is_refused_unless_steps_are_given(timed) -> None:
    timed(1.0, 2.0)
    budget = 30.0  # 30 - 2 * 2 = 26 s: 26 steps of 1 s, fewer than MIN_STEPS
    with pytest.raises(TrainingError, match="too small") as error:
        _plan(_volume(), budget_s=budget)
    need = MIN_STEPS * 1.0 + 2 * 2.0
    assert f"give at least {int(need)} s" in str(error.value)
    plan = _plan(_volume(), budget_s=budget, steps=5)
    assert plan.train.steps == 5
    assert plan.train.time_limit_s is None  # exact steps: no time limit
    ok = _plan(_volume(), budget_s=need + 1)
    assert ok.train.steps >= MIN_STEPS


def test_fast_widths_shrink_until_the_steps_fit(timed) -> None:
    """The planned U-Net widths: 16.. when enough steps of it fit, else 8.."""
    measured = timed(lambda spec: 1.0 if spec.options["features"][0] == 16 else 0.1)
    plan = _plan(_volume(), budget_s=100)  # 98 steps of the wider net: under 4 * MIN_STEPS
    assert [m.options["features"][0] for m in measured] == [16, 8]
    assert plan.spec.options["features"] == [8, 16, 32, 64]
    assert plan.step_s == 0.1
    measured.clear()
    plan = _plan(_volume(), budget_s=1000)
    assert [m.options["features"][0] for m in measured] == [16]
    assert plan.spec.options["features"] == [16, 32, 64, 128]
    measured.clear()
    plan = _plan(_volume(), budget_s=100, features=(4, 8))  # given widths are kept
    assert [m.options["features"] for m in measured] == [[4, 8]]
    assert plan.spec.options["features"] == [4, 8]


def test_labels_must_hold_a_structure_and_fit_the_classes(timed) -> None:
    timed(0.01)
    empty = _volume()
    empty.labels.array[:] = 0
    with pytest.raises(TrainingError, match="only background"):
        _plan(empty)
    with pytest.raises(TrainingError, match="2 classes"):
        run_to_end(plan_training([_volume()], LearnOptions(device="cpu"), n_classes=1))
    with pytest.raises(TrainingError, match="no labeled volume"):
        run_to_end(plan_training([], LearnOptions(device="cpu")))


def test_measured_for_real_the_plan_fits_its_budget() -> None:
    """No stand-ins: a few steps of a tiny network measured on this machine."""
    budget = 900.0  # generous: a loaded machine measures slow steps
    plan = _plan(_volume(), budget_s=budget, features=(4, 8), batch_size=2)
    assert plan.step_s > 0
    assert plan.inference_s > 0
    assert MIN_STEPS <= plan.train.steps <= MAX_STEPS
    reserved = 2 * min(plan.inference_s, INFERENCE_SHARE * budget / 2)
    assert plan.train.steps * plan.step_s <= budget - reserved + 1e-9
    assert plan.train.batch_size == 2
    assert "steps fit the 900 s budget" in plan.notes[-1]
    assert plan.summary().startswith("unet 2.5D [4, 8]")
