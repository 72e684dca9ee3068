"""Put a scan or a label map on another grid, through its physical geometry and a transform.

Resampling is SimpleITK's ``ResampleImageFilter``: for every voxel of the reference grid it
takes the voxel's world position, maps it with ``transform`` (fixed -> moving, see
:mod:`napari_medseg.fusion.transforms`; the identity when none) and interpolates the moving
scan there.  With no transform this is the "headers already agree" case: the two scans are
overlaid by their origins, spacings and directions alone.
"""

from __future__ import annotations

from dataclasses import replace
from typing import Any, Literal, overload

import numpy as np
import SimpleITK as sitk

from napari_medseg.geometry.grid import Grid, check_same_ndim
from napari_medseg.io.itk import apply_geometry, scan_to_sitk
from napari_medseg.scan import Geometry, LabelMap, Scan

Interpolation = Literal["linear", "nearest", "bspline"]

_INTERPOLATORS = {
    "linear": sitk.sitkLinear,
    "nearest": sitk.sitkNearestNeighbor,
    "bspline": sitk.sitkBSpline,
}


def reference_image(grid: Grid) -> sitk.Image:
    """An empty SimpleITK image (one byte per voxel) carrying ``grid``; for ``Resample``."""
    image = sitk.Image(list(grid.shape[::-1]), sitk.sitkUInt8)
    apply_geometry(image, grid.geometry)
    return image


@overload
def resample_to(
    moving: Scan,
    reference: Scan | LabelMap | Grid | Geometry,
    *,
    shape: tuple[int, ...] | None = ...,
    transform: sitk.Transform | None = ...,
    interpolation: Interpolation | None = ...,
    default_value: float | None = ...,
) -> Scan: ...


@overload
def resample_to(
    moving: LabelMap,
    reference: Scan | LabelMap | Grid | Geometry,
    *,
    shape: tuple[int, ...] | None = ...,
    transform: sitk.Transform | None = ...,
    interpolation: Interpolation | None = ...,
    default_value: float | None = ...,
) -> LabelMap: ...


def resample_to(
    moving: Scan | LabelMap,
    reference: Scan | LabelMap | Grid | Geometry,
    *,
    shape: tuple[int, ...] | None = None,
    transform: sitk.Transform | None = None,
    interpolation: Interpolation | None = None,
    default_value: float | None = None,
) -> Scan | LabelMap:
    """``moving`` resampled onto the grid of ``reference``.

    Parameters
    ----------
    moving
        A :class:`Scan` (interpolated, ``"linear"`` by default) or a :class:`LabelMap`
        (always ``"nearest"``, so no label value is invented).
    reference
        The target grid: a scan, a label map, a :class:`Grid`, or a bare
        :class:`Geometry` together with ``shape`` (array-axis order).
    transform
        Maps fixed (reference) world points to moving world points, e.g.
        :attr:`RegistrationResult.transform`; ``None`` trusts the headers (identity).
    interpolation
        ``"linear"``, ``"nearest"`` or ``"bspline"`` (cubic).  A linear or cubic result is
        ``float32``; nearest keeps the dtype.
    default_value
        Value of reference voxels that fall outside the moving scan: the moving scan's
        minimum (air, background) by default, ``0`` for label maps.

    Returns
    -------
    A new :class:`Scan` / :class:`LabelMap` on the reference grid; ``moving`` is untouched.
    """
    if isinstance(reference, Geometry):
        if shape is None:
            msg = "resample_to(..., reference=Geometry) needs shape= (array-axis order)"
            raise ValueError(msg)
        grid = Grid(geometry=reference, shape=shape)
    else:
        grid = Grid.of(reference)
    check_same_ndim(grid, moving)
    if transform is not None and transform.GetDimension() != grid.ndim:
        msg = f"a {transform.GetDimension()}D transform cannot resample a {grid.ndim}D scan"
        raise ValueError(msg)

    is_labels = isinstance(moving, LabelMap)
    if interpolation is None:
        interpolation = "nearest" if is_labels else "linear"
    if interpolation not in _INTERPOLATORS:
        msg = f"interpolation must be one of {sorted(_INTERPOLATORS)}, got {interpolation!r}"
        raise ValueError(msg)
    if is_labels and interpolation != "nearest":
        msg = (
            f"label maps are resampled with nearest-neighbour interpolation only "
            f"({interpolation!r} would invent label values between classes)"
        )
        raise ValueError(msg)

    array: Any = moving.array
    if array.dtype == np.bool_:
        array = array.astype(np.uint8)
    if interpolation != "nearest" and array.dtype != np.float32:
        array = array.astype(np.float32)
    if default_value is None:
        default_value = 0.0 if is_labels or array.size == 0 else float(np.min(array))

    image = scan_to_sitk(_with_array(moving, array))
    out = sitk.Resample(
        image,
        reference_image(grid),
        transform if transform is not None else sitk.Transform(grid.ndim, sitk.sitkIdentity),
        _INTERPOLATORS[interpolation],
        float(default_value),
        image.GetPixelID(),
    )
    result = sitk.GetArrayFromImage(out)
    if moving.array.dtype == np.bool_:
        result = result.astype(np.bool_)
    if isinstance(moving, LabelMap):
        return LabelMap(array=result, geometry=grid.geometry, class_names=dict(moving.class_names),
                        display_name=moving.display_name)
    # replace() keeps every other field: modality and how it was told, contrast, name...
    return replace(moving, array=result, geometry=grid.geometry, metadata=dict(moving.metadata))


def _with_array(item: Scan | LabelMap, array: Any) -> Scan | LabelMap:
    if array is item.array:
        return item
    if isinstance(item, LabelMap):
        return LabelMap(array=array, geometry=item.geometry, class_names=dict(item.class_names))
    return replace(item, array=array, metadata={}, source=None)
