"""What a person annotated, and which of it to hold back to measure a training run.

A person labels a few whole slices (reviewed or painted slice by slice), or paints strokes, or
gives a dense label map.  :func:`describe_annotation` finds the array axis the labeled slices
lie across, which slices are wholly labeled and which classes each holds.
:func:`plan_validation` then chooses what the run holds back to measure itself - the only
measurement that tells a model that learned something from one that did not:

* **a whole annotated slice** when there are at least three (an *inner* one, with annotated
  slices on both sides, so that shape interpolation between its neighbours can be scored on
  it too; one whose classes all appear on other slices, so that training still sees every
  class), or, for six or more, two such slices;
* **regions** of the labeled voxels when there are one or two slices or only strokes: for each
  class, the quarter of its voxels at one end of its longest extent (in-plane for slices), with
  the labeled background around them, so that every class is scored.  Two slices are usually
  near the two ends of the structure; holding one of them back would train on one end and
  test on the other (measured: the liver and a kidney of ``ct_abdomen`` from two slices were
  then refused as "learned nothing" though interpolation reached Dice 0.60-0.75);
* **every eighth slice** of a densely labeled volume.

A class that cannot be held back without leaving training without it (present on one slice
only and too small to split) is named in :attr:`ValidationPlan.unmeasured`.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import numpy.typing as npt
from scipy import ndimage

#: A slice counts as annotated when at least this share of its voxels is labeled.
SLICE_FRACTION = 0.9
#: A class needs at least this many labeled voxels to lend some to a region validation.
MIN_REGION_VOXELS = 40
#: Whole annotated slices are held back from this many on (fewer: regions of them).
MIN_SLICES_TO_HOLD_BACK = 3


@dataclass(frozen=True)
class AnnotationLayout:
    """Where the labeled voxels of one volume lie.

    ``axis`` is the array axis the annotated slices lie across (``None`` when no slice is
    wholly labeled, or for a 2D image); ``slices`` the indices of those slices along it;
    ``classes_per_slice`` the foreground classes each holds; ``classes`` every foreground class
    labeled anywhere; ``outside_slices`` the labeled voxels off those slices (strokes);
    ``dense`` whether every voxel is labeled.
    """

    shape: tuple[int, ...]
    axis: int | None
    slices: tuple[int, ...]
    classes_per_slice: Mapping[int, frozenset[int]]
    classes: frozenset[int]
    labeled_voxels: int
    outside_slices: int
    dense: bool

    @property
    def n_slices(self) -> int:
        return len(self.slices)

    def summary(self) -> str:
        """One line for the log: ``"3 annotated slices along axis 0 (12, 14, 16), 1 class"``."""
        if self.dense:
            return f"every voxel labeled, {len(self.classes)} foreground class(es)"
        classes = f"{len(self.classes)} foreground class(es)"
        if self.axis is None or not self.slices:
            return f"{self.labeled_voxels} labeled voxel(s) in strokes, {classes}"
        shown = ", ".join(str(s) for s in self.slices[:8]) + (", ..." if self.n_slices > 8 else "")
        extra = f" and {self.outside_slices} voxel(s) in strokes" if self.outside_slices else ""
        return (f"{self.n_slices} annotated slice(s) along axis {self.axis} ({shown}){extra}, "
                f"{classes}")


def describe_annotation(labeled: npt.NDArray[np.bool_], labels: npt.NDArray[np.integer],
                        *, axis: int | None = None) -> AnnotationLayout:
    """The layout of the labeled voxels ``labeled`` (bool, ``(Z, Y, X)`` or ``(Y, X)``) with
    class values ``labels`` on the same grid.  ``axis``: look for slices across this axis only
    (default: the axis with the most wholly labeled slices, axis 0 on a tie)."""
    labeled = np.asarray(labeled, dtype=bool)
    values = np.where(labeled, labels, 0)
    classes = frozenset(int(v) for v in np.unique(values[labeled]) if v > 0)
    total = int(labeled.sum())
    dense = bool(labeled.all())
    if labeled.ndim != 3:
        return AnnotationLayout(tuple(labeled.shape), None, (), {}, classes, total, total, dense)
    best_axis, best = None, np.zeros(0, dtype=int)
    for a in ([axis] if axis is not None else [0, 1, 2]):
        other = tuple(i for i in range(3) if i != a)
        fraction = labeled.mean(axis=other)
        full = np.flatnonzero(fraction >= SLICE_FRACTION)
        if full.size > best.size:
            best_axis, best = a, full
    if dense:
        best_axis, best = 0, np.arange(labeled.shape[0])
    per_slice: dict[int, frozenset[int]] = {}
    on_slices = np.zeros(labeled.shape, dtype=bool)
    if best_axis is not None:
        for s in best:
            plane = np.take(values, int(s), axis=best_axis)
            per_slice[int(s)] = frozenset(int(v) for v in np.unique(plane) if v > 0)
        index: list[Any] = [slice(None)] * 3
        index[best_axis] = best
        on_slices[tuple(index)] = True
    outside = int((labeled & ~on_slices).sum())
    return AnnotationLayout(
        shape=tuple(labeled.shape), axis=best_axis, slices=tuple(int(s) for s in best),
        classes_per_slice=per_slice, classes=classes, labeled_voxels=total,
        outside_slices=outside, dense=dense)


@dataclass
class ValidationPlan:
    """What a run holds back from training to measure itself.

    ``mask`` (bool, on the volume's grid) marks the held-back labeled voxels; ``kind`` is
    ``"slices"``, ``"regions"`` or ``"none"``; ``slices`` the held-back slice indices along
    ``axis``; ``neighbours`` maps each held-back slice to the annotated training slices on
    either side (for the interpolation baseline), when it has both; ``measured`` and
    ``unmeasured`` the foreground classes that are / cannot be scored; ``reason`` one line for
    the person.
    """

    kind: str
    mask: npt.NDArray[np.bool_]
    axis: int | None = None
    slices: tuple[int, ...] = ()
    neighbours: dict[int, tuple[int, int]] = field(default_factory=dict)
    measured: frozenset[int] = frozenset()
    unmeasured: frozenset[int] = frozenset()
    reason: str = ""

    @property
    def voxels(self) -> int:
        return int(self.mask.sum())


def _slice_plan(layout: AnnotationLayout, labeled: npt.NDArray[np.bool_],
                strokes: frozenset[int]) -> ValidationPlan | None:
    """Hold back whole annotated slices whose classes all remain elsewhere, inner ones first."""
    slices = list(layout.slices)
    if layout.axis is None or len(slices) < MIN_SLICES_TO_HOLD_BACK:
        return None
    n_hold = 2 if len(slices) >= 6 else 1
    middle = (slices[0] + slices[-1]) / 2

    def rest_classes(held: set[int]) -> frozenset[int]:
        out: set[int] = set(strokes)
        for s in slices:
            if s not in held:
                out |= layout.classes_per_slice[s]
        return frozenset(out)

    candidates = []
    for i, s in enumerate(slices):
        inner = 0 < i < len(slices) - 1
        keeps_all = rest_classes({s}) >= layout.classes
        n_classes = len(layout.classes_per_slice[s])
        candidates.append((not keeps_all, not inner, -n_classes, abs(s - middle), s))
    candidates.sort()
    held: list[int] = []
    for keeps_missing, _outer, _n, _d, s in candidates:
        if keeps_missing:
            continue
        if rest_classes({*held, s}) >= layout.classes and not any(
                abs(s - h) <= 1 for h in held):
            held.append(s)
        if len(held) == n_hold:
            break
    if not held:
        return None
    held.sort()
    mask = np.zeros(layout.shape, dtype=bool)
    index: list[Any] = [slice(None)] * 3
    index[layout.axis] = held
    mask[tuple(index)] = True
    mask &= labeled
    neighbours = {}
    for s in held:
        before = [t for t in slices if t < s and t not in held]
        after = [t for t in slices if t > s and t not in held]
        if before and after:
            neighbours[s] = (before[-1], after[0])
    measured = frozenset().union(*(layout.classes_per_slice[s] for s in held))
    shown = ", ".join(str(s) for s in held)
    return ValidationPlan(
        kind="slices", mask=mask, axis=layout.axis, slices=tuple(held), neighbours=neighbours,
        measured=measured, unmeasured=layout.classes - measured,
        reason=f"annotated slice(s) {shown} held back to measure the model on a slice it has "
               "not seen")


def _region_plan(layout: AnnotationLayout, labeled: npt.NDArray[np.bool_],
                 labels: npt.NDArray[np.integer]) -> ValidationPlan:
    """For each class, the quarter of its labeled voxels at one end of its longest extent,
    with the labeled background within a few voxels of them."""
    mask = np.zeros(layout.shape, dtype=bool)
    measured, unmeasured = set(), set()
    for c in sorted(layout.classes):
        voxels = labeled & (labels == c)
        coords = np.argwhere(voxels)
        if len(coords) < MIN_REGION_VOXELS:
            unmeasured.add(c)
            continue
        extent = coords.max(0) - coords.min(0)
        if layout.axis is not None and layout.slices:
            extent[layout.axis] = -1  # a part of every annotated slice, not one whole slice
        axis = int(np.argmax(extent))
        cut = np.quantile(coords[:, axis], 0.75)
        chosen = coords[coords[:, axis] > cut]
        if len(chosen) == 0 or len(chosen) == len(coords):
            unmeasured.add(c)
            continue
        region = np.zeros(layout.shape, dtype=bool)
        region[tuple(chosen.T)] = True
        mask |= region
        measured.add(c)
    if mask.any():
        around = ndimage.binary_dilation(mask, iterations=4)
        mask = around & labeled & ((labels == 0) | mask)
    if not mask.any():
        # background only: hold back a corner block of the labeled voxels
        coords = np.argwhere(labeled)
        if len(coords) >= 2 * MIN_REGION_VOXELS:
            axis = int(np.argmax(coords.max(0) - coords.min(0)))
            cut = np.quantile(coords[:, axis], 0.8)
            mask[tuple(coords[coords[:, axis] > cut].T)] = True
    if not mask.any():
        return ValidationPlan(kind="none", mask=mask, unmeasured=layout.classes,
                              reason="too few labeled voxels to hold some back")
    names = "every class" if not unmeasured else "all but the smallest class(es)"
    return ValidationPlan(
        kind="regions", mask=mask, measured=frozenset(measured),
        unmeasured=frozenset(unmeasured),
        reason=f"a region of each class held back ({names}): the annotation has fewer than "
               f"{MIN_SLICES_TO_HOLD_BACK} whole slices")


def plan_validation(layout: AnnotationLayout, labeled: npt.NDArray[np.bool_],
                    labels: npt.NDArray[np.integer]) -> ValidationPlan:
    """Choose the held-back voxels of one volume (see the module docstring)."""
    labeled = np.asarray(labeled, dtype=bool)
    if layout.dense and layout.axis is not None:
        n = layout.shape[layout.axis]
        held = tuple(range(3, n, 8)) or (n // 2,)
        if n < 4:
            return _region_plan(layout, labeled, labels)
        mask = np.zeros(layout.shape, dtype=bool)
        index: list[Any] = [slice(None)] * 3
        index[layout.axis] = list(held)
        mask[tuple(index)] = True
        measured = frozenset(int(v) for v in np.unique(labels[mask]) if v > 0)
        return ValidationPlan(kind="slices", mask=mask, axis=layout.axis, slices=held,
                              measured=measured, unmeasured=layout.classes - measured,
                              reason="every eighth slice held back to measure the model")
    strokes: frozenset[int] = frozenset()
    if layout.outside_slices and layout.axis is not None:
        on = np.zeros(layout.shape, dtype=bool)
        index = [slice(None)] * 3
        index[layout.axis] = list(layout.slices)
        on[tuple(index)] = True
        off = labeled & ~on
        strokes = frozenset(int(v) for v in np.unique(labels[off]) if v > 0)
    plan = _slice_plan(layout, labeled, strokes)
    if plan is not None:
        return plan
    return _region_plan(layout, labeled, labels)


def slices_holding_labels(labels: npt.NDArray[np.integer], axis: int = 0
                          ) -> npt.NDArray[np.bool_]:
    """Bool mask of every slice across ``axis`` that holds a foreground label, whole: what a
    person who painted a few slices of a new Labels layer annotated (the unpainted voxels of
    those slices are background; the other slices are unlabeled).  A 2D image: all of it when
    it holds a label."""
    labels = np.asarray(labels)
    if labels.ndim != 3:
        return np.full(labels.shape, bool(labels.any()))
    other = tuple(i for i in range(3) if i != axis)
    held = np.asarray(labels != 0).any(axis=other)
    shape = [1, 1, 1]
    shape[axis] = labels.shape[axis]
    return np.broadcast_to(held.reshape(shape), labels.shape).copy()
