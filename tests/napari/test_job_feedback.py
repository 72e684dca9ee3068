"""What a tab shows while and after a job runs (#16): progress and status reset after Cancel
and failure, a failure clears the previous result table, the status wraps, the Run/Cancel
row keeps its size, the result table grows with its rows, and messages name settings by the
controls a person changes and layers by their names."""

from __future__ import annotations

import time
from collections.abc import Generator

import numpy as np
import pytest
from qtpy.QtWidgets import QApplication, QVBoxLayout, QWidget

from napari_medseg._napari import notify
from napari_medseg._napari.job_panel import JobPanel
from napari_medseg._napari.widgets.evaluate_widget import EvaluateWidget
from napari_medseg.errors import MedsegError, setting
from napari_medseg.events import Progress
from napari_medseg.inference import InferenceError

pytestmark = pytest.mark.gui

LONG = ("Segmenting ct_abdomen (CT) with head-ct-tissue: window 12 of 48, 0:41 left, and "
        "enough words after it to need a few lines in a narrow dock")


@pytest.fixture
def shown(monkeypatch):
    messages: list[str] = []
    monkeypatch.setattr(notify, "show_error", messages.append)
    monkeypatch.setattr(notify, "show_warning", messages.append)
    return messages


def _job(n: int, *, pause: float = 0.0, fail: Exception | None = None
         ) -> Generator[Progress, None, str]:
    for i in range(1, n + 1):
        time.sleep(pause)
        yield Progress(stage="test", done=i, total=100)
    if fail is not None:
        raise fail
    return "done"


def test_progress_returns_to_zero_after_cancel_and_failure(qtbot, shown):
    panel = JobPanel("Run")
    panel.start(_job(100, pause=0.05), on_done=lambda r: None, context="t", text="x")
    qtbot.waitUntil(lambda: panel.progress.value >= 2, timeout=10_000)
    panel.cancel()
    qtbot.waitUntil(lambda: not panel.runner.running, timeout=10_000)
    assert (panel.progress.value, panel.status.value) == (0, "cancelled")
    panel.start(_job(30, fail=MedsegError("the scan is gone; open it again")),
                on_done=lambda r: None, context="t", text="x")
    qtbot.waitUntil(lambda: not panel.runner.running, timeout=10_000)
    assert panel.progress.value == 0
    assert panel.status.value.endswith(": the scan is gone; open it again")


def _squeezed(panel: JobPanel, height: int = 140) -> QWidget:
    holder = QWidget()
    QVBoxLayout(holder).addWidget(panel.native)
    holder.resize(300, height)
    holder.show()
    QApplication.processEvents()
    return holder


def test_a_long_status_wraps_and_the_buttons_keep_their_size(qtbot):
    panel = JobPanel("Segment")
    holder = _squeezed(panel)
    panel.status.value = LONG
    for _ in range(5):
        QApplication.processEvents()
    label = panel.status.native
    assert label.height() >= label.heightForWidth(label.width())  # every line shown
    assert label.height() > 2 * label.fontMetrics().height()  # wrapped, not one clipped line
    button = panel.run_button.native
    assert button.height() >= button.sizeHint().height()  # not a sliver of half-cut text
    assert panel.progress.native.height() >= panel.progress.native.sizeHint().height()
    holder.close()


def _pair(viewer):  # type: ignore[no-untyped-def]
    _image, truth = viewer.open_sample("napari-medseg", "ct_abdomen")
    pred = viewer.add_labels(np.roll(np.asarray(truth.data), 2, axis=2), name="pred",
                             scale=truth.scale, translate=truth.translate,
                             affine=truth.affine.affine_matrix)
    return pred, truth


def test_the_table_grows_with_its_rows_and_a_failure_clears_it(make_napari_viewer, qtbot,
                                                                shown):
    viewer = make_napari_viewer(show=True)
    pred, truth = _pair(viewer)
    widget = EvaluateWidget(viewer)
    viewer.window.add_dock_widget(widget, name="Evaluate")
    widget.pred.value, widget.truth.value = pred, truth
    widget.run()
    qtbot.waitUntil(lambda: widget.evaluation is not None and not widget.runner.running,
                    timeout=60_000)
    table = widget.table
    rows = table.rowCount()
    assert rows > 5
    needed = table.horizontalHeader().height() + sum(table.rowHeight(i) for i in range(rows))
    assert table.height() >= needed  # every row shows: no one-row table with a scroll bar
    assert not table.verticalScrollBar().isVisible()

    # a run that fails: the grids differ (a layer moved by hand)
    moved = viewer.add_labels(np.asarray(truth.data), name="moved", scale=truth.scale,
                              translate=np.asarray(truth.translate) + np.array([30.0, 0, 0]))
    widget.truth.value = moved
    widget.run()
    qtbot.waitUntil(lambda: not widget.runner.running, timeout=60_000)
    assert "prediction 'pred' and reference 'moved'" in shown[-1]  # layers by their names
    assert widget.status.value.startswith("failed after")
    assert table.rowCount() == 0  # the last run's numbers are gone with it
    assert widget.evaluation is None
    assert not widget.export_button.enabled
    assert widget.progress.value == 0


def test_messages_name_settings_by_their_controls(shown):
    error = InferenceError(f"turn resampling off ({setting('resample', False)}) or use "
                           f"{setting('device', 'cpu')} with {setting('slice_axis', 0)}")
    assert str(error) == ("turn resampling off (resample=False) or use device='cpu' with "
                          "slice_axis=0")  # Python's spelling
    notify.report(error, context="segment")
    assert shown[-1] == ("napari-medseg: segment: turn resampling off (untick 'resample to the "
                         "model's spacing') or use 'device' cpu with '2D slicing' axial (0)")
