"""napari killed (SIGKILL) after strokes in the Correct tab, restarted: the person is asked
once, Restore brings back exactly the acknowledged strokes, Discard gives a clean layer."""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import time

import numpy as np
import pytest

from tests.conftest import REPO, SAMPLE_VOLUMES

pytestmark = pytest.mark.gui

#: A Correct-tab session: open the scan, add a labels layer, Track corrections, then paint with
#: napari's brush, printing each stroke's number once napari has reported it.
CHILD = r"""
import sys
import numpy as np
import napari
from napari_medseg._napari.widgets.finetune_widget import FinetuneWidget
from tests.napari.test_journal_restore import STROKES, session

viewer, labels, widget = session(napari.Viewer(show=False), sys.argv[1])
widget.corrections.ask_restore = lambda summary: sys.exit(f"asked at first: {summary}")
widget.corrections.track()
for i, (z, y, x, value) in enumerate(STROKES):
    labels.selected_label = value
    labels.paint((z, y, x), value)
    print("stroke", i, flush=True)
"""

STROKES = [(z, 60 + 3 * i, 70 + 2 * i, 1 + i % 3) for i, z in enumerate(range(3, 15))] * 2


def session(viewer, scan_path):  # type: ignore[no-untyped-def]
    """The scan opened as a person would, an empty labels layer on it, the Correct tab."""
    from napari_medseg._napari.widgets.finetune_widget import FinetuneWidget

    image = viewer.open(str(scan_path), plugin="napari-medseg")[0]
    labels = viewer.add_labels(np.zeros(image.data.shape, np.uint8), name="lesions",
                               scale=image.scale, translate=image.translate, units=image.units)
    labels.brush_size = 5
    widget = FinetuneWidget(viewer)
    widget.labels.value, widget.image.value = labels, image
    return viewer, labels, widget


def _expected(shape, n):  # type: ignore[no-untyped-def]
    from napari.layers import Labels

    layer = Labels(np.zeros(shape, np.uint8))
    layer.brush_size = 5
    for z, y, x, value in STROKES[:n]:
        layer.selected_label = value
        layer.paint((z, y, x), value)
    return np.asarray(layer.data)


def _answer_dialog(qtbot, text):  # type: ignore[no-untyped-def]
    """Click ``text`` in the restore question when it shows; returns what it asked."""
    from qtpy.QtCore import QTimer
    from qtpy.QtWidgets import QApplication, QMessageBox

    asked: list[str] = []

    def click() -> None:
        box = QApplication.activeModalWidget()
        if not isinstance(box, QMessageBox):
            QTimer.singleShot(50, click)
            return
        asked.append(box.text())
        next(b for b in box.buttons() if b.text() == text).click()

    QTimer.singleShot(50, click)
    return asked


def test_killed_napari_is_asked_restores_exactly_then_discards(make_napari_viewer, qtbot,
                                                               tmp_path):
    from napari_medseg.paths import journals_dir

    scan_path = tmp_path / "ct.nii.gz"
    shutil.copy(SAMPLE_VOLUMES / "ct_abdomen.nii.gz", scan_path)
    child = subprocess.Popen([sys.executable, "-c", CHILD, str(scan_path)], cwd=REPO,
                             env={**os.environ, "PYTHONUNBUFFERED": "1"},
                             stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    assert child.stdout is not None
    acked: list[int] = []
    deadline = time.monotonic() + 180
    while len(acked) < 15 and time.monotonic() < deadline:
        line = child.stdout.readline()
        if not line:
            break
        if line.startswith("stroke "):  # napari may print warnings between them
            acked.append(int(line.split()[1]))
    child.send_signal(signal.SIGKILL)
    child.wait()
    assert len(acked) == 15, child.stderr.read() if child.stderr else ""
    journals = list(journals_dir().glob("ct.*.lesions.corrections.jsonl"))
    assert len(journals) == 1  # in the one documented folder, named as the docs say

    # restart: asked once, Restore -> exactly the acknowledged strokes (the 16th may have
    # reached the journal before the kill)
    viewer, labels, widget = session(make_napari_viewer(), scan_path)
    asked = _answer_dialog(qtbot, "Restore")
    widget.corrections.track()
    assert len(asked) == 1
    assert "edited voxel" in asked[0]
    restored = np.asarray(labels.data)
    matches = [n for n in (15, 16) if np.array_equal(restored, _expected(restored.shape, n))]
    assert matches, "the restored labels are not the acknowledged strokes"
    assert widget.corrections.tracker.edited.sum() == (restored > 0).sum()
    viewer.close()

    # another restart: Discard -> a clean layer, and the journal is gone for good
    viewer, labels, widget = session(make_napari_viewer(), scan_path)
    asked = _answer_dialog(qtbot, "Discard")
    widget.corrections.track()
    assert len(asked) == 1
    assert not np.asarray(labels.data).any()
    assert not widget.corrections.tracker.edited.any()
    viewer.close()
    viewer, labels, widget = session(make_napari_viewer(), scan_path)
    widget.corrections.ask_restore = lambda summary: pytest.fail(f"asked again: {summary}")
    widget.corrections.track()
    assert not np.asarray(labels.data).any()
