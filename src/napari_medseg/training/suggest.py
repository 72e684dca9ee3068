"""Which slice to correct next: the slices where the model is least sure, after a training run.

For each slice across the annotation axis that nobody annotated, the *expected number of wrong
voxels* under the model's own probabilities, ``sum(1 - max_k p_k)``, plus the voxels where the
model and shape interpolation between the annotated slices disagree (a disagreement is where
one of them is wrong).  The slices with the highest counts come first: correcting one of them
teaches the next run the most, as uncertainty sampling does in active learning.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt


@dataclass(frozen=True)
class SliceSuggestion:
    """Slice ``index`` across array ``axis``: ``uncertain`` expected wrong voxels,
    ``disagreeing`` voxels where the model and interpolation differ; ``score`` their sum."""

    axis: int
    index: int
    uncertain: float
    disagreeing: int

    @property
    def score(self) -> float:
        return self.uncertain + self.disagreeing

    def describe(self) -> str:
        parts = [f"about {self.uncertain:.0f} uncertain voxel(s)"]
        if self.disagreeing:
            parts.append(f"{self.disagreeing} where it disagrees with interpolation")
        return f"slice {self.index}: " + ", ".join(parts)


def rank_slices(axis: int, annotated: Sequence[int], *,
                probabilities: npt.NDArray[np.floating] | None = None,
                labels: npt.NDArray[np.integer] | None = None,
                interpolated: npt.NDArray[np.integer] | None = None,
                inside: npt.NDArray[np.bool_] | None = None,
                limit: int = 5) -> list[SliceSuggestion]:
    """The ``limit`` most useful slices to correct next, best first.

    ``probabilities`` ``(K, Z, Y, X)`` (any float dtype); ``labels`` the model's labels and
    ``interpolated`` the interpolation's, compared where ``inside`` (the slices interpolation
    covers).  Either source may be missing; slices in ``annotated`` are never suggested.
    """
    if probabilities is None and labels is None:
        return []
    shape = probabilities.shape[1:] if probabilities is not None else labels.shape  # type: ignore[union-attr]
    n = shape[axis]
    other = tuple(i for i in range(len(shape)) if i != axis)
    uncertain = np.zeros(n)
    if probabilities is not None:
        for start in range(0, n, 8):  # in slabs: float32 copies stay small
            index = [slice(None)] * len(shape)
            index[axis] = slice(start, min(n, start + 8))
            slab = np.asarray(probabilities[(slice(None), *index)], dtype=np.float32)
            uncertain[start:start + slab.shape[1 + axis]] = (1.0 - slab.max(axis=0)).sum(
                axis=other)
    disagreeing = np.zeros(n, dtype=np.int64)
    if labels is not None and interpolated is not None:
        differ = labels != interpolated
        if inside is not None:
            differ &= inside
        disagreeing = differ.sum(axis=other)
    skip = {int(s) for s in annotated}
    found = [SliceSuggestion(axis=axis, index=i, uncertain=float(uncertain[i]),
                             disagreeing=int(disagreeing[i]))
             for i in range(n) if i not in skip]
    found = [f for f in found if f.score > 0]
    found.sort(key=lambda f: -f.score)
    return found[:limit]
