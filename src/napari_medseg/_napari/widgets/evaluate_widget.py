"""The Evaluate dock widget: Dice, IoU, HD95, ASSD and volumes between two Labels layers.

The numbers come from :func:`napari_medseg.metrics.evaluate` (spacing-aware, in mm and ml),
computed in a worker; the table can be exported as CSV.
"""

from __future__ import annotations

import math
from collections.abc import Generator
from pathlib import Path
from typing import Any

import numpy as np
from magicgui.widgets import Container, Label, PushButton, create_widget
from qtpy.QtWidgets import QFileDialog, QTableWidget, QTableWidgetItem, QVBoxLayout, QWidget

import napari
from napari_medseg._napari.jobs import JobRunner
from napari_medseg._napari.layers import (
    class_names_from_meta,
    geometry_from_layer_meta,
    layer_meta,
)
from napari_medseg._napari.notify import report, warn
from napari_medseg.errors import MedsegError
from napari_medseg.events import Event, Progress
from napari_medseg.io.atomic import write_atomically
from napari_medseg.metrics import Evaluation, evaluate
from napari_medseg.scan import LabelMap

COLUMNS = ("class", "Dice", "IoU", "HD95 mm", "ASSD mm", "pred ml", "truth ml")


def _label_map(layer: Any) -> LabelMap:
    meta = layer_meta(layer)
    meta["features"] = layer.features
    return LabelMap(array=np.asarray(layer.data),
                    geometry=geometry_from_layer_meta(meta, layer.ndim),
                    class_names=class_names_from_meta(meta))


def _fmt(value: float) -> str:
    return "-" if not math.isfinite(value) else f"{value:.3f}"


class EvaluateWidget(QWidget):
    """Compare a prediction with a reference, per class."""

    def __init__(self, viewer: napari.viewer.Viewer) -> None:
        super().__init__()
        self.viewer = viewer
        self.runner = JobRunner()
        self.evaluation: Evaluation | None = None
        self.pred = create_widget(annotation=napari.layers.Labels, label="prediction")
        self.truth = create_widget(annotation=napari.layers.Labels, label="reference")
        self.form = Container(widgets=[self.pred, self.truth])
        self.run_button = PushButton(text="Evaluate", tooltip="Compute the metrics per class")
        self.export_button = PushButton(text="Export CSV...", enabled=False)
        self.status = Label(value="")
        self.table = QTableWidget(0, len(COLUMNS))
        self.table.setHorizontalHeaderLabels(list(COLUMNS))
        buttons = Container(widgets=[self.run_button, self.export_button], layout="horizontal",
                            labels=False)
        layout = QVBoxLayout(self)
        layout.addWidget(self.form.native)
        layout.addWidget(buttons.native)
        layout.addWidget(self.table)
        layout.addWidget(self.status.native)
        self.run_button.clicked.connect(self.run)
        self.export_button.clicked.connect(self.export)

    def reset_choices(self, *_: Any) -> None:
        self.form.reset_choices()

    def run(self) -> None:
        pred, truth = self.pred.value, self.truth.value
        if pred is None or truth is None or pred is truth:
            warn("choose two different labels layers: a prediction and a reference")
            return
        try:
            a, b = _label_map(pred), _label_map(truth)
        except MedsegError as exc:
            report(exc)
            return

        def job() -> Generator[Event, None, Evaluation]:
            yield Progress(stage="evaluate", done=0, total=1, message="computing metrics")
            return evaluate(a, b)

        self.run_button.enabled = False
        self.status.value = "computing..."
        self.runner.start(job(), on_progress=lambda e: None, on_done=self._show,
                          on_finished=lambda: setattr(self.run_button, "enabled", True),
                          context="evaluate")

    def _show(self, evaluation: Evaluation) -> None:
        self.evaluation = evaluation
        rows = evaluation.rows
        self.table.setRowCount(len(rows))
        for i, r in enumerate(rows):
            values = [f"{r.label} {r.name}", _fmt(r.dice), _fmt(r.iou), _fmt(r.hd95_mm),
                      _fmt(r.assd_mm), _fmt(r.volume_pred_ml), _fmt(r.volume_truth_ml)]
            for j, text in enumerate(values):
                self.table.setItem(i, j, QTableWidgetItem(text))
        self.table.resizeColumnsToContents()
        self.export_button.enabled = True
        self.status.value = (f"mean Dice {_fmt(evaluation.mean('dice'))}, IoU "
                             f"{_fmt(evaluation.mean('iou'))}, HD95 "
                             f"{_fmt(evaluation.mean('hd95_mm'))} mm")

    def export(self, path: str | Path | None = None, *, overwrite: bool = False) -> Path | None:
        """Write the table as CSV; an existing file is replaced only when the save dialog
        asked (or ``overwrite``)."""
        if self.evaluation is None:
            return None
        if path is None:
            chosen, _ = QFileDialog.getSaveFileName(self, "Export metrics", "metrics.csv",
                                                    "CSV (*.csv)")
            if not chosen:
                return None
            path, overwrite = chosen, True  # the dialog asked before replacing
        target = Path(path)
        text = self.evaluation.to_csv()
        write_atomically(target, lambda tmp: tmp.write_text(text), overwrite=overwrite)
        self.status.value = f"wrote {target}"
        return target
