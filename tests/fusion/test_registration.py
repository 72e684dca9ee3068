"""Registration with known answers on real brains, failure modes, labels following along."""

from __future__ import annotations

import numpy as np
import pytest
import SimpleITK as sitk

from napari_medseg.errors import GeometryMismatchError, RegistrationError
from napari_medseg.events import Log, Progress
from napari_medseg.fusion import (
    RegistrationOptions,
    load_transform,
    register,
    register_job,
    resample_to,
    transform_points,
)
from napari_medseg.io.itk import scan_to_sitk
from napari_medseg.scan import Geometry, LabelMap, Scan

from .conftest import make_scan, remap_contrast


def _known_rigid(fixed: Scan) -> sitk.Euler3DTransform:
    """A few degrees about each axis and a few mm, about the centre of the volume."""
    image = scan_to_sitk(fixed)
    centre = image.TransformContinuousIndexToPhysicalPoint([(n - 1) / 2 for n in image.GetSize()])
    return sitk.Euler3DTransform(centre, 0.06, -0.04, 0.08, (4.0, -3.0, 5.0))


def _moved(fixed: Scan, transform: sitk.Transform) -> Scan:
    """``fixed`` seen through ``transform`` (moving(y) = fixed(T(y))), in a second contrast."""
    moved = resample_to(fixed, fixed, transform=transform, default_value=0.0)
    return Scan(array=remap_contrast(moved.array), geometry=fixed.geometry, modality="MR")


def _tre_mm(fixed: Scan, found: sitk.Transform, truth: sitk.Transform) -> np.ndarray:
    """Distance (mm) between where ``found`` and ``truth`` send every brain voxel."""
    index = np.argwhere(fixed.array > 0.1 * fixed.array.max())
    points = fixed.geometry.index_to_world(index)
    return np.linalg.norm(transform_points(found, points) - transform_points(truth, points), axis=1)


def _dice(a: np.ndarray, b: np.ndarray) -> float:
    return float(2 * np.logical_and(a, b).sum() / (a.sum() + b.sum()))


@pytest.mark.parametrize("kind", ["rigid", "affine"])
def test_known_rigid_transform_is_recovered_within_a_voxel(colin_3mm, kind) -> None:
    truth = _known_rigid(colin_3mm)
    moving = _moved(colin_3mm, truth)
    before = moving.array.copy()
    result = register(colin_3mm, moving, options=RegistrationOptions(kind=kind))
    # moving(T(x)) = fixed(x) holds for T = truth^-1
    tre = _tre_mm(colin_3mm, result.transform, truth.GetInverse())
    voxel = max(colin_3mm.spacing)
    assert tre.max() < voxel, f"TRE max {tre.max():.2f} mm, mean {tre.mean():.2f} mm"
    assert tre.mean() < 0.5 * voxel
    assert result.final_metric < result.initial_metric
    assert result.resampled.same_grid(colin_3mm)
    assert result.resampled.array.dtype == np.float32
    np.testing.assert_array_equal(moving.array, before)  # input untouched


def test_job_yields_typed_progress_and_can_be_cancelled(colin_3mm) -> None:
    moving = _moved(colin_3mm, _known_rigid(colin_3mm))
    events = []
    result = register(colin_3mm, moving, on_event=events.append)
    progress = [e for e in events if isinstance(e, Progress)]
    assert len(progress) == 3  # one per resolution level
    assert progress[-1].done == progress[-1].total
    assert "metric" in progress[-1].metrics
    assert result.iterations == len(result.metric_history) > 0

    job = register_job(colin_3mm, moving)
    assert isinstance(next(job), Progress)
    job.close()  # cancel between two levels: nothing to clean up


def test_labels_follow_the_transform(colin_3mm) -> None:
    truth = _known_rigid(colin_3mm)
    moving = _moved(colin_3mm, truth)
    mask = colin_3mm.array > 0.1 * colin_3mm.array.max()
    moving_mask = LabelMap(array=(moving.array > 0).astype(np.uint8), geometry=moving.geometry)
    result = register(colin_3mm, moving)
    on_fixed = result.resample_labels(moving_mask)
    assert on_fixed.array.dtype == np.uint8
    assert set(np.unique(on_fixed.array)) <= {0, 1}
    dice_after = _dice(on_fixed.array > 0, mask)
    assert dice_after > 0.95
    assert dice_after > _dice(moving_mask.array > 0, mask) + 0.03  # misaligned before


def test_two_real_brains_dice_improves(colin_3mm, template_3mm) -> None:
    # Colin27 already lies near MNI space: misalign it by a known rigid motion first.
    misaligned = resample_to(colin_3mm, colin_3mm, transform=_known_rigid(colin_3mm))
    result = register(template_3mm, misaligned, options=RegistrationOptions(kind="affine"))
    fixed_mask = template_3mm.array > 0.1 * template_3mm.array.max()
    before = resample_to(misaligned, template_3mm, default_value=0.0).array
    after = result.resampled.array
    thr = 0.1 * colin_3mm.array.max()
    dice_before, dice_after = _dice(before > thr, fixed_mask), _dice(after > thr, fixed_mask)
    assert dice_after > dice_before + 0.03
    assert dice_after > 0.93


def test_none_on_same_grid_returns_moving_values(colin_3mm) -> None:
    other = Scan(array=colin_3mm.array * 2, geometry=colin_3mm.geometry)
    result = register(colin_3mm, other, options=RegistrationOptions(kind="none"))
    np.testing.assert_array_equal(result.resampled.array, other.array)
    np.testing.assert_allclose(result.transform.TransformPoint((1.0, 2.0, 3.0)), (1, 2, 3))


def test_none_without_overlap_is_refused_with_extents() -> None:
    a = make_scan(np.random.default_rng(0).random((20, 20, 20)).astype(np.float32))
    b = make_scan(a.array.copy(), origin=1000.0)
    with pytest.raises(GeometryMismatchError, match=r"do not overlap.*mm"):
        register(a, b, options=RegistrationOptions(kind="none"))


def test_moments_bring_far_apart_scans_together(colin_3mm) -> None:
    geometry = colin_3mm.geometry
    shifted = Geometry(
        spacing=geometry.spacing,
        origin=tuple(o + 400.0 for o in geometry.origin),
        direction=geometry.direction,
    )
    moving = Scan(array=remap_contrast(colin_3mm.array), geometry=shifted)
    events = []
    result = register(colin_3mm, moving, on_event=events.append)
    assert any(isinstance(e, Log) and "do not overlap" in e.message for e in events)
    offset = transform_points(result.transform, [geometry.origin])[0] - geometry.origin
    np.testing.assert_allclose(offset, 400.0, atol=1.5)


def test_non_convergence_reports_metric_and_leaves_input(colin_3mm) -> None:
    moving = _moved(colin_3mm, _known_rigid(colin_3mm))
    before = moving.array.copy()
    options = RegistrationOptions(
        kind="rigid",
        max_final_metric=-10.0,
        shrink_factors=(2,),
        smoothing_sigmas=(1.0,),
        iterations=20,
    )
    with pytest.raises(RegistrationError, match=r"did not converge: final metric -?\d") as info:
        register(colin_3mm, moving, options=options)
    assert np.isfinite(info.value.final_metric)
    np.testing.assert_array_equal(moving.array, before)


def test_constant_moving_scan_fails_cleanly(colin_3mm) -> None:
    flat = Scan(array=np.ones_like(colin_3mm.array), geometry=colin_3mm.geometry)
    with pytest.raises(RegistrationError):
        register(colin_3mm, flat, options=RegistrationOptions(initialisation="geometry"))


def test_2d_with_3d_is_refused(colin_3mm) -> None:
    slice_2d = make_scan(colin_3mm.array[30])
    with pytest.raises(GeometryMismatchError, match="2D"):
        register(colin_3mm, slice_2d)


def test_nan_voxels_are_refused(colin_3mm) -> None:
    bad = colin_3mm.array.copy()
    bad[0, 0, 0] = np.nan
    with pytest.raises(RegistrationError, match="NaN"):
        register(colin_3mm, Scan(array=bad, geometry=colin_3mm.geometry))


def test_rigid_2d(colin_3mm) -> None:
    fixed = make_scan(colin_3mm.array[30].copy(), spacing=3.0)
    image = scan_to_sitk(fixed)
    centre = image.TransformContinuousIndexToPhysicalPoint([(n - 1) / 2 for n in image.GetSize()])
    truth = sitk.Euler2DTransform(centre, 0.1, (5.0, -4.0))
    moved = resample_to(fixed, fixed, transform=truth, default_value=0.0)
    moving = make_scan(remap_contrast(moved.array), spacing=3.0)
    result = register(fixed, moving, options=RegistrationOptions(sampling_fraction=0.5))
    tre = _tre_mm(fixed, result.transform, truth.GetInverse())
    assert tre.max() < 3.0


@pytest.mark.slow
def test_bspline_improves_on_affine_and_round_trips(colin_3mm, template_3mm, tmp_path) -> None:
    options = RegistrationOptions(kind="bspline", bspline_iterations=30)
    result = register(template_3mm, colin_3mm, options=options)
    assert result.final_metric < result.initial_metric
    path = result.save_transform(tmp_path / "t.h5")
    again = resample_to(colin_3mm, template_3mm, transform=load_transform(path))
    np.testing.assert_allclose(again.array, result.resampled.array, atol=1e-3)


def test_wildly_different_fields_of_view_are_warned_about(colin_3mm) -> None:
    small = Scan(array=colin_3mm.array[20:30, 20:40, 20:40].copy(), geometry=colin_3mm.geometry)
    events = []
    result = register(
        colin_3mm, small, options=RegistrationOptions(kind="none"), on_event=events.append
    )
    warnings = [e.message for e in events if isinstance(e, Log) and e.level == "warning"]
    assert any("fields of view differ widely" in w for w in warnings)
    assert 0 < result.coverage < 0.2
