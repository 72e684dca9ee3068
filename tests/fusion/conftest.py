"""Shared fixtures: real brains from the data root (``tests/data_root.py``), downsampled so tests
stay fast."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import SimpleITK as sitk

from napari_medseg.io.itk import scan_to_sitk, sitk_to_scan
from napari_medseg.scan import Geometry, Scan
from tests.data_root import SHARED_DATA, missing_reason

DATA = SHARED_DATA
COLIN = DATA / "colin27" / "ch2bet.nii.gz"
TEMPLATE = DATA / "brain_template" / "mni_icbm152_t1_tal_nlin_sym_09a_converted.nii.gz"


def read_real(path: Path) -> Scan:
    """A real scan from the shared data folder, or a clean skip when it is absent."""
    if not path.is_file():
        pytest.skip(missing_reason())
    return sitk_to_scan(sitk.ReadImage(str(path), sitk.sitkFloat32), modality="MR")


def downsample(scan: Scan, spacing_mm: float) -> Scan:
    """Gaussian anti-aliasing then resampling to isotropic ``spacing_mm`` over the same box."""
    image = scan_to_sitk(scan)
    sigma = 0.5 * spacing_mm
    image = sitk.SmoothingRecursiveGaussian(image, sigma)
    size = [
        max(1, round(n * s / spacing_mm))
        for n, s in zip(image.GetSize(), image.GetSpacing(), strict=True)
    ]
    out = sitk.Resample(
        image,
        size,
        sitk.Transform(),
        sitk.sitkLinear,
        image.GetOrigin(),
        (spacing_mm,) * image.GetDimension(),
        image.GetDirection(),
        0.0,
        sitk.sitkFloat32,
    )
    return sitk_to_scan(out, modality="MR")


def remap_contrast(array: np.ndarray) -> np.ndarray:
    """A second "contrast" of a skull-stripped T1: brain intensities inverted (T2-like),
    background kept dark, so that the relation is not monotonic and MI is needed."""
    inside = array > 0.05 * float(array.max())
    out = np.where(inside, 1.2 * float(array.max()) - array, 0.0)
    return out.astype(np.float32)


@pytest.fixture(scope="session")
def colin_3mm() -> Scan:
    return downsample(read_real(COLIN), 3.0)


@pytest.fixture(scope="session")
def template_3mm() -> Scan:
    return downsample(read_real(TEMPLATE), 3.0)


def make_scan(array: np.ndarray, spacing: float = 1.0, origin: float = 0.0) -> Scan:
    """A scan on an axis-aligned grid with isotropic ``spacing`` and ``origin`` on every axis."""
    nd = array.ndim
    geometry = Geometry(spacing=(spacing,) * nd, origin=(origin,) * nd, direction=np.eye(nd))
    return Scan(array=array, geometry=geometry)
