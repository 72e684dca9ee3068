"""The dialog in which a person picks one series of a DICOM folder."""

from __future__ import annotations

from pathlib import Path

from qtpy.QtWidgets import QApplication, QInputDialog

from napari_medseg.io import DicomSeriesInfo


def ask_series(path: Path, series: list[DicomSeriesInfo]) -> int | None:
    """Index of the series chosen in a dialog, ``None`` when cancelled."""
    labels = [f"[{i}] {s.label()}" for i, s in enumerate(series)]
    parent = QApplication.activeWindow()
    choice, ok = QInputDialog.getItem(
        parent,
        "napari-medseg: choose a DICOM series",
        f"{path.name} holds {len(series)} series. Open which one?",
        labels,
        0,
        False,
    )
    if not ok:
        return None
    return labels.index(choice)
