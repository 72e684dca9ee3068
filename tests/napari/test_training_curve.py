"""The live training curve draws what a run reports: the loss, the held-back Dice and the
fold-in, with Qt's painter (no matplotlib on the GUI thread)."""

from __future__ import annotations

import math

import numpy as np
from qtpy.QtGui import QColor

from napari_medseg._napari.training_curve import DICE_COLOUR, LOSS_COLOUR, TrainingCurve


def _pixels_of(image, colour: str, tolerance: int = 40) -> int:
    """How many pixels of ``image`` are (close to) ``colour``."""
    target = QColor(colour)
    pixels = [QColor(image.pixel(x, y)) for x in range(image.width())
              for y in range(image.height())]
    return sum(abs(p.red() - target.red()) + abs(p.green() - target.green())
               + abs(p.blue() - target.blue()) < tolerance for p in pixels)


def test_the_curve_draws_the_loss_and_the_dice_of_a_run(qtbot) -> None:
    curve = TrainingCurve()
    qtbot.addWidget(curve)
    curve.resize(360, 170)
    curve.show()
    qtbot.waitExposed(curve)
    empty = curve.grab().toImage()  # axes and their labels only
    loss_before, dice_before = _pixels_of(empty, LOSS_COLOUR), _pixels_of(empty, DICE_COLOUR)
    rng = np.random.default_rng(0)
    for step in range(1, 301):
        metrics = {"loss": 1.0 / math.sqrt(step) + 0.05 * rng.random()}
        if step % 50 == 0:
            metrics["val_dice"] = min(0.9, step / 300)
        curve.add(step, metrics)
    curve.mark_fold_in(250)
    curve.redraw(force=True)
    qtbot.waitUntil(lambda: curve.paints > 1, timeout=5000)
    drawn = curve.grab().toImage()
    assert _pixels_of(drawn, LOSS_COLOUR) > loss_before + 200  # the loss lines
    assert _pixels_of(drawn, DICE_COLOUR) > dice_before + 50  # the Dice points and line
    assert len(curve.loss) == 300
    assert [s for s, _ in curve.dice] == [50, 100, 150, 200, 250, 300]
    assert curve.fold_in == 250
    curve.clear()
    assert curve.loss == []
    assert curve.fold_in is None
