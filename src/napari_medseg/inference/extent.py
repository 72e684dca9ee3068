"""How far a mask grown from a few painted slices may reach past the first and last of them.

Between painted slices, the person's own slices bound the mask on both sides; past the last
one nothing does.  A network trained on those slices keeps following whatever looks alike and
touches the object - a nodule's mask runs up the vessels leaving it, an adrenal gland's down the
vena cava beside it - and the connectivity rules of :mod:`.combine` keep such a strand, because
it *is* connected.  No library does this check; it is written here, on SciPy's distance
transform and labelling.

Past each end painted slice of each class, the mask is followed slice by slice outwards and a
cross-section is kept only where an object that ends there could be:

* **inside the cone** of the painted outline: at most :data:`CONE_SLOPE` mm per mm along the
  axis plus :data:`CONE_RADII` of the outline's equivalent radius away from it - a strand
  leaving sideways is cut (the cone is wide because objects shift between thick slices: the
  brain1 lesion moves 21 mm between two 6.5 mm slices);
* **touching** what was kept on the slice before (the object does not jump);
* **not swelling** past :data:`GROW` times the largest cross-section painted (an end does
  not widen into another structure; an object may widen again past a narrow painted slice -
  a lesion painted on one slice did, and lost half its volume to a stricter rule);
* **not a long thin strand**: a cross-section under :data:`THIN` of the end outline is the
  object's tip, and a tip stays thin for at most :data:`THIN_REACH` of the outline's radius
  (one slice at least) - a strand going straight on, inside the cone, is cut there.

Geometry alone cannot tell every leak from an object that goes on: a vessel wider than the
object and beside it stays inside the cone for a slice or two (the adrenal gland and the vena
cava of the tests, before the first painted slice).  The rules were set so that real organs and
lesions painted on the shared data's protocol slices, or on one slice, lose nothing.

Only the 3D pieces of a class that touch the person's labels on the end slice are followed;
what the guard removes is returned as :class:`Cut` records, so that the status can say where
the mask was stopped and the person can look there.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt
from scipy import ndimage

#: mm a cross-section may reach past the painted outline per mm along the axis ...
CONE_SLOPE = 2.0
#: ... plus this many of the end outline's equivalent radii (a thick slice's object shifts)
CONE_RADII = 1.0
#: a cross-section may hold at most this many times the voxels of the largest painted one
GROW = 2.0
#: a cross-section under this share of the end painted outline's voxels is thin ...
THIN = 0.25
#: ... and an object's end stays thin for at most this many of the outline's equivalent
#: radii along the axis (at least one slice): a thin strand going on is a vessel, a duct
THIN_REACH = 0.5


@dataclass(frozen=True)
class Cut:
    """Voxels of class ``label`` removed past painted slice ``painted`` (``after``: at higher
    indices), on slices ``first``..``last``; ``why`` in words."""

    label: int
    painted: int
    after: bool
    first: int
    last: int
    voxels: int
    why: str

    def describe(self, names: dict[int, str] | None = None) -> str:
        name = (names or {}).get(self.label, f"label {self.label}")
        where = f"slice {self.first}" if self.first == self.last else (
            f"slices {min(self.first, self.last)}-{max(self.first, self.last)}")
        side = "after" if self.after else "before"
        return (f"left out {self.voxels} voxel(s) of '{name}' that went on {side} your painted "
                f"slice {self.painted} ({where}: {self.why})")


def guard_extent(mask: npt.NDArray[np.integer], labels: npt.NDArray[np.integer],
                 labeled: npt.NDArray[np.bool_], axis: int, slices: tuple[int, ...],
                 spacing: tuple[float, ...]) -> tuple[npt.NDArray[np.integer], list[Cut]]:
    """``mask`` with what reaches past each class's end painted slices stopped as the module
    says, and what was removed.  ``labels``/``labeled``: the person's labels and where they
    are trusted; ``slices``: the whole painted slices across ``axis``; ``spacing`` in mm."""
    out = np.moveaxis(np.array(mask, copy=True), axis, 0)
    own = np.moveaxis(np.where(labeled, labels, 0), axis, 0)
    plane = tuple(float(s) for i, s in enumerate(spacing) if i != axis)
    step = float(spacing[axis])
    cuts: list[Cut] = []
    for c in (int(v) for v in np.unique(own[list(slices)]) if v > 0):
        painted = [s for s in sorted(slices) if (own[s] == c).any()]
        if not painted:
            continue
        pieces, _ = ndimage.label(out == c)
        largest = max(int((own[s] == c).sum()) for s in painted)
        for end, direction in ((painted[-1], 1), (painted[0], -1)):
            footprint = own[end] == c
            touched = np.unique(pieces[end][footprint & (pieces[end] > 0)])
            attached = np.isin(pieces, touched[touched > 0])
            cut = _follow(out, attached, c, footprint, largest, end, direction, plane, step)
            if cut is not None:
                cuts.append(cut)
    return np.moveaxis(out, 0, axis), cuts


def _follow(out: npt.NDArray[np.integer], attached: npt.NDArray[np.bool_], c: int,
            footprint: npt.NDArray[np.bool_], largest: int, end: int, direction: int,
            plane: tuple[float, ...], step: float) -> Cut | None:
    """Walk from painted slice ``end`` in ``direction``, trimming ``out`` in place
    (``largest``: the most voxels of the class on one painted slice)."""
    from_outline = ndimage.distance_transform_edt(~footprint, sampling=plane)
    area = int(footprint.sum())
    radius = math.sqrt(area * float(np.prod(plane)) / math.pi)
    thin_slices = max(1, int(THIN_REACH * radius // step))
    previous = footprint
    removed = 0
    trimmed: list[int] = []
    why = ""
    k = 1
    thin_run = 0
    s = end + direction
    while 0 <= s < out.shape[0]:
        here = attached[s] & (out[s] == c)
        if not here.any():
            break
        inside = here & (from_outline <= CONE_SLOPE * step * k + CONE_RADII * radius)
        parts, _ = ndimage.label(inside)
        near = ndimage.binary_dilation(previous, iterations=1)
        ids = np.unique(parts[near & (parts > 0)])
        kept = np.isin(parts, ids[ids > 0])
        n = int(kept.sum())
        thin_run = thin_run + 1 if 0 < n < THIN * area else 0
        if n > GROW * largest:
            kept[:] = False
            why = why or "it widens there instead of ending"
        elif thin_run > thin_slices:
            kept[:] = False
            why = why or "it goes on as a thin strand, longer than an object's end"
        elif not why and (here & ~kept).any():
            why = "it leaves the outline you painted sideways"
        drop = here & ~kept
        if drop.any():
            out[s][drop] = 0
            removed += int(drop.sum())
            trimmed.append(s)
        if not kept.any():
            # nothing left to follow: the rest of the strand goes too
            rest = _beyond(s, direction, out.shape[0])
            gone = attached[rest] & (out[rest] == c)
            if gone.any():
                removed += int(gone.sum())
                hit = np.arange(out.shape[0])[rest][gone.any(axis=(1, 2))]
                trimmed.extend(int(i) for i in hit)
                out[rest][gone] = 0  # a basic slice of ``out``: a view, written in place
            break
        previous = kept
        k += 1
        s += direction
    if not removed:
        return None
    last = max(trimmed) if direction > 0 else min(trimmed)
    return Cut(label=c, painted=end, after=direction > 0, first=trimmed[0], last=last,
               voxels=removed, why=why)


def _beyond(s: int, direction: int, n: int) -> slice:
    """The slices past ``s`` in ``direction`` (as a slice of the first axis)."""
    return slice(s + 1, n) if direction > 0 else slice(0, s)
