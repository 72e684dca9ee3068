"""The live plot of a training run: loss and held-back Dice against the step.

Training loss (left axis) is drawn per step, faint, with its running mean; the Dice on the
held-back voxels (right axis, 0-1) as points joined by a line at each validation; a dashed line
marks where the held-back voxels were given back to training (the fold-in), after which nothing
is held back to measure.

Drawn with Qt's own painter, not matplotlib: a matplotlib figure took 0.4-1 s of the GUI thread
to create and to redraw its axes and text (measured by ``benchmarks/bench_journey.py``), while a
repaint here is a few polylines (a few ms, the loss thinned to one point per pixel column).  A
new point asks Qt for a repaint at most every :data:`REDRAW_S` seconds; Qt paints when the
event loop is free.
"""

from __future__ import annotations

import math
import time

from qtpy.QtCore import QPointF, QRectF, Qt
from qtpy.QtGui import QColor, QFont, QPainter, QPaintEvent, QPen, QPolygonF
from qtpy.QtWidgets import QSizePolicy, QWidget

#: At most one repaint request per this many seconds while a run goes on.
REDRAW_S = 0.5
#: Height of the plot in pixels (it keeps the tab short on a 800-pixel screen).
HEIGHT_PX = 170
LOSS_COLOUR = "#f0a030"
DICE_COLOUR = "#40a8f0"
#: Steps averaged in the loss's running mean.
MEAN_OF = 20


class TrainingCurve(QWidget):
    """Loss and held-back Dice per step; :meth:`add` takes a progress event's metrics."""

    def __init__(self) -> None:
        super().__init__()
        self.steps: list[int] = []
        self.loss: list[float] = []
        self.dice: list[tuple[int, float]] = []
        self.fold_in: int | None = None
        self.setMinimumHeight(HEIGHT_PX)
        self.setSizePolicy(QSizePolicy.Policy.Expanding, QSizePolicy.Policy.Fixed)
        self.setToolTip("Training loss (orange, its mean of 20 steps bold) and Dice on the "
                        "held-back annotation (blue points, right axis 0-1); after the dashed "
                        "line every annotation trains")
        self._drawn = 0.0
        self.paints = 0  # how many times the plot was painted (tests, benchmarks)

    # ---------------------------------------------------------------- data
    def clear(self) -> None:
        self.steps.clear()
        self.loss.clear()
        self.dice.clear()
        self.fold_in = None
        self.redraw(force=True)

    def add(self, step: int, metrics: dict[str, float]) -> None:
        """Take one progress event's ``metrics`` (``loss``, ``val_dice``) at ``step``."""
        if "loss" in metrics and math.isfinite(metrics["loss"]):
            self.steps.append(step)
            self.loss.append(float(metrics["loss"]))
        if "val_dice" in metrics and math.isfinite(metrics["val_dice"]):
            self.dice.append((step, float(metrics["val_dice"])))
        self.redraw()

    def mark_fold_in(self, step: int) -> None:
        """The held-back voxels train from ``step`` on."""
        self.fold_in = step
        self.redraw(force=True)

    def redraw(self, *, force: bool = False) -> None:
        now = time.perf_counter()
        if not force and now - self._drawn < REDRAW_S:
            return
        self._drawn = now
        self.update()  # Qt paints when the event loop is free, merging repeated requests

    # ---------------------------------------------------------------- drawing
    def paintEvent(self, event: QPaintEvent) -> None:
        self.paints += 1
        painter = QPainter(self)
        painter.setRenderHint(QPainter.RenderHint.Antialiasing)
        font = QFont(self.font())
        font.setPointSizeF(max(6.0, font.pointSizeF() * 0.8))
        painter.setFont(font)
        metrics = painter.fontMetrics()
        fg, grid = _colours(self)
        line = metrics.height()
        left = metrics.horizontalAdvance("0.000") + 6
        right = metrics.horizontalAdvance("1.0") + 6
        plot = QRectF(left, line + 4, max(self.width() - left - right, 10),
                      max(self.height() - 2 * line - 10, 10))
        # frame, grid and axis labels
        painter.setPen(QPen(grid, 1))
        painter.drawRect(plot)
        for fraction in (0.25, 0.5, 0.75):
            y = plot.bottom() - fraction * plot.height()
            painter.drawLine(QPointF(plot.left(), y), QPointF(plot.right(), y))
        last = max(self.steps[-1] if self.steps else 1, self.dice[-1][0] if self.dice else 1, 1)
        top = max(self.loss) * 1.05 if self.loss else 1.0
        top = top if top > 0 else 1.0
        painter.setPen(fg)
        painter.drawText(QRectF(plot.left(), plot.bottom() + 2, plot.width(), line),
                         Qt.AlignmentFlag.AlignLeft, "0")
        painter.drawText(QRectF(plot.left(), plot.bottom() + 2, plot.width(), line),
                         Qt.AlignmentFlag.AlignHCenter, "step")
        painter.drawText(QRectF(plot.left(), plot.bottom() + 2, plot.width(), line),
                         Qt.AlignmentFlag.AlignRight, str(last))
        painter.setPen(QColor(LOSS_COLOUR))
        painter.drawText(QRectF(0, plot.top() - 2, left - 3, line), Qt.AlignmentFlag.AlignRight,
                         f"{top:.3g}")
        painter.drawText(QRectF(0, plot.bottom() - line, left - 3, line),
                         Qt.AlignmentFlag.AlignRight, "0")
        painter.drawText(QRectF(plot.left(), 0, plot.width() / 2, line),
                         Qt.AlignmentFlag.AlignLeft, "loss")
        painter.setPen(QColor(DICE_COLOUR))
        painter.drawText(QRectF(plot.right() + 3, plot.top() - 2, right, line),
                         Qt.AlignmentFlag.AlignLeft, "1.0")
        painter.drawText(QRectF(plot.right() + 3, plot.bottom() - line, right, line),
                         Qt.AlignmentFlag.AlignLeft, "0")
        painter.drawText(QRectF(plot.left(), 0, plot.width(), line),
                         Qt.AlignmentFlag.AlignRight, "held-back Dice")

        def x_of(step: float) -> float:
            return plot.left() + plot.width() * step / last

        painter.setClipRect(plot)
        if self.fold_in is not None:
            pen = QPen(fg, 1, Qt.PenStyle.DashLine)
            painter.setPen(pen)
            painter.drawLine(QPointF(x_of(self.fold_in), plot.top()),
                             QPointF(x_of(self.fold_in), plot.bottom()))
        if self.loss:
            raw, mean = _thinned(self.steps, self.loss, int(plot.width()))

            def loss_line(values: list[tuple[float, float]]) -> QPolygonF:
                return QPolygonF([QPointF(x_of(s), plot.bottom() - plot.height() * v / top)
                                  for s, v in values])

            faint = QColor(LOSS_COLOUR)
            faint.setAlphaF(0.45)
            painter.setPen(QPen(faint, 0.8))
            painter.drawPolyline(loss_line(raw))
            painter.setPen(QPen(QColor(LOSS_COLOUR), 1.6))
            painter.drawPolyline(loss_line(mean))
        if self.dice:
            points = QPolygonF([QPointF(x_of(s), plot.bottom() - plot.height() * d)
                                for s, d in self.dice])
            painter.setPen(QPen(QColor(DICE_COLOUR), 1.2))
            painter.drawPolyline(points)
            painter.setBrush(QColor(DICE_COLOUR))
            for point in points:
                painter.drawEllipse(point, 2.0, 2.0)
        painter.end()


def _thinned(steps: list[int], loss: list[float], columns: int
             ) -> tuple[list[tuple[float, float]], list[tuple[float, float]]]:
    """The loss and its running mean, at most about one point per pixel column."""
    mean = _running_mean(loss)
    stride = max(1, len(loss) // max(columns, 1))
    picked = list(range(0, len(loss), stride))
    if picked[-1] != len(loss) - 1:
        picked.append(len(loss) - 1)
    return ([(steps[i], loss[i]) for i in picked], [(steps[i], mean[i]) for i in picked])


def _running_mean(values: list[float], window: int = MEAN_OF) -> list[float]:
    out, total = [], 0.0
    for i, v in enumerate(values):
        total += v
        if i >= window:
            total -= values[i - window]
        out.append(total / min(i + 1, window))
    return out


def _colours(widget: QWidget) -> tuple[QColor, QColor]:
    """Text and grid colours that read on the widget's (napari theme) background."""
    dark = widget.palette().window().color().lightness() < 128
    return (QColor("#d0d0d0" if dark else "#202020"), QColor("#606060" if dark else "#b0b0b0"))
