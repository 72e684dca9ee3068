"""Evaluate a predicted label map against a reference: one row of metrics per class.

:func:`evaluate_job` (the evaluate verb's core job, behind ``napari-medseg evaluate`` and the
Evaluate widget) checks that both lie on one grid and returns an :class:`Evaluation` (Dice,
IoU, HD95 and ASSD in mm, volumes in ml per class) that prints as a table, or as CSV/JSON,
yielding a :class:`~napari_medseg.events.Progress` per class; :func:`evaluate` runs it to
the end.
"""

from __future__ import annotations

import csv
import io
import json
import math
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt

from napari_medseg.errors import GeometryMismatchError
from napari_medseg.events import Job, ProgressClock, run_to_end
from napari_medseg.io.atomic import write_atomically
from napari_medseg.metrics.overlap import dice, iou
from napari_medseg.metrics.surface import assd, hd95
from napari_medseg.metrics.volumes import class_volumes_ml
from napari_medseg.options import option
from napari_medseg.scan import LabelMap


@dataclass(kw_only=True)
class EvaluateOptions:
    """What to compute: which classes, and whether surface distances (slow on big masks)."""

    classes: tuple[int, ...] | None = option(
        None, metavar="K", help="class values to report (default: every non-zero value present)",
        gui=False)
    surface: bool = option(True, label="surface distances (HD95, ASSD)",
                           help="compute the surface distances HD95 and ASSD (the slow part)")


@dataclass(frozen=True)
class ClassMetrics:
    """Metrics of one class. Distances in mm, volumes in ml; ``nan`` = undefined (absent)."""

    label: int
    name: str
    dice: float
    iou: float
    hd95_mm: float
    assd_mm: float
    volume_pred_ml: float
    volume_truth_ml: float

    @property
    def volume_difference_ml(self) -> float:
        return self.volume_pred_ml - self.volume_truth_ml


@dataclass(frozen=True)
class Evaluation:
    """Per-class metrics of a prediction against a reference, and their means."""

    rows: list[ClassMetrics]
    spacing: tuple[float, ...]

    def mean(self, field: str) -> float:
        """Mean of a metric over the classes where it is finite (``nan`` if none)."""
        values = [getattr(r, field) for r in self.rows]
        finite = [v for v in values if math.isfinite(v)]
        return float(np.mean(finite)) if finite else float("nan")

    def to_dict(self) -> dict[str, Any]:
        def clean(v: Any) -> Any:  # JSON has no nan/inf
            return None if isinstance(v, float) and not math.isfinite(v) else v

        return {
            "spacing_mm": list(self.spacing),
            "classes": [{k: clean(v) for k, v in asdict(r).items()} for r in self.rows],
            "mean": {f: clean(self.mean(f)) for f in ("dice", "iou", "hd95_mm", "assd_mm")},
        }

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), indent=2)

    def to_csv(self) -> str:
        out = io.StringIO()
        writer = csv.writer(out, lineterminator="\n")
        names = ["label", "name", "dice", "iou", "hd95_mm", "assd_mm", "volume_pred_ml",
                 "volume_truth_ml"]
        writer.writerow(names)
        for r in self.rows:
            writer.writerow([getattr(r, n) for n in names])
        return out.getvalue()

    def write_csv(self, path: str | Path, *, overwrite: bool = False) -> Path:
        """Write :meth:`to_csv` to ``path`` atomically; an existing file is replaced only with
        ``overwrite`` (:class:`~napari_medseg.errors.OutputExistsError` otherwise)."""
        text = self.to_csv()

        def write(tmp: Path) -> None:
            tmp.write_text(text, encoding="utf-8")

        return write_atomically(Path(path), write, overwrite=overwrite)

    def format_table(self) -> str:
        head = (f"{'label':>5}  {'name':<20} {'Dice':>6} {'IoU':>6} {'HD95 mm':>8} "
                f"{'ASSD mm':>8} {'pred ml':>9} {'true ml':>9}")
        lines = [head, "-" * len(head)]
        for r in self.rows:
            lines.append(f"{r.label:>5}  {r.name[:20]:<20} {r.dice:6.3f} {r.iou:6.3f} "
                         f"{r.hd95_mm:8.2f} {r.assd_mm:8.2f} {r.volume_pred_ml:9.2f} "
                         f"{r.volume_truth_ml:9.2f}")
        lines.append(f"{'mean':>5}  {'':<20} {self.mean('dice'):6.3f} {self.mean('iou'):6.3f} "
                     f"{self.mean('hd95_mm'):8.2f} {self.mean('assd_mm'):8.2f}")
        return "\n".join(lines)


def evaluate_arrays(pred: npt.NDArray[Any], truth: npt.NDArray[Any], spacing: Sequence[float],
                    *, classes: Sequence[int] | None = None,
                    class_names: dict[int, str] | None = None,
                    mask: npt.NDArray[np.bool_] | None = None,
                    surface: bool = True) -> Evaluation:
    """Per-class metrics of two label arrays on one grid (spacing in mm, array-axis order).

    ``classes`` defaults to every non-zero value in either array. ``mask`` restricts Dice,
    IoU and volumes to its voxels; ``surface=False`` skips HD95/ASSD (``nan``) for speed.
    """
    return run_to_end(_evaluate_arrays_job(pred, truth, spacing, classes=classes,
                                           class_names=class_names, mask=mask, surface=surface))


def _evaluate_arrays_job(pred: npt.NDArray[Any], truth: npt.NDArray[Any],
                         spacing: Sequence[float], *, classes: Sequence[int] | None,
                         class_names: dict[int, str] | None, mask: npt.NDArray[np.bool_] | None,
                         surface: bool) -> Job[Evaluation]:
    if pred.shape != truth.shape:
        msg = (f"prediction of shape {pred.shape} and reference of shape {truth.shape} are on "
               "different grids; resample one onto the other first")
        raise GeometryMismatchError(msg)
    if classes is None:
        present = {int(v) for v in np.unique(pred)} | {int(v) for v in np.unique(truth)}
        classes = sorted(present - {0})
    names = class_names or {}
    p = pred if mask is None else np.where(mask, pred, 0)
    t = truth if mask is None else np.where(mask, truth, 0)
    vp = class_volumes_ml(p, spacing, classes)
    vt = class_volumes_ml(t, spacing, classes)
    rows = []
    clock = ProgressClock("evaluate", len(classes))
    for done, k in enumerate(classes, start=1):
        pk, tk = p == k, t == k
        rows.append(ClassMetrics(
            label=int(k),
            name=names.get(int(k), f"class {k}"),
            dice=dice(pred, truth, k, mask=mask),
            iou=iou(pred, truth, k, mask=mask),
            hd95_mm=hd95(pk, tk, spacing) if surface else float("nan"),
            assd_mm=assd(pk, tk, spacing) if surface else float("nan"),
            volume_pred_ml=vp[k],
            volume_truth_ml=vt[k],
        ))
        yield clock.event(done, message=f"class {done} of {len(classes)} ({rows[-1].name})")
    return Evaluation(rows=rows, spacing=tuple(float(s) for s in spacing))


def evaluate(pred: LabelMap, truth: LabelMap, *, classes: Sequence[int] | None = None,
             mask: npt.NDArray[np.bool_] | None = None, surface: bool = True) -> Evaluation:
    """Per-class metrics of ``pred`` against ``truth``; both must lie on one grid.

    Raises :class:`~napari_medseg.errors.GeometryMismatchError` naming the difference.
    """
    options = EvaluateOptions(classes=tuple(classes) if classes is not None else None,
                              surface=surface)
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
    names = {**truth.class_names, **{k: v for k, v in pred.class_names.items()
                                      if not v.startswith("class ")}}
    return (yield from _evaluate_arrays_job(
        pred.array, truth.array, pred.geometry.spacing, classes=options.classes,
        class_names=names, mask=mask, surface=options.surface))
