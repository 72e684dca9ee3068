"""Transforms: points in (z, y, x) order, transform files that round-trip and never clobber."""

from __future__ import annotations

import numpy as np
import pytest
import SimpleITK as sitk

from napari_medseg.errors import FusionError, OutputExistsError
from napari_medseg.fusion import load_transform, save_transform, transform_points


def test_transform_points_uses_zyx_order() -> None:
    shift = sitk.TranslationTransform(3, (1.0, 2.0, 3.0))  # ITK x, y, z
    out = transform_points(shift, [[0.0, 0.0, 0.0]])
    np.testing.assert_allclose(out, [[3.0, 2.0, 1.0]])


@pytest.mark.parametrize("suffix", [".tfm", ".h5"])
def test_transform_file_round_trip_and_no_clobber(tmp_path, suffix) -> None:
    affine = sitk.AffineTransform(3)
    affine.SetMatrix((1.0, 0.1, 0.0, 0.0, 1.0, 0.0, 0.0, 0.0, 1.0))
    bspline = sitk.BSplineTransform(3, 3)
    bspline.SetTransformDomainOrigin((0.0, 0.0, 0.0))
    bspline.SetTransformDomainPhysicalDimensions((10.0, 10.0, 10.0))
    bspline.SetTransformDomainMeshSize((2, 2, 2))
    params = np.linspace(-0.5, 0.5, bspline.GetNumberOfParameters())
    bspline.SetParameters(params.tolist())
    composite = sitk.CompositeTransform([affine, bspline])
    path = save_transform(composite, tmp_path / f"t{suffix}")
    back = load_transform(path)
    p = (3.0, 4.0, 5.0)
    np.testing.assert_allclose(back.TransformPoint(p), composite.TransformPoint(p), atol=1e-9)
    before = path.read_bytes()
    with pytest.raises(OutputExistsError):
        save_transform(affine, path)
    assert path.read_bytes() == before
    save_transform(affine, path, overwrite=True)
    assert [q.name for q in tmp_path.iterdir()] == [path.name]  # no temporary left over


def test_transform_file_errors(tmp_path) -> None:
    with pytest.raises(FusionError, match="must end in"):
        save_transform(sitk.Euler3DTransform(), tmp_path / "t.json")
    with pytest.raises(FusionError, match="does not exist"):
        load_transform(tmp_path / "missing.tfm")
    bad = tmp_path / "bad.tfm"
    bad.write_text("not a transform")
    with pytest.raises(FusionError, match="could not be read"):
        load_transform(bad)
