"""Main windows that fit the screen they are on.

napari opens its window at the size it remembered from the last session (which can be
taller than the screen: docks that were too tall once stretched it) or, on a fresh
install, at its layout's size hint (1092x733 with the MedSeg dock).  :func:`fit_to_screen`
sizes a window to the *available* geometry of its screen (the screen without task bars and
docks): maximised for the main job, or only shrunk where it sticks out.
"""

from __future__ import annotations

from qtpy.QtCore import QRect
from qtpy.QtGui import QGuiApplication, QScreen
from qtpy.QtWidgets import QWidget


def screen_of(window: QWidget) -> QScreen | None:
    """The screen showing most of ``window`` (the primary screen if it shows nowhere)."""
    screen = window.screen() if hasattr(window, "screen") else None
    if screen is None:
        screen = QGuiApplication.screenAt(window.frameGeometry().center())
    return screen or QGuiApplication.primaryScreen()


def available_geometry(window: QWidget) -> QRect | None:
    """The part of ``window``'s screen a window may use, in global pixels."""
    screen = screen_of(window)
    return screen.availableGeometry() if screen is not None else None


def _frame_margins(window: QWidget) -> tuple[int, int]:
    """Width and height the window manager's frame adds (0 without a window manager)."""
    frame, inner = window.frameGeometry(), window.geometry()
    return max(frame.width() - inner.width(), 0), max(frame.height() - inner.height(), 0)


def fit_to_screen(window: QWidget, *, maximize: bool) -> QRect:
    """Fit ``window`` (frame included) into its screen's available geometry.

    ``maximize``: fill the available geometry and ask the window manager to maximise the
    window (without a window manager, as under Xvfb, the explicit geometry is what holds);
    otherwise only shrink and move the window where it sticks out of the screen.  A window
    that cannot shrink as far (its minimum size) stays at its minimum.  Returns the
    window's new geometry (without the frame).
    """
    area = available_geometry(window)
    if area is None:
        return window.geometry()
    extra_w, extra_h = _frame_margins(window)
    max_w, max_h = area.width() - extra_w, area.height() - extra_h
    if maximize:
        width, height = max_w, max_h
    else:
        width, height = min(window.width(), max_w), min(window.height(), max_h)
    width = max(width, window.minimumWidth())
    height = max(height, window.minimumHeight())
    x = min(max(window.x(), area.left()), area.left() + max(area.width() - width - extra_w, 0))
    y = min(max(window.y(), area.top()), area.top() + max(area.height() - height - extra_h, 0))
    if maximize:
        x, y = area.left(), area.top()
    if (width, height) != (window.width(), window.height()):
        window.resize(width, height)
    if (x, y) != (window.x(), window.y()):
        window.move(x, y)
    if maximize and window.isVisible():
        window.showMaximized()
    return window.geometry()


def grow_within_screen(window: QWidget, *, width: int) -> QRect:
    """Widen ``window`` to ``width`` pixels (without the frame), or as far as its screen's
    available geometry allows, moving it left where it would stick out; never narrower."""
    area = available_geometry(window)
    if area is None or width <= window.width():
        return window.geometry()
    extra_w, _ = _frame_margins(window)
    width = max(min(width, area.width() - extra_w), window.width())
    window.resize(width, window.height())
    right = area.left() + area.width()
    if window.x() + width + extra_w > right:
        window.move(max(right - width - extra_w, area.left()), window.y())
    return window.geometry()
