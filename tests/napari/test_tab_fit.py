"""Every MedSeg tab fits a 1280x800 window with its folds open (issue #27): no sideways scroll
bar, no control cut or out of reach, long texts wrapped; the view is refitted when the dock
opens and when a scan is opened through the plugin."""

from __future__ import annotations

import shutil

import numpy as np
import pytest
from qtpy.QtCore import QPoint, QRect
from qtpy.QtWidgets import (
    QAbstractButton,
    QAbstractSpinBox,
    QApplication,
    QComboBox,
    QLabel,
    QLineEdit,
    QProgressBar,
    QWidget,
)
from superqt import QCollapsible

from napari_medseg._napari.dock import open_dock
from tests.conftest import SAMPLE_VOLUMES
from tests.napari.window_check import needed_size

pytestmark = pytest.mark.gui
PLUGIN = "napari-medseg"
#: A scan named as scanners name series: the layer name and the modality's reason (the file
#: name) are one 55-character word.
LONG_NAME = "abdomen_t1_vibe_dixon_tra_bh_opposed_phase_series_0007"
CONTROLS = (QAbstractButton, QAbstractSpinBox, QComboBox, QLabel, QLineEdit, QProgressBar)


def _settle(qtbot, ms: int = 60) -> None:
    qtbot.wait(ms)
    QApplication.processEvents()


def _out_of_reach(page) -> list[str]:
    """Visible widgets of a tab page whose right edge passes the viewport's, or that lie
    outside the scrolled content (so no scrolling shows them whole)."""
    viewport, holder = page.viewport(), page.widget()
    found = []
    for child in holder.findChildren(QWidget):
        if not child.isVisible() or child.width() <= 0 or child.height() <= 0:
            continue
        left = child.mapTo(viewport, QPoint(0, 0)).x()
        inside = QRect(child.mapTo(holder, QPoint(0, 0)), child.size())
        if left + child.width() > viewport.width() + 1 or not holder.rect().contains(inside):
            found.append(f"{type(child).__name__} {child.objectName()!r} at "
                         f"x={left}..{left + child.width()} of {viewport.width()}, "
                         f"y={inside.top()}..{inside.bottom()} of {holder.height()}")
    return found


def _cut(page) -> list[str]:
    """Visible controls of a tab page smaller than they need: a button, label or progress bar
    its whole text (a wrapped label: its longest word, and the lines at its width), a combo
    box its arrow and a few characters (a longer choice is cut at the arrow by design)."""
    found = []
    for widget in page.widget().findChildren(QWidget):
        if not isinstance(widget, CONTROLS) or not widget.isVisible() or isinstance(
                widget.parentWidget(), QAbstractSpinBox | QComboBox):
            continue
        if isinstance(widget, QComboBox):
            need = widget.minimumSizeHint()
            need_w, need_h = need.width(), need.height()
        else:
            need_w, need_h = needed_size(widget)
        if widget.width() < need_w or widget.height() < need_h:
            text = widget.text() if hasattr(widget, "text") else ""
            found.append(f"{type(widget).__name__} {str(text)[:40]!r}: "
                         f"{widget.width()}x{widget.height()} < {need_w}x{need_h}")
    return found


def test_every_tab_fits_1280x800_with_its_folds_open(qtbot, tmp_path, napari_settings,
                                                     make_napari_viewer):
    viewer = make_napari_viewer(show=True)
    path = tmp_path / f"{LONG_NAME}.nii.gz"
    shutil.copy(SAMPLE_VOLUMES / "mr_abdomen.nii.gz", path)
    mr = viewer.open(str(path), plugin=PLUGIN)[0]
    viewer.open_sample(PLUGIN, "ct_abdomen")
    dock = open_dock(viewer)
    window = dock.window()
    window.resize(1280, 800)
    _settle(qtbot)
    dock.fit_width()
    _settle(qtbot)
    scan = dock.tab("Scan")
    scan.layer.value = mr
    assert LONG_NAME in scan.info.value  # the modality's reason names the file: it wraps
    problems: dict[str, list] = {}
    for name in dock.names:
        dock.show_tab(name)
        page = dock.pages[name]
        for fold in page.widget().findChildren(QCollapsible):
            fold.expand(animate=False)
        _settle(qtbot, 150)
        assert page.isVisible()
        if page.horizontalScrollBar().isVisible():
            problems.setdefault(name, []).append("a horizontal scroll bar")
        problems.setdefault(name, []).extend(_out_of_reach(page))
        problems[name].extend(_cut(page))
        bar = page.verticalScrollBar()  # a tall tab scrolls down to its last control
        if bar.maximum() < page.widget().height() - page.viewport().height():
            problems[name].append("the vertical scroll bar does not reach the bottom")
        if not problems[name]:
            del problems[name]
    assert dock.width() <= 0.4 * window.width() + 1
    assert not problems, problems


def test_the_view_is_refitted_when_the_dock_opens_and_a_scan_is_opened(
        qtbot, napari_settings, make_napari_viewer):
    viewer = make_napari_viewer(show=True)
    viewer.open_sample(PLUGIN, "ct_abdomen")
    camera = viewer.scene.camera
    camera.zoom *= 7  # the person zoomed in (or the canvas changed size)
    zoomed = camera.zoom
    open_dock(viewer)
    _settle(qtbot, 100)
    fitted = camera.zoom
    assert fitted < zoomed / 3  # the whole scan shows again
    camera.zoom *= 7
    viewer.add_image(np.zeros((5, 5)), name="not ours")  # not opened through us: left alone
    _settle(qtbot, 100)
    assert camera.zoom == pytest.approx(7 * fitted)
    viewer.open_sample(PLUGIN, "mr_brain_lesion")  # a scan opened through us: refitted
    _settle(qtbot, 100)
    assert camera.zoom < 7 * fitted / 3
