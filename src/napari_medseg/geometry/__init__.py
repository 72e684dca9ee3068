"""Geometry services shared by inference, training and fusion: voxel grids and resampling.

Qt-free and torch-free.  A :class:`Grid` is a :class:`~napari_medseg.scan.Geometry` plus an
array shape; :func:`grid_at_spacing` gives the grid of the same box at another spacing (a
checkpoint's ``target_spacing``), :func:`grid_oriented` the same box with axes flipped to a
checkpoint's ``orientation``; :func:`resample_to` puts a scan or a label map on another
grid through the physical geometry and an optional transform.

>>> work = grid_at_spacing(Grid.of(scan), (1.0, 1.0, 1.0))
>>> on_work = resample_to(scan, work)            # linear for scans, nearest for labels
"""

from napari_medseg.geometry.grid import (
    Extent,
    Grid,
    check_overlap,
    check_same_ndim,
    extent_similarity,
    grid_at_spacing,
    grid_oriented,
    overlap_fraction,
    physical_extent,
    require_same_grid,
)
from napari_medseg.geometry.resample import Interpolation, reference_image, resample_to

__all__ = [
    "Extent",
    "Grid",
    "Interpolation",
    "check_overlap",
    "check_same_ndim",
    "extent_similarity",
    "grid_at_spacing",
    "grid_oriented",
    "overlap_fraction",
    "physical_extent",
    "reference_image",
    "require_same_grid",
    "resample_to",
]
