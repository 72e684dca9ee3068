"""The whole-volume mask of the scan a model was trained on: the network's labels combined with
what the person's annotation already says, by a rule chosen on held-back slices.

A network trained from a few slices of one scan finds the structure on the other slices, and
also look-alikes far from it (another kidney, a bright vessel three centimetres away); shape
interpolation between the annotated slices is exact next to them and blind beyond them.  So the
mask of *this* scan is built by one of four rules:

``network``
    the network's labels as they are;
``connected``
    of each class, only the 3D connected pieces that touch a voxel the person labeled with
    that class (pieces the person never touched are look-alikes);
``connected+interpolation``
    ``connected``, plus the interpolated labels between the first and last annotated slices
    where the network found background;
``interpolation``
    interpolation alone (the no-learning baseline).

:func:`choose_rule` scores every rule on the held-back voxels (the network of that moment has
not seen them, and neither the connectivity seeds nor the interpolation use them) and takes the
best, preferring the simpler one within :data:`TIE`; so the mask is never worse than
interpolation on what was measured.  :func:`apply_rule` then builds the mask with the final
network and every annotation, and writes the person's own labels back where they labeled.

Past the first and last painted slices nothing the person painted bounds the network's
labels, so every rule's mask is stopped there where an object ending at the painted slice
could not be (:mod:`.extent`: a strand leaving sideways, widening, or going on too far);
:func:`build_mask` also returns what was stopped, for the status line.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

import numpy as np
import numpy.typing as npt
from scipy import ndimage

from napari_medseg.geometry.interpolation import interpolate_slices, interpolation_range
from napari_medseg.inference.extent import Cut, guard_extent
from napari_medseg.models.scan_annotation import RULES

# RULES (in the order ties are broken) is defined beside the checkpoint record that stores a
# rule, models.scan_annotation, so that the two cannot drift apart.
#: Two rules within this Dice of each other count as equal (the earlier in RULES wins).
TIE = 0.005
#: When interpolation cannot be measured (two annotated slices: holding one back leaves one),
#: a network scoring at least this on the held-back slice is trusted with
#: ``connected+interpolation``; below it the mask is ``interpolation``.
TRUST_NETWORK = 0.5
DESCRIPTIONS = {
    "network": "the network's labels",
    "connected": "the network's labels connected to what you annotated",
    "connected+interpolation": "the network's labels connected to what you annotated, "
                               "completed by shape interpolation between your slices",
    "interpolation": "shape interpolation between your slices (the network did worse)",
}


def keep_connected(labels: npt.NDArray[np.integer], seeds: npt.NDArray[np.integer],
                   seed_mask: npt.NDArray[np.bool_]) -> npt.NDArray[np.integer]:
    """``labels`` with, for each class, only the 3D pieces (face-connected) holding a voxel where
    ``seed_mask`` is set and ``seeds`` has that class; other pieces become background."""
    out = np.array(labels, copy=True)
    for c in np.unique(labels):
        if c == 0:
            continue
        pieces, n = ndimage.label(labels == c)
        if n == 0:
            continue
        touched = np.unique(pieces[seed_mask & (seeds == c) & (pieces > 0)])
        drop = ~np.isin(pieces, touched) & (pieces > 0)
        out[drop] = 0
    return out


def with_interpolation(labels: npt.NDArray[np.integer], interpolated: npt.NDArray[np.integer],
                       inside: npt.NDArray[np.bool_]) -> npt.NDArray[np.integer]:
    """``labels`` where they are foreground, else the interpolated labels inside ``inside``."""
    fill = inside & (labels == 0) & (interpolated > 0)
    return np.where(fill, interpolated, labels).astype(labels.dtype)


@dataclass(frozen=True)
class Annotation:
    """The person's labels as the rules use them: ``labels`` with ``labeled`` voxels trusted,
    and the annotated ``slices`` across ``axis`` (``None``/empty: no whole slice)."""

    labels: npt.NDArray[np.integer]
    labeled: npt.NDArray[np.bool_]
    axis: int | None
    slices: tuple[int, ...]
    spacing: tuple[float, ...]
    #: the interpolation, computed once (the mask rules, the slice ranking and the unsure
    #: slices all ask for it)
    _interpolated: list[tuple[npt.NDArray[np.integer], npt.NDArray[np.bool_]] | None] = field(
        default_factory=list, init=False, repr=False, compare=False)

    def interpolated(self) -> tuple[npt.NDArray[np.integer], npt.NDArray[np.bool_]] | None:
        """Interpolated labels and the slices they cover, or ``None`` (fewer than 2 slices)."""
        if not self._interpolated:
            self._interpolated.append(self._interpolate())
        return self._interpolated[0]

    def _interpolate(self) -> tuple[npt.NDArray[np.integer], npt.NDArray[np.bool_]] | None:
        if self.axis is None or len(self.slices) < 2:
            return None
        values = np.where(self.labeled, self.labels, 0)
        interpolated = interpolate_slices(values, self.slices, self.axis,
                                          spacing=tuple(self.spacing))
        return interpolated, interpolation_range(self.labels.shape, self.slices, self.axis)


def stop_at_ends(mask: npt.NDArray[np.integer], annotation: Annotation
                 ) -> tuple[npt.NDArray[np.integer], list[Cut]]:
    """``mask`` stopped past the first and last painted slices where an object ending there
    could not be (:func:`.extent.guard_extent`), and what was removed; unchanged without
    whole painted slices."""
    if annotation.axis is None or not annotation.slices or mask.ndim != 3:
        return mask, []
    return guard_extent(mask, annotation.labels, annotation.labeled, annotation.axis,
                        annotation.slices, annotation.spacing)


def candidates(network: npt.NDArray[np.integer], annotation: Annotation
               ) -> dict[str, npt.NDArray[np.integer]]:
    """The mask of every rule that applies (``interpolation`` rules need two slices)."""
    out = {rule: rule_mask(rule, network, annotation)[0] for rule in ("network", "connected")}
    interpolated = annotation.interpolated()
    if interpolated is not None:
        out["connected+interpolation"] = with_interpolation(out["connected"], *interpolated)
        out["interpolation"] = rule_mask("interpolation", network, annotation)[0]
    return out


def rule_mask(rule: str, network: npt.NDArray[np.integer], annotation: Annotation
              ) -> tuple[npt.NDArray[np.integer], list[Cut]]:
    """The mask of ``rule`` before the person's labels are written back, and what
    :func:`stop_at_ends` cut from it; only that rule's mask is computed (an interpolation
    rule without two painted slices is ``connected``)."""
    if rule == "network":
        return stop_at_ends(network, annotation)
    interpolated = annotation.interpolated()
    if rule == "interpolation" and interpolated is not None:
        values, inside = interpolated
        return np.where(inside, values, 0).astype(network.dtype), []
    connected, cuts = stop_at_ends(
        keep_connected(network, annotation.labels, annotation.labeled), annotation)
    if rule == "connected+interpolation" and interpolated is not None:
        return with_interpolation(connected, *interpolated), cuts
    return connected, cuts


#: Share of a slice's object (the union of both masks there) on which the network and shape
#: interpolation may disagree before the slice is called unsure.
UNSURE = 0.3
#: Slices whose object (that union) is smaller than this are never called unsure.
UNSURE_MIN_VOXELS = 10


def unsure_slices(network: npt.NDArray[np.integer], annotation: Annotation) -> list[int]:
    """The unpainted slices between the painted ones where the network (its pieces connected
    to the annotation) and shape interpolation between the painted slices disagree on more
    than :data:`UNSURE` of the object: whichever rule built the mask, nothing the person
    painted tells which of the two is right there."""
    interpolated = annotation.interpolated()
    if interpolated is None or annotation.axis is None:
        return []
    values, inside = interpolated
    connected = np.moveaxis(keep_connected(network, annotation.labels, annotation.labeled),
                            annotation.axis, 0)
    between = np.moveaxis(np.where(inside, values, 0), annotation.axis, 0)
    painted = set(annotation.slices)
    unsure = []
    for s in range(min(painted) + 1, max(painted)):
        if s in painted:
            continue
        union = int(((connected[s] > 0) | (between[s] > 0)).sum())
        differ = int((connected[s] != between[s]).sum())
        if union >= UNSURE_MIN_VOXELS and differ > UNSURE * union:
            unsure.append(s)
    return unsure


def held_back_dice(prediction: npt.NDArray[np.integer], truth: npt.NDArray[np.integer],
                   mask: npt.NDArray[np.bool_], classes: Sequence[int] | None = None
                   ) -> tuple[float, dict[int, float]]:
    """Mean Dice over the foreground classes present in ``truth`` or ``prediction`` on ``mask``
    (a class predicted where the truth has none scores 0), and the per-class Dice.

    ``classes`` restricts the classes considered; ``nan`` when none is present on ``mask``.
    """
    p, t = prediction[mask], truth[mask]
    present = {int(v) for v in np.unique(t) if v > 0} | {int(v) for v in np.unique(p) if v > 0}
    if classes is not None:
        present &= {int(c) for c in classes}
    scores = {}
    for c in sorted(present):
        pc, tc = p == c, t == c
        denominator = int(pc.sum() + tc.sum())
        scores[c] = 2.0 * float((pc & tc).sum()) / denominator if denominator else 1.0
    return (float(np.mean(list(scores.values()))) if scores else float("nan")), scores


@dataclass(frozen=True)
class RuleChoice:
    """The rule chosen and every rule's mean Dice on the held-back voxels."""

    rule: str
    scores: Mapping[str, float]
    note: str = ""

    def summary(self) -> str:
        parts = ", ".join(f"{r} {d:.3f}" for r, d in self.scores.items() if np.isfinite(d))
        return f"{DESCRIPTIONS[self.rule]} (held-back Dice: {parts})" + (
            f"; {self.note}" if self.note else "")


def choose_rule(network: npt.NDArray[np.integer], annotation: Annotation,
                truth: npt.NDArray[np.integer], held_back: npt.NDArray[np.bool_],
                classes: Sequence[int] | None = None, *,
                interpolation_later: bool = False,
                measure_interpolation: bool = True) -> RuleChoice:
    """Score every rule on ``held_back`` (truth ``truth``) and choose one.

    ``annotation`` must exclude the held-back voxels (they are the test), ``network`` the
    labels of a network that did not train on them.  Without held-back voxels the choice is
    ``connected`` (no measurement).  ``interpolation_later``: the whole annotation allows
    interpolation though what is left after holding back does not (two annotated slices);
    then the interpolation rules cannot be measured, and the choice falls on them anyway -
    ``connected+interpolation`` when the network scored at least :data:`TRUST_NETWORK` on
    the held-back slice, else ``interpolation`` - so that a network that is measurably poor
    never replaces the baseline.  ``measure_interpolation=False``: the held-back voxels lie on
    annotated slices (regions of them), where interpolation means nothing; its rules are
    then unmeasured as above.
    """
    masks = candidates(network, annotation)
    if not measure_interpolation:
        masks = {r: m for r, m in masks.items() if "interpolation" not in r}
    scores = {rule: held_back_dice(mask, truth, held_back, classes)[0]
              for rule, mask in masks.items()}
    finite = {r: d for r, d in scores.items() if np.isfinite(d)}
    unmeasured = interpolation_later and "interpolation" not in finite
    if not finite:
        if unmeasured:
            return RuleChoice(rule="connected+interpolation", scores=scores,
                              note="nothing could be measured on the held-back voxels")
        return RuleChoice(rule="connected", scores=scores)
    best = max(finite.values())
    if unmeasured:
        trusted = best >= TRUST_NETWORK
        return RuleChoice(
            rule="connected+interpolation" if trusted else "interpolation", scores=scores,
            note=("interpolation between your slices cannot be measured on what was held back "
                  f"(fewer than three slices); the network scored {best:.2f} there, "
                  + ("so it completes the interpolation" if trusted else
                     "too little to replace the interpolation")))
    rule = next(r for r in RULES if r in finite and finite[r] >= best - TIE)
    return RuleChoice(rule=rule, scores=scores)


def apply_rule(rule: str, network: npt.NDArray[np.integer], annotation: Annotation
               ) -> npt.NDArray[np.integer]:
    """The mask of ``rule`` built from ``network`` and the whole ``annotation``; the person's
    labeled voxels keep their labels."""
    return build_mask(rule, network, annotation)[0]


def build_mask(rule: str, network: npt.NDArray[np.integer], annotation: Annotation
               ) -> tuple[npt.NDArray[np.integer], list[Cut]]:
    """:func:`apply_rule`, and what was stopped past the end painted slices."""
    if rule not in RULES:
        msg = f"unknown rule {rule!r}; use one of {', '.join(RULES)}"
        raise ValueError(msg)
    mask, cuts = rule_mask(rule, network, annotation)
    return np.where(annotation.labeled, annotation.labels, mask).astype(network.dtype), cuts
