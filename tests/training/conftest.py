"""Small real volumes for training tests: the ICBM152 T1 template at 4 mm with tissue labels."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import numpy as np
import pytest
import torch

from napari_medseg.geometry.grid import Grid
from napari_medseg.geometry.resample import resample_to
from napari_medseg.io import read_scan
from napari_medseg.models import CheckpointSpec, IntensityContract
from napari_medseg.scan import Geometry, LabelMap, Scan

NAMES = {0: "background", 1: "grey matter", 2: "white matter"}


@pytest.fixture(scope="session")
def brain_4mm(shared_data: Path) -> tuple[Scan, LabelMap]:
    """ICBM152 T1 and tissue labels (argmax of background, GM, WM) resampled to 4 mm."""
    folder = shared_data / "brain_template"
    t1 = read_scan(folder / "mni_icbm152_t1_tal_nlin_sym_09a_converted.nii.gz")
    gm = read_scan(folder / "mni_icbm152_gm_tal_nlin_sym_09a_converted.nii.gz").array
    wm = read_scan(folder / "mni_icbm152_wm_tal_nlin_sym_09a_converted.nii.gz").array
    gm, wm = gm.astype(np.int32), wm.astype(np.int32)
    labels = LabelMap(np.argmax(np.stack([255 - gm - wm, gm, wm]), 0).astype(np.uint8),
                      t1.geometry, NAMES)
    g = t1.geometry
    shape = tuple(max(1, round(n * s / 4.0)) for n, s in zip(t1.shape, g.spacing, strict=True))
    grid = Grid(Geometry((4.0, 4.0, 4.0), g.origin, g.direction), shape)
    scan = resample_to(t1, grid, interpolation="linear")
    scan.modality = "MR"
    return scan, resample_to(labels, grid, interpolation="nearest")


def tiny_spec(features: tuple[int, ...] = (8, 16, 32), **kwargs: object) -> CheckpointSpec:
    """A small 3D U-Net spec for the brain tissue classes, MR percentile contract."""
    return CheckpointSpec(
        architecture="unet-3d", spatial_dims=3, in_channels=1, out_channels=3,
        options={"features": list(features)}, class_names=dict(NAMES),
        intensity=[IntensityContract(modality="MR", normalization="percentile",
                                     percentiles=(0.5, 99.5))],
        **kwargs,  # type: ignore[arg-type]
    )


@contextmanager
def torch_threads(n: int) -> Iterator[None]:
    """Torch on ``n`` threads inside the block (the plan's measured steps included, which run
    before a trainer sets its own), restored after it."""
    before = torch.get_num_threads()
    torch.set_num_threads(n)
    try:
        yield
    finally:
        torch.set_num_threads(before)
