"""The live plot of a training run: loss and held-back Dice against the step (matplotlib).

Training loss (left axis) is drawn per step with its running mean; the Dice on the held-back
voxels (right axis, 0-1) as points at each validation; a dashed line marks where the
held-back voxels were given back to training (the fold-in), after which nothing is held back
to measure.  The figure is redrawn at most every :data:`REDRAW_S` seconds so that a fast run
does not spend the GUI thread on drawing.  matplotlib is imported when the first curve is
made (it costs 0.3 s), not when the plugin loads.
"""

from __future__ import annotations

import math
import time
from typing import Any

from qtpy.QtWidgets import QSizePolicy, QVBoxLayout, QWidget

#: At most one redraw per this many seconds while a run goes on.
REDRAW_S = 0.5
#: Height of the plot in pixels (it keeps the tab short on a 800-pixel screen).
HEIGHT_PX = 170


class TrainingCurve(QWidget):
    """Loss and held-back Dice per step; :meth:`add` takes a progress event's metrics."""

    def __init__(self) -> None:
        super().__init__()
        from matplotlib.backends.backend_qtagg import FigureCanvasQTAgg
        from matplotlib.figure import Figure

        self.steps: list[int] = []
        self.loss: list[float] = []
        self.dice: list[tuple[int, float]] = []
        self.fold_in: int | None = None
        self.figure = Figure(figsize=(3.6, 1.7), dpi=100, layout="constrained")
        self.figure.patch.set_alpha(0.0)
        self.canvas = FigureCanvasQTAgg(self.figure)
        self.canvas.setStyleSheet("background: transparent")
        self.canvas.setMinimumHeight(HEIGHT_PX)
        self.canvas.setSizePolicy(QSizePolicy.Policy.Expanding, QSizePolicy.Policy.Fixed)
        self.setToolTip("Training loss (orange) and Dice on the held-back annotation (blue "
                        "points); after the dashed line every annotation trains")
        layout = QVBoxLayout(self)
        layout.setContentsMargins(0, 0, 0, 0)
        layout.addWidget(self.canvas)
        self.axis = self.figure.add_subplot(111)
        self.dice_axis = self.axis.twinx()
        self._drawn = 0.0
        self.clear()

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

    # ---------------------------------------------------------------- drawing
    def redraw(self, *, force: bool = False) -> None:
        now = time.perf_counter()
        if not force and now - self._drawn < REDRAW_S:
            return
        self._drawn = now
        self._draw()

    def _draw(self) -> None:
        ax, dx = self.axis, self.dice_axis
        ax.clear()
        dx.clear()
        style = _style(self)
        for a in (ax, dx):
            a.tick_params(labelsize=7, colors=style["fg"])
            for spine in a.spines.values():
                spine.set_color(style["grid"])
            a.set_facecolor("none")
        ax.set_xlabel("step", fontsize=7, color=style["fg"])
        ax.set_ylabel("loss", fontsize=7, color="#f0a030")
        # clear() puts a twin axis's ticks and label back on the left: move them right again
        dx.yaxis.tick_right()
        dx.yaxis.set_label_position("right")
        dx.set_ylabel("held-back Dice", fontsize=7, color="#40a8f0")
        dx.set_ylim(0.0, 1.0)
        ax.grid(True, color=style["grid"], linewidth=0.4)
        if self.loss:
            ax.plot(self.steps, self.loss, color="#f0a030", linewidth=0.6, alpha=0.45,
                    label="loss")
            ax.plot(self.steps, _running_mean(self.loss), color="#f0a030", linewidth=1.4,
                    label="loss (mean of 20)")
            ax.set_xlim(0, max(self.steps[-1], 1))
            ax.set_ylim(0.0, max(self.loss) * 1.05 or 1.0)
        if self.dice:
            xs, ys = zip(*self.dice, strict=True)
            dx.plot(xs, ys, "o-", color="#40a8f0", markersize=3, linewidth=1.0,
                    label="held-back Dice")
        if self.fold_in is not None:
            ax.axvline(self.fold_in, color=style["fg"], linestyle="--", linewidth=0.8)
        handles = [*ax.get_legend_handles_labels()[0][1:], *dx.get_legend_handles_labels()[0]]
        if handles:
            legend = ax.legend(handles=handles, fontsize=6, loc="upper center", frameon=False,
                               labelcolor=style["fg"], ncol=2)
            legend.set_zorder(5)
        self.canvas.draw_idle()


def _running_mean(values: list[float], window: int = 20) -> list[float]:
    out, total = [], 0.0
    for i, v in enumerate(values):
        total += v
        if i >= window:
            total -= values[i - window]
        out.append(total / min(i + 1, window))
    return out


def _style(widget: Any) -> dict[str, str]:
    """Text and grid colours that read on the widget's (napari theme) background."""
    colour = widget.palette().window().color()
    dark = colour.lightness() < 128
    return {"fg": "#d0d0d0" if dark else "#202020", "grid": "#606060" if dark else "#b0b0b0"}
