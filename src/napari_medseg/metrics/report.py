"""Evaluate a predicted label map against a reference: one row of metrics per class.

:func:`evaluate_job` (the evaluate verb's core job, behind ``napari-medseg evaluate`` and the
Evaluate widget) checks that both lie on one grid and returns an :class:`Evaluation` (Dice,
IoU, HD95 and ASSD in mm, volumes in ml per class) that prints as a table, or as CSV/JSON,
yielding a :class:`~napari_medseg.events.Progress` per class; :func:`evaluate` runs it to
the end.  Rows are the reference's classes with its names, each matched to a prediction class
by name or value (:mod:`napari_medseg.metrics.matching`), then the prediction's classes the
reference does not have; means run over the reference's classes present in either map.
"""

from __future__ import annotations

import csv
import io
import json
import math
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, Literal

import numpy as np
import numpy.typing as npt

from napari_medseg.errors import GeometryMismatchError
from napari_medseg.events import Job, ProgressClock, run_to_end
from napari_medseg.io.atomic import write_atomically
from napari_medseg.metrics.matching import match_classes
from napari_medseg.metrics.surface import assd, hd95
from napari_medseg.metrics.volumes import voxel_volume_ml
from napari_medseg.options import option
from napari_medseg.scan import LabelMap


@dataclass(kw_only=True)
class EvaluateOptions:
    """What to compute: which classes, and whether surface distances (slow on big masks)."""

    classes: tuple[int, ...] | None = option(
        None, metavar="K", help="reference class values to report (default: every class of "
        "either map and every class the reference names)", gui=False)
    surface: bool = option(True, label="surface distances (HD95, ASSD)",
                           help="compute the surface distances HD95 and ASSD (the slow part)")
    match: Literal["auto", "value", "name"] = option(
        "auto", label="match classes by",
        help="pair prediction and reference classes by name, then value (auto), or by value "
             "or name only")


@dataclass(frozen=True)
class ClassMetrics:
    """Metrics of one class. Distances in mm, volumes in ml; ``nan`` = undefined (absent).

    ``label`` and ``name`` are the reference's class (the prediction's for a class the
    reference does not have); ``pred_label`` / ``pred_name`` the prediction class matched to
    it (``None``: none), ``matched_by`` how (:class:`~napari_medseg.metrics.matching.ClassMatch`)
    and ``averaged`` whether it counts in the means: a reference class present in either map.
    """

    label: int
    name: str
    dice: float
    iou: float
    hd95_mm: float
    assd_mm: float
    volume_pred_ml: float
    volume_truth_ml: float
    pred_label: int | None = None
    pred_name: str | None = None
    matched_by: str = "value"
    averaged: bool = True

    @property
    def volume_difference_ml(self) -> float:
        return self.volume_pred_ml - self.volume_truth_ml


_METRICS = ("dice", "iou", "hd95_mm", "assd_mm")


@dataclass(frozen=True)
class Evaluation:
    """Per-class metrics of a prediction against a reference, and their means.

    Means run over the :attr:`averaged` rows only: the reference's classes present in either
    map (not the prediction's extra classes, nor classes absent from both).
    """

    rows: list[ClassMetrics]
    spacing: tuple[float, ...]

    @property
    def averaged(self) -> list[ClassMetrics]:
        return [r for r in self.rows if r.averaged]

    def mean(self, field: str) -> float:
        """Mean of a metric over the averaged classes where it is finite (``nan`` if none)."""
        values = [getattr(r, field) for r in self.averaged]
        finite = [v for v in values if math.isfinite(v)]
        return float(np.mean(finite)) if finite else float("nan")

    def averaging_note(self) -> str:
        """Which classes the means cover and which not, and why (one line)."""
        used = ", ".join(f"{r.label} {r.name}" for r in self.averaged) or "none"
        left = [r for r in self.rows if not r.averaged]
        text = f"means over the reference's classes present in either map: {used}"
        if left:
            why = {True: "prediction only: the reference has no such class",
                   False: "absent from both maps"}
            text += "; not averaged: " + ", ".join(
                f"{r.label} {r.name} ({why[r.matched_by == 'prediction only']})" for r in left)
        return text

    def to_dict(self) -> dict[str, Any]:
        def clean(v: Any) -> Any:  # JSON has no nan/inf
            return None if isinstance(v, float) and not math.isfinite(v) else v

        return {
            "spacing_mm": list(self.spacing),
            "classes": [{k: clean(v) for k, v in asdict(r).items()} for r in self.rows],
            "mean": {f: clean(self.mean(f)) for f in _METRICS},
            "averaged_labels": [r.label for r in self.averaged],
            "averaging": self.averaging_note(),
        }

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), indent=2)

    def to_csv(self) -> str:
        out = io.StringIO()
        writer = csv.writer(out, lineterminator="\n")
        names = ["label", "name", "dice", "iou", "hd95_mm", "assd_mm", "volume_pred_ml",
                 "volume_truth_ml", "pred_label", "pred_name", "matched_by", "averaged"]
        writer.writerow(names)
        for r in self.rows:
            writer.writerow(["" if getattr(r, n) is None else getattr(r, n) for n in names])
        return out.getvalue()

    def write_csv(self, path: str | Path, *, overwrite: bool = False) -> Path:
        """Write :meth:`to_csv` to ``path`` atomically; an existing file is replaced only with
        ``overwrite`` (:class:`~napari_medseg.errors.OutputExistsError` otherwise)."""
        text = self.to_csv()

        def write(tmp: Path) -> None:
            tmp.write_text(text, encoding="utf-8")

        return write_atomically(Path(path), write, overwrite=overwrite)

    def format_table(self) -> str:
        head = (f"{'label':>5}  {'reference':<20} {'Dice':>6} {'IoU':>6} {'HD95 mm':>8} "
                f"{'ASSD mm':>8} {'pred ml':>9} {'true ml':>9}  prediction (matched by)")
        lines = [head, "-" * len(head)]
        for r in self.rows:
            matched = ("-" if r.pred_label is None
                       else f"{r.pred_label} {r.pred_name or ''}".strip())
            lines.append(f"{r.label:>5}  {r.name[:20]:<20} {r.dice:6.3f} {r.iou:6.3f} "
                         f"{r.hd95_mm:8.2f} {r.assd_mm:8.2f} {r.volume_pred_ml:9.2f} "
                         f"{r.volume_truth_ml:9.2f}  {matched} ({r.matched_by})"
                         + ("" if r.averaged else " *"))
        lines.append(f"{'mean':>5}  {'':<20} {self.mean('dice'):6.3f} {self.mean('iou'):6.3f} "
                     f"{self.mean('hd95_mm'):8.2f} {self.mean('assd_mm'):8.2f}")
        note = self.averaging_note()
        lines.append(note.replace("; not averaged:", "; * not averaged:"))
        return "\n".join(lines)


def evaluate_arrays(pred: npt.NDArray[Any], truth: npt.NDArray[Any], spacing: Sequence[float],
                    *, classes: Sequence[int] | None = None,
                    class_names: Mapping[int, str] | None = None,
                    truth_names: Mapping[int, str] | None = None,
                    pred_names: Mapping[int, str] | None = None, match: str = "auto",
                    mask: npt.NDArray[np.bool_] | None = None,
                    surface: bool = True) -> Evaluation:
    """Per-class metrics of two label arrays on one grid (spacing in mm, array-axis order).

    Classes are paired by :func:`~napari_medseg.metrics.matching.match_classes`:
    ``truth_names`` and ``pred_names`` name each side's classes (by name, then by value);
    ``class_names`` names both when they share one protocol.  ``classes`` restricts the rows
    to these reference values (default: every non-zero value of either map and every class
    the reference names).  ``mask`` restricts Dice, IoU and volumes to its voxels;
    ``surface=False`` skips HD95/ASSD (``nan``) for speed.
    """
    return run_to_end(_evaluate_arrays_job(
        pred, truth, spacing, classes=classes, class_names=class_names,
        truth_names=truth_names, pred_names=pred_names, match=match, mask=mask,
        surface=surface))


def _evaluate_arrays_job(pred: npt.NDArray[Any], truth: npt.NDArray[Any],
                         spacing: Sequence[float], *, classes: Sequence[int] | None,
                         class_names: Mapping[int, str] | None,
                         truth_names: Mapping[int, str] | None = None,
                         pred_names: Mapping[int, str] | None = None, match: str = "auto",
                         mask: npt.NDArray[np.bool_] | None, surface: bool) -> Job[Evaluation]:
    if pred.shape != truth.shape:
        msg = (f"prediction of shape {pred.shape} and reference of shape {truth.shape} are on "
               "different grids; resample one onto the other first")
        raise GeometryMismatchError(msg)
    shared = dict(class_names or {})
    t_names = dict(truth_names) if truth_names is not None else shared
    p_names = dict(pred_names) if pred_names is not None else shared
    t_values = [int(v) for v in np.unique(truth)]
    p_values = [int(v) for v in np.unique(pred)]
    if classes is not None:
        wanted = {int(k) for k in classes}
        t_values = sorted(wanted)
        t_names = {k: v for k, v in t_names.items() if k in wanted}
        p_values = [v for v in p_values if v in wanted]
    pairs = match_classes(t_values, t_names, p_values, p_names, match=match)
    p = pred if mask is None else np.where(mask, pred, 0)
    t = truth if mask is None else np.where(mask, truth, 0)
    unit = voxel_volume_ml(spacing)
    rows = []
    clock = ProgressClock("evaluate", len(pairs))
    for done, pair in enumerate(pairs, start=1):
        pk = p == pair.pred if pair.pred is not None else np.zeros(p.shape, bool)
        tk = t == pair.truth if pair.truth is not None else np.zeros(t.shape, bool)
        both, n_p, n_t = (int(np.count_nonzero(pk & tk)), int(np.count_nonzero(pk)),
                          int(np.count_nonzero(tk)))
        rows.append(ClassMetrics(
            label=pair.label,
            name=pair.name,
            dice=2.0 * both / (n_p + n_t) if n_p + n_t else float("nan"),
            iou=both / (n_p + n_t - both) if n_p + n_t else float("nan"),
            hd95_mm=hd95(pk, tk, spacing) if surface else float("nan"),
            assd_mm=assd(pk, tk, spacing) if surface else float("nan"),
            volume_pred_ml=n_p * unit,
            volume_truth_ml=n_t * unit,
            pred_label=pair.pred,
            pred_name=pair.pred_name if pair.pred is not None else None,
            matched_by=pair.by,
            averaged=pair.truth is not None and n_p + n_t > 0,
        ))
        yield clock.event(done, message=f"class {done} of {len(pairs)} ({rows[-1].name})")
    return Evaluation(rows=rows, spacing=tuple(float(s) for s in spacing))


def evaluate(pred: LabelMap, truth: LabelMap, *, classes: Sequence[int] | None = None,
             match: Literal["auto", "value", "name"] = "auto",
             mask: npt.NDArray[np.bool_] | None = None, surface: bool = True) -> Evaluation:
    """Per-class metrics of ``pred`` against ``truth``; both must lie on one grid.

    Rows carry the reference's class names; prediction classes are matched to them by name,
    else by value (``match``, see :func:`~napari_medseg.metrics.matching.match_classes`).
    Raises :class:`~napari_medseg.errors.GeometryMismatchError` naming the difference.
    """
    options = EvaluateOptions(classes=tuple(classes) if classes is not None else None,
                              surface=surface, match=match)
    return run_to_end(evaluate_job(pred, truth, options, mask=mask))


def evaluate_job(pred: LabelMap, truth: LabelMap, options: EvaluateOptions | None = None, *,
                 mask: npt.NDArray[np.bool_] | None = None) -> Job[Evaluation]:
    """The evaluate verb: metrics of ``pred`` against ``truth`` (one grid), a generator job.

    Yields a :class:`~napari_medseg.events.Progress` (stage ``"evaluate"``) after each class;
    closing it between two stops it.  Raises
    :class:`~napari_medseg.errors.GeometryMismatchError` naming the difference when the two
    lie on different grids.
    """
    options = options or EvaluateOptions()
    if pred.shape != truth.shape or not pred.geometry.is_close(truth.geometry):
        what = (f"shape {pred.shape} vs {truth.shape}" if pred.shape != truth.shape
                else pred.geometry.describe_difference(truth.geometry))
        msg = (f"prediction {pred.name!r} and reference {truth.name!r} lie on different grids "
               f"({what}); resample one onto the other (napari-medseg fuse) first")
        raise GeometryMismatchError(msg)
    return (yield from _evaluate_arrays_job(
        pred.array, truth.array, pred.geometry.spacing, classes=options.classes,
        class_names=None, truth_names=truth.class_names, pred_names=pred.class_names,
        match=options.match, mask=mask, surface=options.surface))
