"""Open the MedSeg tools the ways a person does, on a virtual screen of a given size, and
measure the window (run by ``tests/napari/test_window_fit.py``, one process per size).

    DISPLAY=:N python -m tests.napari.window_check --out DIR

runs on the X screen it is given (the test starts an Xvfb screen of each size: a Qt
application keeps the screen it started on, so each size needs a process), and then:

* ``menu``: napari as ``napari`` starts it, with a window size napari remembered from an
  earlier session that is taller than the screen (1600x1939, as a person's was), a sample
  opened through *File > Open Sample*, then every *Plugins > MedSeg* entry triggered in turn;
* ``main``: the main job (``open_viewer``, what ``napari-medseg view`` runs) on a fresh
  install, every tab clicked in turn, then one *Plugins > MedSeg* entry.

After each step it records the screen's available geometry, the window's frame, the
canvas, the docks, the MedSeg tab in front and every control of that tab that is smaller
than it needs (its minimum size hint; buttons, labels and progress bars their size hint,
so their whole text shows) or that sticks out of the tab sideways, and saves a
screenshot.  Everything goes to ``DIR/report.json``; the test asserts on it.
"""

from __future__ import annotations

import argparse
import json
import os
import time
from pathlib import Path
from typing import Any

REMEMBERED = (1600, 1939)  # the window size napari remembered in the issue (#16)


def _rect(r: Any) -> list[int]:
    return [r.x(), r.y(), r.width(), r.height()]


def _control_text(widget: Any) -> str:
    for name in ("text", "currentText", "title"):
        get = getattr(widget, name, None)
        if callable(get):
            try:
                value = get()
            except TypeError:
                continue
            if isinstance(value, str):
                return value
    return ""


def _folded_away(widget: Any, page: Any) -> bool:
    """Whether ``widget`` sits in a folded (collapsed) section: the person does not see it."""
    parent = widget.parentWidget()
    while parent is not None and parent is not page:
        expanded = getattr(parent, "isExpanded", None)
        if callable(expanded) and not expanded():
            return True
        parent = parent.parentWidget()
    return False


def needed_size(widget: Any) -> tuple[int, int]:
    """What a control needs to show whole: its minimum size hint; a button, label or progress
    bar its size hint (its whole text); a word-wrapped label the height its text takes at
    its width.  A maximum size its author set (magicgui's 14 px "-" button) caps that, but
    never below the width of the control's text."""
    from qtpy.QtWidgets import QAbstractButton, QLabel, QProgressBar

    need = widget.minimumSizeHint()
    need_w, need_h = max(need.width(), 0), max(need.height(), 0)
    if isinstance(widget, QLabel) and widget.wordWrap():
        need_h = max(need_h, widget.heightForWidth(widget.width()))
    elif isinstance(widget, QAbstractButton | QLabel | QProgressBar):
        hint = widget.sizeHint()
        need_w, need_h = max(need_w, hint.width()), max(need_h, hint.height())
    wraps = isinstance(widget, QLabel) and widget.wordWrap()
    lines = [] if wraps else _control_text(widget).splitlines()
    text_w = max((widget.fontMetrics().horizontalAdvance(line) for line in lines), default=0)
    return (max(min(need_w, widget.maximumWidth()), text_w),
            min(need_h, widget.maximumHeight()))


def clipped_controls(page: Any) -> list[dict[str, Any]]:
    """Controls of a tab page that show less than they need, or stick out of it sideways
    (those folded away in a collapsed section are not shown, so not checked)."""
    from qtpy.QtCore import QPoint
    from qtpy.QtWidgets import (
        QAbstractButton,
        QAbstractSpinBox,
        QComboBox,
        QLabel,
        QLineEdit,
        QProgressBar,
        QSlider,
        QWidget,
    )

    controls = (QAbstractButton, QAbstractSpinBox, QComboBox, QLabel, QLineEdit, QProgressBar,
                QSlider)
    compound = (QAbstractSpinBox, QComboBox)  # their inner line edits are theirs to size
    viewport = page.viewport()
    found = []
    for widget in page.widget().findChildren(QWidget):
        if (not isinstance(widget, controls) or not widget.isVisible()
                or isinstance(widget.parentWidget(), compound) or _folded_away(widget, page)):
            continue
        if isinstance(widget, QLabel) and not widget.text().strip():
            continue
        need_w, need_h = needed_size(widget)
        left = widget.mapTo(viewport, QPoint(0, 0)).x()
        sticks_out = left + widget.width() > viewport.width() + 1 or left < -1
        if widget.width() < need_w or widget.height() < need_h or sticks_out:
            found.append({"type": type(widget).__name__, "text": _control_text(widget)[:60],
                          "size": [widget.width(), widget.height()], "needs": [need_w, need_h],
                          "sticks_out": sticks_out})
    return found


def measure(viewer: Any, step: str, expected_tab: str | None, shots: Path) -> dict[str, Any]:
    from napari._qt.dialogs.qt_notification import NapariQtNotification
    from qtpy.QtWidgets import QDockWidget

    from napari_medseg._napari.dock import find_dock

    settle()
    window = viewer.window._qt_window
    canvas = viewer.window._qt_viewer.canvas.native
    dock = find_dock(viewer)
    record: dict[str, Any] = {
        "step": step,
        "expected_tab": expected_tab,
        "available": _rect(window.screen().availableGeometry()),
        "frame": _rect(window.frameGeometry()),
        "canvas": [canvas.width(), canvas.height()],
        "dock_widgets": list(viewer.window.dock_widgets),
        "visible_docks": sorted(d.objectName() for d in window.findChildren(QDockWidget)
                                if d.isVisible()),
        "dock_rects": {d.objectName(): _rect(d.geometry())
                       for d in window.findChildren(QDockWidget) if d.isVisible()},
    }
    if dock is not None:
        page = dock.pages[dock.current()]
        bar = dock.tabs.tabBar()
        record.update({
            "tab": dock.current(),
            "dock_width": dock.width(),
            "dock_needs": dock.needed_width(),
            "tab_bar_fits": bar.sizeHint().width() <= dock.tabs.width(),
            "scrolls_sideways": page.horizontalScrollBar().isVisible(),
            "clipped": clipped_controls(page),
        })
    for toast in window.findChildren(NapariQtNotification):  # "PyQt5 is deprecated" etc.
        toast.close()
    settle(0.1)
    name = f"{step}.png".replace(" ", "-").lower()
    shot = viewer.screenshot(str(shots / name), canvas_only=False, flash=False)
    canvas_shot = viewer.screenshot(canvas_only=True, flash=False)
    record["screenshot"] = str(shots / name)
    record["screenshot_size"] = [int(shot.shape[1]), int(shot.shape[0])]
    record["canvas_std"] = float(canvas_shot[..., :3].mean(axis=-1).std())
    return record


def settle(seconds: float = 0.3) -> None:
    from qtpy.QtWidgets import QApplication

    app = QApplication.instance()
    end = time.perf_counter() + seconds
    while time.perf_counter() < end:
        app.processEvents()
        time.sleep(0.01)


def medseg_menu_actions(viewer: Any) -> list[Any]:
    """The QActions of *Plugins > MedSeg*, as the menu bar shows them."""
    menubar = viewer.window._qt_window.menuBar()
    plugins = next(a.menu() for a in menubar.actions() if a.text().replace("&", "") == "Plugins")
    plugins.aboutToShow.emit()  # napari fills its menus when they open
    medseg = next(a.menu() for a in plugins.actions() if a.menu() is not None
                  and a.text().replace("&", "") == "MedSeg")
    medseg.aboutToShow.emit()
    return [a for a in medseg.actions() if a.text() and not a.isSeparator()]


def menu_scenario(shots: Path) -> list[dict[str, Any]]:
    """napari started plainly (remembering a window taller than the screen), a sample
    opened, then every Plugins > MedSeg entry."""
    from napari.settings import get_settings

    import napari

    app_settings = get_settings().application
    app_settings.first_time = False
    app_settings.window_size = REMEMBERED
    app_settings.window_position = (0, 0)
    viewer = napari.Viewer()
    try:
        viewer.open_sample("napari-medseg", "ct_abdomen")
        records = [measure(viewer, "menu 0 napari", None, shots)]
        for i, action in enumerate(medseg_menu_actions(viewer), start=1):
            action.trigger()
            records.append(measure(viewer, f"menu {i} {action.text()}", action.text(), shots))
        return records
    finally:
        viewer.close()


def main_scenario(shots: Path) -> list[dict[str, Any]]:
    """The main job on a fresh install, every tab clicked, then a Plugins > MedSeg entry."""
    from napari.settings import get_settings

    from napari_medseg._napari.dock import find_dock
    from napari_medseg._napari.launch import open_viewer

    get_settings().application.first_time = True
    viewer = open_viewer(sample="ct_abdomen")
    try:
        dock = find_dock(viewer)
        assert dock is not None
        records = [measure(viewer, "main 0 opened", "Segment", shots)]
        for i, name in enumerate(dock.names, start=1):
            dock.tabs.setCurrentIndex(i - 1)  # a click on the tab
            records.append(measure(viewer, f"main {i} {name}", name, shots))
        action = next(a for a in medseg_menu_actions(viewer) if a.text() == "Evaluate")
        action.trigger()
        records.append(measure(viewer, "main 9 menu Evaluate", "Evaluate", shots))
        return records
    finally:
        viewer.close()


def run(out: Path) -> dict[str, Any]:
    """Both scenarios on the screen of ``$DISPLAY``; the report is also written to ``out``."""
    from napari._qt.qt_event_loop import get_qapp

    app = get_qapp()
    screen = app.primaryScreen().geometry()
    shots = out / "shots"
    shots.mkdir(parents=True, exist_ok=True)
    report = {"screen": [screen.width(), screen.height()], "display": os.environ.get("DISPLAY"),
              "menu": menu_scenario(shots), "main": main_scenario(shots)}
    (out / "report.json").write_text(json.dumps(report, indent=1), encoding="utf-8")
    return report


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, required=True)
    run(parser.parse_args().out)


if __name__ == "__main__":
    main()
