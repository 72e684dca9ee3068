"""Which part of the body a scan shows: head, chest or abdomen, from landmarks a CT shows
plainly (and, for MR, the body's size).

CT, on a ~4 mm grid of the largest body region (HU > -400, holes filled per slice):

* **chest**: air inside the body (HU < -500: the lungs) fills over 15 % of the body's cross
  section on at least 40 % of the slices;
* **head**: bone (HU > 300) is over 8 % of the body and its median cross section under
  400 cm² (a skull);
* **abdomen**: a cross section over 300 cm², little bone, and lungs on under 20 % of slices.

Measured on the shared data: the abdominal CTs 722 and 829 cm², bone 0.6 and 2.7 %, no lung
slice; the head CT 228 cm², bone 17 %.  MR (no bone, no HU): a body under 230 mm across is a
head, over 280 mm an abdomen (:func:`body_size_mm`: brains
168-190 mm, abdomens 307-354 mm); anything else is ``unknown`` and no region rule applies.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import numpy as np
import numpy.typing as npt
from scipy import ndimage

from napari_medseg.scan import Scan

REGIONS = ("head", "chest", "abdomen")
#: Voxels sampled (at most) for intensity percentiles; edge (mm) of the grid the body is
#: measured on; CT body threshold (HU).
_SAMPLE = 1_000_000
_BODY_GRID_MM = 4.0
_CT_BODY_HU = -500.0


def _sample(array: npt.NDArray[Any]) -> npt.NDArray[np.float32]:
    flat = array.ravel()
    return np.asarray(flat[:: max(1, flat.size // _SAMPLE)], dtype=np.float32)


def body_threshold(values: npt.NDArray[Any], modality: str) -> float:
    """Intensity above which a voxel is body (foreground): -500 HU for CT, otherwise 10 % of
    the way from the 0.5th to the 99.5th percentile (above air, noise and zero padding)."""
    if modality == "CT":
        return _CT_BODY_HU
    lo, hi = (float(v) for v in np.percentile(values, (0.5, 99.5)))
    return lo + 0.1 * (hi - lo)


def body_size_mm(scan: Scan, modality: str | None = None) -> float:
    """Size (mm) of the largest connected body region: the geometric mean of its two largest
    extents along the array axes (in-plane width and depth for an axial slab, whatever its
    thickness).

    Measured on a ~4 mm grid after a one-voxel erosion (which cuts thin links such as a CT
    headrest), the erosion added back.  Arms down beside an abdomen widen it less than its
    largest extent would: the shared data's two abdominal CTs (one with its arms down) give
    307 and 354 mm, its head CT 190 mm, the ICBM152 brain 168 mm.
    """
    sub, mm = _on_grid(scan)
    mask = sub > body_threshold(_sample(sub), modality or scan.modality)
    eroded = ndimage.binary_erosion(mask)
    grown = 0
    if eroded.any():
        mask, grown = eroded, 2
    largest = _largest(mask)
    if largest is None:
        return 0.0
    box = ndimage.find_objects(largest.astype(np.int8))[0]
    extents = sorted(((b.stop - b.start + grown) * mm[i] for i, b in enumerate(box)),
                     reverse=True)
    return float(math.sqrt(extents[0] * extents[1])) if len(extents) > 1 else float(extents[0])


@dataclass(frozen=True)
class BodyRegion:
    """``name`` (one of :data:`REGIONS`, or ``unknown``) and the measures behind it."""

    name: str
    reason: str

    @property
    def known(self) -> bool:
        return self.name in REGIONS


def body_region(scan: Scan) -> BodyRegion:
    """The body region ``scan`` shows (see the module docstring)."""
    if scan.array.ndim != 3:
        return BodyRegion("unknown", "a 2D image")
    if scan.modality == "CT":
        return _ct_region(scan)
    if scan.modality == "MR":
        size = body_size_mm(scan, "MR")
        if 0 < size < 230:
            return BodyRegion("head", f"the body is {size:.0f} mm across")
        if size > 280:
            return BodyRegion("abdomen", f"the body is {size:.0f} mm across")
        return BodyRegion("unknown", f"the body is {size:.0f} mm across")
    return BodyRegion("unknown", f"no region rule for {scan.modality}")


def _on_grid(scan: Scan) -> tuple[npt.NDArray[Any], npt.NDArray[np.float64]]:
    """The scan sampled on a ~:data:`_BODY_GRID_MM` grid, and that grid's spacing (mm)."""
    spacing = np.asarray(scan.spacing, dtype=np.float64)
    step = np.maximum(1, np.round(_BODY_GRID_MM / spacing)).astype(int)
    sub = np.asarray(scan.array[tuple(slice(None, None, int(k)) for k in step)])
    return sub, spacing * step


def _largest(mask: npt.NDArray[np.bool_]) -> npt.NDArray[np.bool_] | None:
    """The largest connected part of ``mask`` (``None`` when it is empty)."""
    labels, n = ndimage.label(mask)
    if n == 0:
        return None
    return np.asarray(labels == 1 + int(np.argmax(np.bincount(labels.ravel())[1:])))


def _ct_region(scan: Scan) -> BodyRegion:
    sub, mm = _on_grid(scan)
    sub = sub.astype(np.float32)
    largest = _largest(ndimage.binary_erosion(sub > -400))
    if largest is None:
        return BodyRegion("unknown", "no body found")
    body = ndimage.binary_dilation(largest)
    filled = np.stack([ndimage.binary_fill_holes(plane) for plane in body])
    per_slice = filled.sum(axis=(1, 2))
    cm2 = per_slice * mm[1] * mm[2] / 100.0
    kept = cm2 > 10
    if not kept.any():
        return BodyRegion("unknown", "no body cross section over 10 cm²")
    lungs = (filled & (sub < -500)).sum(axis=(1, 2)) / np.maximum(per_slice, 1)
    lung_share = float((lungs[kept] > 0.15).mean())
    bone = float((filled & (sub > 300)).sum() / max(filled.sum(), 1))
    area = float(np.median(cm2[kept]))
    said = (f"lungs on {100 * lung_share:.0f} % of slices, bone {100 * bone:.1f} % of the "
            f"body, cross section {area:.0f} cm²")
    if lung_share >= 0.4:
        return BodyRegion("chest", said)
    if bone > 0.08 and area < 400:
        return BodyRegion("head", said)
    if area > 300 and lung_share < 0.2 and bone < 0.08:
        return BodyRegion("abdomen", said)
    return BodyRegion("unknown", said)
