"""2D images placed by ImagePositionPatient: their order along the normal and the grid they span.

A DICOM series (one slice per file) and a multi-frame file (one volume in one file) both give
every 2D image a position and share one orientation.  They form one regular volume only when
the positions lie one even step apart along the slice normal.  :func:`stack_order` sorts them
along the normal, derives the step from the positions (not from SliceThickness /
SpacingBetweenSlices, which are often wrong) and refuses what is not one regular volume:
repeated positions (echoes, phases, time points), uneven steps (missing slices, gantry tilt;
the message names the gap) and, where asked, positions off the line along the normal.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import numpy.typing as npt

from napari_medseg.errors import DicomSeriesError
from napari_medseg.io.content import checked_geometry
from napari_medseg.scan import Geometry

#: Relative spread of slice steps above which a stack is refused (missing slices, gantry tilt).
MAX_STEP_SPREAD = 0.1


def slice_axes(orientation: npt.NDArray[np.float64], what: str
               ) -> tuple[npt.NDArray[np.float64], npt.NDArray[np.float64],
                          npt.NDArray[np.float64]]:
    """Unit row, column and normal vectors (LPS) of an ImageOrientationPatient; ``what``
    (e.g. ``"DICOM series 'x' in /data"``) names the images in the error."""
    row, col = orientation[:3], orientation[3:]
    normal = np.cross(row, col)
    lengths = (np.linalg.norm(row), np.linalg.norm(col), np.linalg.norm(normal))
    if min(lengths) < 1e-6:
        msg = (f"{what} has an unusable ImageOrientationPatient {orientation.tolist()} (zero "
               "or parallel axes); the files are corrupt")
        raise DicomSeriesError(msg)
    return row / lengths[0], col / lengths[1], normal / lengths[2]


def stack_order(
    positions: npt.NDArray[np.float64],
    orientation: npt.NDArray[np.float64],
    *,
    what: str,
    unit: str = "slices",
    names: Sequence[str] | None = None,
    pixel_spacing: tuple[float, float] = (1.0, 1.0),
    max_off_line: float | None = None,
    split_hint: str = "split the series first",
) -> tuple[npt.NDArray[np.intp], Geometry | None]:
    """Order of ``positions`` (``(N, 3)``, LPS mm, as DICOM lists them) along the normal of
    ``orientation``, and the grid they span (``None`` for a single image).

    ``pixel_spacing`` is (row spacing, column spacing) in mm, as DICOM PixelSpacing lists
    it.  ``names`` (file names, frame numbers) name the images on each side of a gap;
    ``unit`` is what the images are (``"slices"``, ``"frames"``).  With ``max_off_line``
    (mm), positions further than that from the line through the first along the normal
    (a sheared stack) are refused.  Raises :class:`~napari_medseg.errors.DicomSeriesError`.
    """
    row, col, normal = slice_axes(orientation, what)
    dist = positions @ normal
    order = np.argsort(dist, kind="stable")
    if len(order) == 1:
        return order, None
    dist = dist[order]
    steps = np.diff(dist)
    if np.any(steps < 1e-4):
        n_unique = len(np.unique(np.round(dist, 3)))
        msg = (f"{what} has {len(order)} {unit} at only {n_unique} positions (several echoes, "
               f"phases or time points?); napari-medseg reads one 3D volume: {split_hint}")
        raise DicomSeriesError(msg)
    step = float(np.mean(steps))
    worst = int(np.argmax(np.abs(steps - step)))
    label = [str(i + 1) for i in range(len(order))] if names is None else list(names)
    single = unit[:-1] if unit.endswith("s") else unit
    if not np.isfinite(step) or abs(float(steps[worst]) - step) > MAX_STEP_SPREAD * step:
        msg = (f"{what} has irregular {single} positions (steps from {steps.min():.3g} to "
               f"{steps.max():.3g} mm; {steps[worst]:.3g} mm between {single} "
               f"{label[order[worst]]} at {dist[worst]:.6g} mm and {single} "
               f"{label[order[worst + 1]]} at {dist[worst + 1]:.6g} mm along the normal, "
               f"where the median step is {float(np.median(steps)):.3g} mm): {unit} are "
               "missing or the gantry is tilted; complete the series or resample it first")
        raise DicomSeriesError(msg)
    first = positions[order[0]]
    if max_off_line is not None:
        offset = positions - first
        off = np.linalg.norm(offset - np.outer(offset @ normal, normal), axis=1)
        k = int(np.argmax(off))
        if off[k] > max_off_line:
            msg = (f"{what} has {unit} off the line along the slice normal ({single} "
                   f"{label[k]} lies {off[k]:.3g} mm beside it): a sheared stack (gantry "
                   "tilt?) is no regular volume; resample it onto a regular grid first")
            raise DicomSeriesError(msg)
    direction = np.stack([row, col, normal], axis=1)  # ITK: columns are the x, y, z axes
    return order, checked_geometry(what, lambda: Geometry.from_itk(
        spacing=(pixel_spacing[1], pixel_spacing[0], step), origin=first,
        direction=direction.ravel()))

