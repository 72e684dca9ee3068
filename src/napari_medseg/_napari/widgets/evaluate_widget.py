"""The Evaluate tab: Dice, IoU, HD95, ASSD and volumes between two Labels layers.

The numbers come from the core's :func:`napari_medseg.metrics.evaluate_job` (what
``napari-medseg evaluate`` runs; spacing-aware, in mm and ml), computed in a worker; the
table can be exported as CSV (the folder is remembered between sessions).
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

from magicgui.widgets import Container, PushButton
from qtpy.QtCore import Qt
from qtpy.QtWidgets import QAbstractScrollArea, QFileDialog, QTableWidget, QTableWidgetItem

import napari
from napari_medseg._napari.job_widget import JobStart, JobWidget
from napari_medseg._napari.layers import MODEL_KEY, SOURCE_KEY, labels_from_layer
from napari_medseg._napari.notify import report, warn
from napari_medseg._napari.options_form import option_controls, options_from_controls
from napari_medseg.errors import MedsegError
from napari_medseg.metrics import EvaluateOptions, Evaluation, evaluate_job

COLUMNS = ("class", "Dice", "IoU", "HD95 mm", "ASSD mm", "pred ml", "truth ml")


def _fmt(value: float) -> str:
    return "-" if not math.isfinite(value) else f"{value:.3f}"


class EvaluateWidget(JobWidget):
    """Compare a prediction with a reference, per class."""

    section = "evaluate"
    run_text = "Evaluate"
    run_tooltip = "Compute the metrics per class"
    idle_text = "Choose a prediction and a reference, then press Evaluate"
    busy_text = "an evaluation"

    def __init__(self, viewer: napari.viewer.Viewer) -> None:
        super().__init__(viewer)
        self.evaluation: Evaluation | None = None
        self.pred = self.layer_choice(napari.layers.Labels, label="prediction",
                                      tooltip="The segmentation to judge (e.g. a model's "
                                              "output)")
        self.truth = self.layer_choice(napari.layers.Labels, label="reference",
                                       tooltip="The labels taken as correct (e.g. an "
                                               "expert's file)")
        self.evaluate_controls = option_controls(EvaluateOptions)
        self.surface = self.evaluate_controls["surface"]
        self.form = Container(widgets=[self.pred, self.truth, self.surface])
        self.export_button = PushButton(text="Export CSV...", enabled=False,
                                        tooltip="Save the table as a CSV file")
        self.table = QTableWidget(0, len(COLUMNS))
        self.table.setHorizontalHeaderLabels(list(COLUMNS))
        self.table.setToolTip("Per class: overlap (Dice, IoU), surface distances in mm and "
                              "volumes in ml; '-' where a class is missing on one side")
        self.table.setVerticalScrollBarPolicy(Qt.ScrollBarPolicy.ScrollBarAlwaysOff)
        self.table.setSizeAdjustPolicy(QAbstractScrollArea.SizeAdjustPolicy.AdjustToContents)
        self.add_controls(self.form)
        self.add_buttons(self.export_button)
        self.add_below(self.table)
        self.export_button.clicked.connect(self._export_clicked)
        self.remember("surface")
        self._fit_table()
        self.reset_choices()

    def reset_choices(self, *_: Any) -> None:
        """Refresh the layer lists (on every change of the layer list; overlays such as the
        labeled region of a correction are never listed).

        While both lists show the same layer (or one shows none), the prediction becomes the
        newest model output (else the newest labels) and the reference the newest other
        labels layer of its shape that no model made, a file's first.
        """
        super().reset_choices()
        if self.pred.value is not None and self.truth.value is not None and (
                self.pred.value is not self.truth.value):
            return
        labels = [layer for _name, layer in reversed(
            self.layer_choices(napari.layers.Labels)())]
        if len(labels) < 2:
            return
        made = [layer for layer in labels if layer.metadata.get(MODEL_KEY)]
        pred = made[0] if made else labels[0]
        others = [layer for layer in labels if layer is not pred
                  and not layer.metadata.get(MODEL_KEY) and layer.data.shape == pred.data.shape]
        if not others:
            return
        others.sort(key=lambda layer: not layer.metadata.get(SOURCE_KEY))  # files first
        self.pred.value, self.truth.value = pred, others[0]

    def clear_result(self) -> None:
        """A new run starts: the table of the last one goes (and its export)."""
        self.evaluation = None
        self.table.setRowCount(0)
        self.export_button.enabled = False
        self._fit_table()

    def _fit_table(self) -> None:
        """The table is as tall as its rows: no scroll bar of its own (the tab scrolls)."""
        table = self.table
        height = table.horizontalHeader().height() + 2 * table.frameWidth()
        height += sum(table.rowHeight(i) for i in range(table.rowCount()))
        if table.horizontalScrollBar().isVisible():
            height += table.horizontalScrollBar().height()
        table.setFixedHeight(height)

    def prepare(self) -> JobStart | None:
        pred, truth = self.pred.value, self.truth.value
        if pred is None or truth is None or pred is truth:
            warn("choose two different labels layers: a prediction and a reference")
            return None
        options = options_from_controls(EvaluateOptions, self.evaluate_controls)
        job = evaluate_job(labels_from_layer(pred), labels_from_layer(truth), options)
        return JobStart(job, text=f"Evaluating {pred.name} against {truth.name}")

    def show_result(self, evaluation: Evaluation) -> None:
        self.evaluation = evaluation
        rows = evaluation.rows
        self.table.setRowCount(len(rows))
        for i, r in enumerate(rows):
            values = [f"{r.label} {r.name}", _fmt(r.dice), _fmt(r.iou), _fmt(r.hd95_mm),
                      _fmt(r.assd_mm), _fmt(r.volume_pred_ml), _fmt(r.volume_truth_ml)]
            for j, text in enumerate(values):
                self.table.setItem(i, j, QTableWidgetItem(text))
        self.table.resizeColumnsToContents()
        self._fit_table()
        self.export_button.enabled = True
        self.panel.done(f"mean Dice {_fmt(evaluation.mean('dice'))}, IoU "
                        f"{_fmt(evaluation.mean('iou'))}, HD95 "
                        f"{_fmt(evaluation.mean('hd95_mm'))} mm")

    def _export_clicked(self) -> None:
        try:
            self.export()
        except MedsegError as exc:
            report(exc, context="export")

    def export(self, path: str | Path | None = None, *, overwrite: bool = False) -> Path | None:
        """Write the table as CSV; an existing file is replaced only when the save dialog
        asked (or ``overwrite``)."""
        if self.evaluation is None:
            return None
        if path is None:
            folder = Path(self.settings.get("export_dir") or ".")
            start = folder / "metrics.csv" if folder.is_dir() else Path("metrics.csv")
            chosen, _ = QFileDialog.getSaveFileName(self, "Export metrics", str(start),
                                                    "CSV (*.csv)")
            if not chosen:
                return None
            path, overwrite = chosen, True  # the dialog asked before replacing
        target = self.evaluation.write_csv(path, overwrite=overwrite)
        self.settings.set("export_dir", str(target.resolve().parent))
        self.status.value = f"wrote {target}"
        return target
