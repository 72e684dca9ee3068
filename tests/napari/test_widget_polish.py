"""What a person expects of the dock widgets (issue #7): one tabbed dock, a tooltip on every
control, keyboard shortcuts that work while the canvas has focus, buttons that follow the job,
a status line that says what runs and how long it has left, and choices remembered between
sessions."""

from __future__ import annotations

import json
import logging
import os
import re
import sys
import time
from pathlib import Path

import numpy as np
import pytest
from qtpy.QtCore import Qt
from qtpy.QtWidgets import (
    QAbstractButton,
    QAbstractItemView,
    QAbstractSlider,
    QAbstractSpinBox,
    QComboBox,
    QLineEdit,
    QPlainTextEdit,
    QTextEdit,
    QWidget,
)

from napari_medseg._napari import notify, settings, shortcuts
from napari_medseg._napari.job_panel import JobPanel, format_clock, format_duration
from napari_medseg._napari.launch import open_viewer, widget_names
from napari_medseg._napari.widgets.evaluate_widget import EvaluateWidget
from napari_medseg._napari.widgets.finetune_widget import FinetuneWidget
from napari_medseg._napari.widgets.fuse_widget import FuseWidget
from napari_medseg._napari.widgets.scan_widget import ScanWidget
from napari_medseg._napari.widgets.segment_widget import FROM_FILE, MODEL_KEY, SegmentWidget
from napari_medseg._napari.widgets.train_widget import TrainWidget
from napari_medseg.events import Progress
from napari_medseg.inference.catalog import find_checkpoint
from napari_medseg.paths import CONFIG_ENV
from tests.conftest import save_tiny_ct_checkpoint

pytestmark = pytest.mark.gui

WIDGETS = (ScanWidget, SegmentWidget, TrainWidget, FinetuneWidget, EvaluateWidget, FuseWidget)
INTERACTIVE = (QAbstractButton, QComboBox, QAbstractSpinBox, QLineEdit, QAbstractSlider,
               QAbstractItemView, QTextEdit, QPlainTextEdit)
CTRL_SHIFT = Qt.KeyboardModifier.ControlModifier | Qt.KeyboardModifier.ShiftModifier


def _qt(widget) -> QWidget:
    return widget if isinstance(widget, QWidget) else widget.native


def _controls(root: QWidget) -> list[QWidget]:
    """Every control a person can use in ``root``; the parts of a composite control (a spin
    box's line edit, a table's scroll bars) belong to it and share its tooltip."""
    found = []
    for child in root.findChildren(QWidget):
        if not isinstance(child, INTERACTIVE):
            continue
        parent = child.parentWidget()
        while parent is not None and parent is not root and not isinstance(parent, INTERACTIVE):
            parent = parent.parentWidget()
        if parent is None or parent is root:
            found.append(child)
    return found


def _canvas(viewer) -> QWidget:
    return viewer.window._qt_viewer.canvas.native


def _press(qtbot, target: QWidget, key) -> None:
    target.setFocus()
    qtbot.keyClick(target, key, CTRL_SHIFT)


@pytest.fixture
def tiny(tmp_path):
    return save_tiny_ct_checkpoint(tmp_path / "tiny.safetensors",
                                   {0: "background", 1: "a", 2: "b"}, patch_size=(16, 48, 48))


@pytest.fixture
def shown(monkeypatch):
    """Notifications shown to the person, in order."""
    messages: list[str] = []
    monkeypatch.setattr(notify, "show_error", messages.append)
    monkeypatch.setattr(notify, "show_warning", messages.append)
    return messages


# ------------------------------------------------------------------ one tabbed dock
def test_main_window_opens_every_widget_as_tabs_with_segment_in_front(qtbot,
                                                                      make_napari_viewer):
    viewer = open_viewer(sample="ct_abdomen", viewer=make_napari_viewer(show=True))
    qtbot.wait(50)
    names = widget_names()
    assert names == ["Scan", "Segment", "Interactive", "Train", "Correct and fine-tune",
                     "Evaluate", "Fuse"]
    dock = viewer.window.dock_widgets["MedSeg"]  # one dock, a tab per widget
    assert list(viewer.window.dock_widgets) == ["MedSeg"]
    widgets = {n: dock.tab(n) for n in names}
    assert dock.current() == "Segment"
    visible = [n for n, w in widgets.items() if not _qt(w).visibleRegion().isEmpty()]
    assert visible == ["Segment"]  # the main job's tab is in front
    segment = widgets["Segment"]
    assert [layer.name for layer in segment.images.value] == ["ct_abdomen"]
    # CT -> the CT model that fits this scan best: the abdominal organs, not the head model
    assert segment.model.value == str(find_checkpoint("upper-abdomen-ct-organs"))
    assert "press Segment" in segment.status.value
    assert shortcuts.key_text(shortcuts.SEGMENT) in segment.segment_button.text
    for widget in widgets.values():  # the docked widgets pass the tooltip check too
        assert not [c for c in _controls(_qt(widget)) if not c.toolTip().strip()]


def test_layer_choices_start_sensibly(make_napari_viewer):
    viewer = make_napari_viewer()
    ct, organs = viewer.open_sample("napari-medseg", "ct_abdomen")
    scan = ScanWidget(viewer)
    fuse = FuseWidget(viewer)
    evaluate = EvaluateWidget(viewer)
    mr = viewer.open_sample("napari-medseg", "mr_abdomen")[0]
    prediction = viewer.add_labels(np.zeros(organs.data.shape, np.uint8), name="pred",
                                   metadata={MODEL_KEY: "head-ct-tissue"})
    for widget in (scan, fuse, evaluate):  # what napari does when layers change
        widget.reset_choices()
    scan.layer.value = ct
    scan.reset_choices()
    assert "lung" in scan.preset.choices  # CT windows survive a refresh
    assert (fuse.fixed.value, fuse.moving.value) == (ct, mr)  # two different scans
    assert (evaluate.pred.value, evaluate.truth.value) == (prediction, organs)


# ------------------------------------------------------------------ tooltips
@pytest.mark.parametrize("widget_class", WIDGETS, ids=lambda c: c.__name__)
def test_every_control_has_a_tooltip(make_napari_viewer, widget_class):
    viewer = make_napari_viewer()
    viewer.open_sample("napari-medseg", "ct_abdomen")
    widget = widget_class(viewer)
    controls = _controls(_qt(widget))
    assert len(controls) >= 2
    missing = [f"{type(c).__name__} {c.text() if hasattr(c, 'text') else ''!r}"
               for c in controls if not c.toolTip().strip()]
    assert not missing, f"{widget_class.__name__}: controls without a tooltip: {missing}"


# ------------------------------------------------------------------ shortcuts
def test_shortcut_keys_are_free_in_napari():
    from napari.utils.key_bindings import coerce_keybinding
    from napari.utils.shortcuts import default_shortcuts

    ours = {coerce_keybinding(k) for k in (shortcuts.SEGMENT, shortcuts.TRAIN, shortcuts.FINETUNE,
                                           shortcuts.MARK_REVIEWED, shortcuts.CANCEL)}
    assert len(ours) == 5
    napari_keys = {coerce_keybinding(k) for keys in default_shortcuts.values() for k in keys}
    assert not ours & napari_keys


def test_segment_and_cancel_keys_work_while_the_canvas_has_focus(make_napari_viewer, qtbot,
                                                                  tiny):
    viewer = make_napari_viewer(show=True)
    image, _labels = viewer.open_sample("napari-medseg", "ct_abdomen")
    widget = SegmentWidget(viewer)
    viewer.window.add_dock_widget(widget, name="Segment")
    widget.images.value = [image]
    widget.model.value = FROM_FILE
    widget.model_file.value = tiny
    widget.device.value = "cpu"
    widget.tile.value = "8 24 24"  # many windows: time to press Cancel
    n_layers = len(viewer.layers)
    assert "Ctrl+Shift+S" in widget.segment_button.tooltip
    assert "Ctrl+Shift+X" in widget.cancel_button.tooltip

    _press(qtbot, _canvas(viewer), Qt.Key.Key_S)
    assert widget.runner.running
    assert not widget.segment_button.enabled
    assert widget.cancel_button.enabled
    qtbot.waitUntil(lambda: widget.progress.value > 0, timeout=60_000)
    assert re.fullmatch(r"Segmenting ct_abdomen \(CT\) with tiny: window \d+ of \d+"
                        r"(, \d+:\d\d left)?", widget.status.value), widget.status.value
    _press(qtbot, _canvas(viewer), Qt.Key.Key_X)
    qtbot.waitUntil(lambda: not widget.runner.running, timeout=60_000)
    assert widget.status.value == "cancelled"
    assert widget.segment_button.enabled
    assert not widget.cancel_button.enabled
    assert len(viewer.layers) == n_layers

    # a key the docked widget does not use reaches the viewer too (focus on a button)
    widget.tile.value = "16 48 48"
    _press(qtbot, _qt(widget.segment_button), Qt.Key.Key_S)
    assert widget.runner.running
    qtbot.waitUntil(lambda: not widget.runner.running, timeout=120_000)
    assert widget.status.value.startswith("done in ")
    assert widget.segment_button.enabled
    assert not widget.cancel_button.enabled
    assert viewer.layers[-1].name == "ct_abdomen [tiny]"


def test_review_and_finetune_keys_while_painting(make_napari_viewer, qtbot, shown):
    viewer = make_napari_viewer(show=True)
    image, labels = viewer.open_sample("napari-medseg", "ct_abdomen")
    widget = FinetuneWidget(viewer)
    viewer.window.add_dock_widget(widget, name="Correct and fine-tune")
    widget.labels.value = labels
    widget.image.value = image
    assert "Ctrl+Shift+R" in widget.corrections.review_button.text
    assert "Ctrl+Shift+F" in widget.finetune_button.text

    _press(qtbot, _canvas(viewer), Qt.Key.Key_F)  # nothing labeled yet: refused, with the fix
    assert "no labeled voxel yet" in shown[-1]
    assert not widget.runner.running

    labels.mode = "paint"  # the person is painting on the canvas
    viewer.dims.set_point(0, labels.data_to_world((14, 0, 0))[0])
    _press(qtbot, _canvas(viewer), Qt.Key.Key_R)
    assert widget.corrections.tracker is not None
    assert widget.corrections.tracker.reviewed[14].all()
    assert not widget.corrections.tracker.reviewed[13].any()


def test_a_closed_widget_no_longer_answers_its_key(make_napari_viewer, qtbot):
    viewer = make_napari_viewer(show=True)
    calls = []

    class Probe(QWidget):
        def act(self) -> None:
            calls.append(self)

    first, second = Probe(), Probe()
    shortcuts.bind(viewer, shortcuts.SEGMENT, first.act)
    shortcuts.bind(viewer, shortcuts.SEGMENT, second.act)
    _press(qtbot, _canvas(viewer), Qt.Key.Key_S)
    assert calls == [second]  # the newest widget answers
    second.deleteLater()
    qtbot.waitUntil(lambda: not shortcuts._alive(second), timeout=5_000)
    _press(qtbot, _canvas(viewer), Qt.Key.Key_S)
    assert calls == [second, first]
    first.deleteLater()


# ------------------------------------------------------------------ buttons and status
def _job(events: list[Progress], *, fail: Exception | None = None, pause: float = 0.0):
    for event in events:
        yield event
        time.sleep(pause)
    if fail is not None:
        raise fail
    return "result"


def test_panel_buttons_and_status_through_finish_cancel_and_error(qtbot, shown):
    panel = JobPanel("Segment", shortcut=shortcuts.SEGMENT, idle_text="Choose a scan")
    assert panel.status.value == "Choose a scan"
    assert panel.run_button.enabled
    assert not panel.cancel_button.enabled
    results = []

    # finished: ETA while running, elapsed time at the end
    eta = Progress(stage="segment", done=12, total=48, eta_s=41.0, message="tile 12/48")
    panel.start(_job([eta], pause=1.0), on_done=results.append, context="segment",
                text="Segmenting CT with head-ct-tissue")
    assert not panel.run_button.enabled
    assert panel.cancel_button.enabled
    assert panel.status.value == "Segmenting CT with head-ct-tissue..."
    qtbot.waitUntil(lambda: panel.progress.value == 25, timeout=10_000)
    assert panel.status.value == "Segmenting CT with head-ct-tissue: tile 12/48, 0:41 left"
    qtbot.waitUntil(lambda: not panel.runner.running, timeout=10_000)
    assert results == ["result"]
    assert re.fullmatch(r"done in \d+\.\d s", panel.status.value)
    assert panel.run_button.enabled
    assert not panel.cancel_button.enabled

    # cancelled
    slow = [Progress(stage="s", done=i, total=100) for i in range(100)]
    panel.start(_job(slow, pause=0.05), on_done=results.append, context="segment", text="x")
    qtbot.waitUntil(lambda: panel.progress.value > 0, timeout=10_000)
    panel.cancel()
    qtbot.waitUntil(lambda: not panel.runner.running, timeout=10_000)
    assert panel.status.value == "cancelled"
    assert results == ["result"]  # a cancelled job's result is dropped
    assert panel.run_button.enabled
    assert not panel.cancel_button.enabled
    panel.cancel()  # nothing runs: nothing changes
    assert panel.status.value == "cancelled"

    # failed: a notification with the fix, the reason in the status, buttons back
    panel.start(_job([], fail=MemoryError("cannot allocate 8 GiB")), on_done=results.append,
                context="segment", text="x")
    qtbot.waitUntil(lambda: not panel.runner.running, timeout=10_000)
    assert "MemoryError" in shown[-1]
    assert "smaller tile" in shown[-1]
    assert re.fullmatch(r"failed after \d+\.\d s: cannot allocate 8 GiB", panel.status.value)
    assert panel.run_button.enabled
    assert not panel.cancel_button.enabled

    # turning the result into layers failed: reported the same way
    def broken(_result):
        msg = "read-only folder"
        raise PermissionError(msg)

    panel.start(_job([]), on_done=broken, context="save", text="x")
    qtbot.waitUntil(lambda: not panel.runner.running, timeout=10_000)
    assert "PermissionError" in shown[-1]
    assert "you can write to" in shown[-1]
    assert panel.status.value.startswith("failed after")


def test_a_second_start_is_refused_and_leaves_the_first_alone(qtbot, shown):
    panel = JobPanel("Run")
    slow = [Progress(stage="s", done=i, total=50) for i in range(50)]
    panel.start(_job(slow, pause=0.02), on_done=lambda r: None, context="job", text="first")
    second = _job([])
    panel.start(second, on_done=lambda r: None, context="job", text="second")
    assert "already running" in shown[-1]
    assert second.gi_frame is None  # closed, never run
    assert panel.what == "first"
    panel.cancel()
    qtbot.waitUntil(lambda: not panel.runner.running, timeout=10_000)


def test_evaluate_buttons_follow_the_job(make_napari_viewer, qtbot):
    viewer = make_napari_viewer()
    _image, truth = viewer.open_sample("napari-medseg", "ct_abdomen")
    pred = viewer.add_labels(np.roll(np.asarray(truth.data), 1, axis=2), name="pred",
                             scale=truth.scale, translate=truth.translate,
                             affine=truth.affine.affine_matrix)
    widget = EvaluateWidget(viewer)
    widget.pred.value, widget.truth.value = pred, truth
    widget.run()
    assert not widget.run_button.enabled
    assert widget.cancel_button.enabled
    assert widget.status.value == f"Evaluating pred against {truth.name}..."
    qtbot.waitUntil(lambda: not widget.runner.running, timeout=60_000)
    assert widget.run_button.enabled
    assert not widget.cancel_button.enabled
    assert re.match(r"done in \d+\.\d s: mean Dice 0\.\d{3}", widget.status.value)


def test_segment_error_ends_in_a_notification_and_a_failed_status(make_napari_viewer, qtbot,
                                                                    tiny, shown):
    viewer = make_napari_viewer()
    image = viewer.open_sample("napari-medseg", "ct_abdomen")[0]
    widget = SegmentWidget(viewer)
    widget.images.value = [image, image]  # two channels for a one-channel model
    widget.model.value = FROM_FILE
    widget.model_file.value = tiny
    widget.device.value = "cpu"
    widget.segment()
    qtbot.waitUntil(lambda: not widget.runner.running, timeout=60_000)
    assert "takes 1 input channel" in shown[-1]
    assert widget.status.value.startswith("failed after")
    assert widget.segment_button.enabled
    assert not widget.cancel_button.enabled


def test_durations():
    assert format_clock(41.2) == "0:41"
    assert format_clock(725) == "12:05"
    assert format_clock(3723) == "1:02:03"
    assert format_duration(3.24) == "3.2 s"
    assert format_duration(65) == "1:05"


# ------------------------------------------------------------------ remembered settings
def test_settings_live_in_the_config_dir(monkeypatch, tmp_path):
    monkeypatch.setenv(CONFIG_ENV, str(tmp_path / "cfg"))
    assert settings.settings_path() == tmp_path / "cfg" / "settings.json"
    monkeypatch.delenv(CONFIG_ENV)
    monkeypatch.setenv("XDG_CONFIG_HOME", str(tmp_path / "xdg"))
    if sys.platform.startswith("linux"):
        assert settings.config_dir() == tmp_path / "xdg" / "napari-medseg"


def test_choices_are_restored_in_a_new_widget(make_napari_viewer, tmp_path, monkeypatch):
    models = tmp_path / "models"
    models.mkdir()
    monkeypatch.setenv("NAPARI_MEDSEG_MODELS", str(models))
    mine = save_tiny_ct_checkpoint(models / "my-ct.safetensors", {0: "background", 1: "a"})
    viewer = make_napari_viewer()
    ct = viewer.open_sample("napari-medseg", "ct_abdomen")[0]
    mr = viewer.open_sample("napari-medseg", "mr_brain_lesion")[0]
    mr.metadata["medseg_modality"] = "MR"

    segment = SegmentWidget(viewer)
    segment.images.value = [ct]
    segment.model.value = str(mine)
    segment.device.value = "cpu"
    segment.tile.value = "32 64 64"
    segment.overlap.value = 0.25
    segment.tta.value = True
    segment.fill_holes.value = True
    finetune = FinetuneWidget(viewer)
    finetune.steps.value = 7
    finetune.learning_rate.value = 0.0003
    finetune.freeze.value = True
    finetune.device.value = "cpu"
    fuse = FuseWidget(viewer)
    fuse.kind.value = "affine"
    fuse.method.value = "wavelet"
    fuse.levels.value = 3
    for widget in (segment, finetune, fuse):
        widget.close()
        widget.deleteLater()

    path = settings.settings_path()
    assert path.parent == Path(os.environ[CONFIG_ENV])  # never the person's ~/.config
    assert sorted(p.name for p in path.parent.iterdir()) == ["settings.json"]  # atomic: no tmp
    stored = json.loads(path.read_text())
    assert stored["segment"]["tile"] == "32 64 64"
    assert stored["finetune"]["learning_rate"] == pytest.approx(3e-4)
    assert stored["fuse"]["method"] == "wavelet"

    segment = SegmentWidget(viewer)
    assert (segment.device.value, segment.tile.value) == ("cpu", "32 64 64")
    assert segment.overlap.value == pytest.approx(0.25)
    assert segment.tta.value
    assert segment.fill_holes.value
    segment.images.value = [ct]
    assert segment.model.value == str(mine)  # remembered, and it fits CT: kept
    segment.images.value = [mr]
    assert segment.model.value == str(find_checkpoint("brain-tissue-t1"))  # MR: suggested
    segment.images.value = [ct]
    assert segment.model.value == str(find_checkpoint("upper-abdomen-ct-organs"))
    finetune = FinetuneWidget(viewer)
    assert finetune.steps.value == 7
    assert finetune.learning_rate.value == pytest.approx(3e-4)
    assert finetune.freeze.value
    assert finetune.device.value == "cpu"
    fuse = FuseWidget(viewer)
    assert (fuse.kind.value, fuse.method.value, fuse.levels.value) == ("affine", "wavelet", 3)


def test_export_folder_is_remembered(make_napari_viewer, qtbot, tmp_path):
    viewer = make_napari_viewer()
    _image, truth = viewer.open_sample("napari-medseg", "ct_abdomen")
    copy = viewer.add_labels(np.asarray(truth.data), name="copy", scale=truth.scale,
                             translate=truth.translate, affine=truth.affine.affine_matrix)
    widget = EvaluateWidget(viewer)
    widget.pred.value, widget.truth.value = copy, truth
    widget.run()
    qtbot.waitUntil(lambda: widget.evaluation is not None, timeout=60_000)
    (tmp_path / "out").mkdir()
    widget.export(tmp_path / "out" / "m.csv")
    assert EvaluateWidget(viewer).settings.get("export_dir") == str(tmp_path / "out")


@pytest.mark.parametrize("content", ["{not json", "[1, 2, 3]", "\xff\xfe garbage"])
def test_a_corrupt_settings_file_is_ignored(make_napari_viewer, caplog, content):
    path = settings.settings_path()
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(content.encode("latin-1"))
    viewer = make_napari_viewer()
    with caplog.at_level(logging.WARNING, logger="napari_medseg._napari.settings"):
        widget = SegmentWidget(viewer)
    assert "ignoring the napari-medseg settings" in caplog.text
    assert widget.device.value == "auto"  # defaults
    widget.device.value = "cpu"  # the next change writes a good file
    assert json.loads(path.read_text())["segment"]["device"] == "cpu"


def test_values_a_control_no_longer_accepts_are_skipped(make_napari_viewer):
    settings.save_section("segment", {"device": "cuda:7", "model": "/gone.safetensors",
                                      "overlap": 0.3, "batch": -4})
    settings.save_section("finetune", {"steps": "many"})
    viewer = make_napari_viewer()
    segment = SegmentWidget(viewer)
    assert segment.device.value == "auto"
    assert segment.overlap.value == pytest.approx(0.3)  # the good values still apply
    assert segment.batch.value >= 0
    assert FinetuneWidget(viewer).steps.value == 0  # 0 = as many as fit the time budget
