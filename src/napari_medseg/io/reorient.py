"""Labels on the same voxels as a reference grid, stored in another axis order or direction.

A label map exported by another tool often covers exactly the voxels of the scan it was made
on but in another orientation (TotalSegmentator's NIfTI files are stored RAS, a DICOM series
LPS: the rows are flipped).  :func:`onto_grid` recognises such a grid (every axis of one is
an axis of the other, same step, possibly reversed; the same first and last voxel centres)
and returns the labels transposed and flipped onto the reference grid, without resampling,
so no voxel changes its class.  Anything else is a :class:`GeometryMismatchError`.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import numpy.typing as npt

from napari_medseg.errors import GeometryMismatchError
from napari_medseg.scan import Geometry, LabelMap

#: Tolerance on voxel positions, as a fraction of a voxel.
INDEX_TOLERANCE = 0.01


def onto_grid(labels: LabelMap, geometry: Geometry, shape: tuple[int, ...], *,
              what: str = "the reference") -> npt.NDArray[Any]:
    """``labels.array`` on the grid ``(geometry, shape)`` (a view when it is already there).

    Raises :class:`GeometryMismatchError` naming what differs when the labels do not cover
    exactly the voxels of that grid.
    """
    array = labels.array
    if array.shape == tuple(shape) and labels.geometry.is_close(geometry):
        return array
    ndim = geometry.ndim
    if array.ndim != ndim:
        msg = (f"the labels are {array.ndim}D and {what} is {ndim}D; give labels made on "
               f"{what}")
        raise GeometryMismatchError(msg)
    steps_l = labels.geometry.direction * np.asarray(labels.geometry.spacing)
    steps_t = geometry.direction * np.asarray(geometry.spacing)
    tolerance = INDEX_TOLERANCE * float(np.min(geometry.spacing))
    perm, signs = [], []
    for j in range(ndim):
        match = next(((k, sign) for k in range(ndim) for sign in (1, -1)
                      if np.allclose(sign * steps_l[:, j], steps_t[:, k], atol=tolerance)),
                     (-1, 0))
        perm.append(match[0])
        signs.append(match[1])
    first = geometry.world_to_index(np.asarray(labels.geometry.origin))
    expected_first = [0.0] * ndim
    ok = sorted(perm) == list(range(ndim))
    if ok:
        for j, (k, sign) in enumerate(zip(perm, signs, strict=True)):
            if array.shape[j] != shape[k]:
                ok = False
            expected_first[k] = 0.0 if sign > 0 else float(shape[k] - 1)
        ok = ok and bool(np.allclose(first, expected_first, atol=INDEX_TOLERANCE))
    if not ok:
        difference = labels.geometry.describe_difference(geometry)
        msg = (f"the labels ({'x'.join(map(str, array.shape))}) do not lie on the voxels of "
               f"{what} ({'x'.join(map(str, shape))}): {difference}; resample them onto it "
               "first (napari-medseg fuse --register none) or give the series they were "
               "made on")
        raise GeometryMismatchError(msg)
    inverse = [perm.index(k) for k in range(ndim)]
    moved = np.transpose(array, inverse)
    flips = tuple(k for k in range(ndim) if signs[inverse[k]] < 0)
    return np.flip(moved, axis=flips) if flips else moved
