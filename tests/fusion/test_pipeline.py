"""The register + fuse verb's core job on small real brains: everything on the fixed grid."""

from __future__ import annotations

import numpy as np
import pytest

from napari_medseg.errors import FusionError, GeometryMismatchError
from napari_medseg.events import run_to_end
from napari_medseg.fusion import (
    FusionOptions,
    RegisterFuseOptions,
    RegistrationOptions,
    register_and_fuse_job,
)
from napari_medseg.scan import Geometry, LabelMap, Scan

from .conftest import remap_contrast


@pytest.fixture
def pair(colin_3mm):
    """A 3 mm brain and a second contrast of it, cropped by two slices at each end (another
    field of view) and placed 12 mm up in its header, so that its anatomy sits 6 mm above
    the fixed one; with the moving scan's brain mask."""
    g = colin_3mm.geometry
    moving_geometry = Geometry(
        spacing=g.spacing, origin=(g.origin[0] + 12.0, *g.origin[1:]), direction=g.direction
    )
    moving = Scan(array=remap_contrast(colin_3mm.array)[2:-2], geometry=moving_geometry)
    mask = LabelMap(array=(moving.array > 0).astype(np.uint8), geometry=moving_geometry)
    return colin_3mm, moving, mask


def test_register_carry_labels_fuse_views_and_quality(pair):
    fixed, moving, mask = pair
    options = RegisterFuseOptions(registration=RegistrationOptions(kind="rigid"),
                                  fusion=FusionOptions(method="wavelet"), views=True,
                                  quality=True)
    result = run_to_end(register_and_fuse_job(fixed, moving, options, moving_labels=mask))
    for made in (result.resampled, result.fused, result.checkerboard, result.difference,
                 result.labels):
        assert made is not None
        assert made.shape == fixed.shape
        assert made.geometry == fixed.geometry
    assert result.registration is not None
    assert result.registration.final_metric < result.registration.initial_metric
    brain = fixed.array > 0.1 * fixed.array.max()
    found = result.labels.array > 0
    dice = 2 * np.logical_and(found, brain).sum() / (found.sum() + brain.sum())
    assert dice > 0.9
    # the anatomy 6 mm higher is found: fixed -> moving adds 6 mm to z (ITK order x, y, z)
    moved = np.asarray(result.transform.TransformPoint((0.0, 0.0, 0.0)))
    assert moved[2] == pytest.approx(6.0, abs=1.0)
    assert result.quality is not None
    assert 0.0 < result.quality.qabf <= 1.0

    # the transform reproduces the resampled scan without searching again
    again = run_to_end(register_and_fuse_job(fixed, moving, RegisterFuseOptions(
        registration=RegistrationOptions(kind="none"), transform=result.transform,
        fusion=None), moving_labels=mask))
    assert again.registration is None
    assert again.fused is None  # register only
    assert again.checkerboard is None  # views not asked for
    np.testing.assert_allclose(again.resampled.array, result.resampled.array, atol=1e-3)
    np.testing.assert_array_equal(again.labels.array, result.labels.array)


def test_a_given_transform_goes_with_no_registration(pair):
    fixed, moving, _mask = pair
    from napari_medseg.fusion.transforms import identity_transform

    with pytest.raises(FusionError, match="registration kind none"):
        RegisterFuseOptions(registration=RegistrationOptions(kind="rigid"),
                            transform=identity_transform(3))
    far = Scan(moving.array, Geometry(moving.geometry.spacing, (900.0, 0.0, 0.0),
                                      moving.geometry.direction))
    with pytest.raises(GeometryMismatchError, match="do not overlap"):
        run_to_end(register_and_fuse_job(fixed, far, RegisterFuseOptions(
            registration=RegistrationOptions(kind="none"), transform=identity_transform(3))))
