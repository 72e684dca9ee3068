"""One MedSeg dock with a tab per tool, however the tools are opened.

``Plugins > MedSeg > Segment`` (and every other entry there), ``napari-medseg view`` and
``viewer.window.add_plugin_dock_widget("napari-medseg", "Segment")`` all end in the same
dock, named ``MedSeg``, on the right tab.  napari itself would give each widget contribution
a dock of its own (named ``Segment (MedSeg)`` from the menu and ``Segment (napari-medseg)``
from Python), and five stacked docks force the main window taller than the screen.  So each
widget contribution of the manifest is a *tab opener* (:class:`TabOpener`): creating it
opens (or finds) the one dock, raises its tab, and closes the small dock napari puts the
opener in as soon as the event loop turns.

Each tab's widget sits in a scroll area, so a tall tab scrolls instead of making the window
taller, and the dock is only as wide as its widest tab needs.  The dock is found again by
its type among ``viewer.window.dock_widgets``, so its name does not matter.

Adding a tab takes three lines: a :class:`Tab` in :data:`TABS` (its widget class is
imported when the dock opens), an opener class below (``class TrainTab(TabOpener):
name = "Train"``) and a widget entry in ``napari.yaml`` whose ``python_name`` is that class
and whose ``display_name`` is the tab's ``name``.
"""

from __future__ import annotations

import importlib
import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, ClassVar

from qtpy.QtCore import QEvent, QSize, Qt, QTimer
from qtpy.QtWidgets import (
    QDockWidget,
    QFrame,
    QLabel,
    QMainWindow,
    QScrollArea,
    QSizePolicy,
    QStyle,
    QTabWidget,
    QVBoxLayout,
    QWidget,
)

import napari
from napari_medseg._napari import shortcuts
from napari_medseg._napari.notify import report
from napari_medseg._napari.screen import fit_to_screen, grow_within_screen

DOCK_NAME = "MedSeg"
MAX_SHARE = 0.4  # of the main window's width, at most, for the dock's opening width
log = logging.getLogger(__name__)


@dataclass(frozen=True, kw_only=True)
class Tab:
    """One tab of the MedSeg dock.

    ``name``: the tab's Plugins > MedSeg entry (the manifest widget's ``display_name``) and
    its key in :meth:`MedSegDock.tab`; ``title``: the text on the tab; ``factory``:
    ``"module:attribute"`` of a callable that makes the tab's widget from the viewer.
    """

    name: str
    title: str
    factory: str
    tooltip: str = ""

    def create(self, viewer: napari.viewer.Viewer) -> Any:
        module, _, attribute = self.factory.partition(":")
        make: Callable[[napari.viewer.Viewer], Any] = getattr(
            importlib.import_module(module), attribute)
        return make(viewer)


_WIDGETS = "napari_medseg._napari.widgets"
TABS: tuple[Tab, ...] = (
    Tab(name="Scan", title="Scan", factory=f"{_WIDGETS}.scan_widget:ScanWidget",
        tooltip="Geometry of the selected scan and display presets"),
    Tab(name="Segment", title="Segment", factory=f"{_WIDGETS}.segment_widget:SegmentWidget",
        tooltip="Segment scans with a model"),
    Tab(name="Interactive", title="Interactive",
        factory=f"{_WIDGETS}.interactive_widget:InteractiveWidget",
        tooltip="Click, box, outline or scribble a 3D object; Enter accepts it"),
    Tab(name="Train", title="Train", factory=f"{_WIDGETS}.train_widget:TrainWidget",
        tooltip="Train a model of any zoo network from a few annotated slices"),
    Tab(name="Correct and fine-tune", title="Correct",
        factory=f"{_WIDGETS}.finetune_widget:FinetuneWidget",
        tooltip="Correct a prediction by hand and fine-tune the model on the corrections"),
    Tab(name="Evaluate", title="Evaluate", factory=f"{_WIDGETS}.evaluate_widget:EvaluateWidget",
        tooltip="Compare a segmentation with a reference (Dice, distances, volumes)"),
    Tab(name="Fuse", title="Fuse", factory=f"{_WIDGETS}.fuse_widget:FuseWidget",
        tooltip="Register two scans and fuse them"),
)


def _qt(widget: Any) -> QWidget:
    """The QWidget of a Qt or magicgui widget."""
    return widget if isinstance(widget, QWidget) else widget.native


_EXPANDING = {QSizePolicy.Policy.Expanding, QSizePolicy.Policy.MinimumExpanding,
              QSizePolicy.Policy.Ignored}


def _wants_height(widget: QWidget) -> bool:
    """napari's rule for a docked widget: it takes the height it is given if it, or one of
    the widgets directly in its layout, expands vertically (a table, a plot)."""
    if widget.sizePolicy().verticalPolicy() in _EXPANDING:
        return True
    layout = widget.layout()
    if layout is None:
        return False
    for i in range(layout.count()):
        child = layout.itemAt(i).widget()
        if child is not None and child.sizePolicy().verticalPolicy() in _EXPANDING:
            return True
    return False


class _Holder(QWidget):
    """A scroll area's content that is never squeezed below its preferred height: a tab
    taller than the dock scrolls instead of shrinking its buttons."""

    def minimumSizeHint(self) -> QSize:
        hint = super().minimumSizeHint()
        return QSize(hint.width(), max(hint.height(), self.sizeHint().height()))


class TabPage(QScrollArea):
    """A tab's widget in a scroll area: taller than the dock, it scrolls vertically; in a
    dock narrower than :meth:`needed_width` (a small screen, or a person narrowed it), it
    scrolls sideways instead of squeezing the controls."""

    def __init__(self, content: QWidget) -> None:
        super().__init__()
        self.content = content
        self.setWidgetResizable(True)
        self.setFrameShape(QFrame.Shape.NoFrame)
        holder = _Holder()
        layout = QVBoxLayout(holder)
        layout.setContentsMargins(0, 0, 0, 0)
        layout.addWidget(content)
        if not _wants_height(content):
            layout.addStretch(1)  # controls stay at the top, as napari docks them
        self.setWidget(holder)

    def needed_width(self) -> int:
        """The width that shows the widget whole, with room for the vertical scroll bar."""
        bar = self.style().pixelMetric(QStyle.PixelMetric.PM_ScrollBarExtent)
        return self.widget().minimumSizeHint().width() + bar + 2 * self.frameWidth()


class MedSegDock(QWidget):
    """The tabs of napari-medseg in one dock widget; see the module docstring.

    napari calls :meth:`reset_choices` when layers change; it is passed on to every tab,
    as :meth:`refresh_models` is (a fine-tuned model appears in every model list).
    """

    def __init__(self, viewer: napari.viewer.Viewer, *, tabs: Sequence[Tab] = TABS) -> None:
        super().__init__()
        self.viewer = viewer
        self.setObjectName(DOCK_NAME)
        self.tabs = QTabWidget()
        self.tabs.setObjectName("medseg_tabs")
        self.tabs.setUsesScrollButtons(True)
        self.tabs.setElideMode(Qt.TextElideMode.ElideNone)
        self.tabs.setSizePolicy(QSizePolicy.Policy.Preferred, QSizePolicy.Policy.Expanding)
        self.widgets: dict[str, Any] = {}
        self.pages: dict[str, TabPage] = {}
        for tab in tabs:
            widget = self._create(tab)
            page = TabPage(_qt(widget))
            page.widget().installEventFilter(self)  # a tab that grows widens the dock
            index = self.tabs.addTab(page, tab.title)
            self.tabs.setTabToolTip(index, tab.tooltip or tab.name)
            self.widgets[tab.name] = widget
            self.pages[tab.name] = page
        layout = QVBoxLayout(self)
        layout.setContentsMargins(0, 0, 0, 0)
        layout.addWidget(self.tabs)

    def _create(self, tab: Tab) -> Any:
        """The tab's widget; a tab that fails to build says why instead of taking the other
        tabs down with it."""
        try:
            return tab.create(self.viewer)
        except Exception as exc:  # any failure of one tab is shown in that tab
            report(exc, context=f"{tab.name} tab")
            label = QLabel(f"The {tab.name} tab could not be opened:\n{type(exc).__name__}: "
                           f"{exc}\n\nThe other tabs work; the log has the details.")
            label.setWordWrap(True)
            label.setObjectName("tab_error")
            return label

    # ---------------------------------------------------------------- tabs
    @property
    def names(self) -> list[str]:
        return list(self.widgets)

    def tab(self, name: str) -> Any:
        """The widget of the tab ``name`` (a Plugins > MedSeg entry, e.g. ``"Segment"``)."""
        try:
            return self.widgets[name]
        except KeyError:
            msg = f"the MedSeg dock has no tab {name!r}; its tabs are {', '.join(self.names)}"
            raise KeyError(msg) from None

    def show_tab(self, name: str) -> Any:
        """Bring the dock and the tab ``name`` to the front; returns the tab's widget."""
        widget = self.tab(name)
        self.tabs.setCurrentWidget(self.pages[name])
        dock = self.dock_widget()
        if dock is not None:
            dock.show()
            dock.raise_()
        return widget

    def current(self) -> str:
        page = self.tabs.currentWidget()
        return next(name for name, p in self.pages.items() if p is page)

    def dock_widget(self) -> QDockWidget | None:
        parent = self.parentWidget()
        return parent if isinstance(parent, QDockWidget) else None

    def needed_width(self) -> int:
        """The width that shows every tab whole (the widest tab and the tab bar)."""
        pages = max((page.needed_width() for page in self.pages.values()), default=0)
        return max(pages, self.tabs.tabBar().sizeHint().width() + 4)

    def fit_width(self) -> int:
        """Make the dock as wide as its widest tab needs, but at most :data:`MAX_SHARE` of
        the main window, so that the canvas keeps its place on a small screen (tabs wider
        than that scroll sideways there); returns the width asked for (0: not docked)."""
        window, qdock = self.window(), self.dock_widget()
        if not isinstance(window, QMainWindow) or qdock is None or qdock.isFloating():
            return 0
        width = min(self.needed_width(), int(MAX_SHARE * window.width()))
        window.resizeDocks([qdock], [width], Qt.Orientation.Horizontal)
        self._fitted = width
        return width

    def eventFilter(self, watched: Any, event: QEvent) -> bool:
        if event.type() == QEvent.Type.LayoutRequest:
            self.grow_to_fit()
        return False

    def grow_to_fit(self) -> None:
        """Widen the dock again when a tab's content grew (a scan opened, a longer list),
        unless the person resized the dock since it was last fitted."""
        def grow() -> None:  # after the event loop has laid the changed tabs out
            if not shortcuts.alive(self):  # the dock was closed meanwhile
                return
            qdock = self.dock_widget()
            fitted = getattr(self, "_fitted", None)
            if qdock is None or fitted is None or abs(qdock.width() - fitted) > 2:
                return
            if self.needed_width() > self.width():
                self.fit_width()

        QTimer.singleShot(0, grow)

    # ---------------------------------------------------------------- passed on to tabs
    def reset_choices(self, *args: Any) -> None:
        for widget in self.widgets.values():
            reset = getattr(widget, "reset_choices", None)
            if reset is not None:
                reset(*args)
        self.grow_to_fit()

    def refresh_models(self) -> None:
        for widget in self.widgets.values():
            refresh = getattr(widget, "refresh_models", None)
            if refresh is not None:
                refresh()


def find_dock(viewer: napari.viewer.Viewer) -> MedSegDock | None:
    """The MedSeg dock of ``viewer``'s window, if it has one."""
    for widget in viewer.window.dock_widgets.values():
        if isinstance(widget, MedSegDock):
            return widget
    return None


def open_dock(viewer: napari.viewer.Viewer, tab: str | None = None) -> MedSegDock:
    """The MedSeg dock of ``viewer``, created and docked on the right if needed, showing
    ``tab`` (a Plugins > MedSeg entry such as ``"Segment"``) when given.

    The first time: napari-medseg becomes napari's reader for the medical formats where
    the person chose none (:mod:`napari_medseg._napari.preferred_reader`); the main window
    grows by the dock's width as far as the screen allows, and one taller or wider than the
    screen (a size napari remembered) is fitted to it; the dock gets the width its widest
    tab needs (:meth:`MedSegDock.fit_width`).
    """
    dock = find_dock(viewer)
    if dock is None:
        from napari_medseg._napari.preferred_reader import prefer_medseg_reader

        prefer_medseg_reader()
        dock = MedSegDock(viewer)
        viewer.window.add_dock_widget(dock, name=DOCK_NAME, area="right",
                                      add_vertical_stretch=False)
        window = dock.window()
        if isinstance(window, QMainWindow):
            # the canvas keeps its width: the window grows by the dock, as far as the
            # screen allows (and a window larger than the screen shrinks into it)
            grow_within_screen(window, width=window.width() + dock.needed_width())
            fit_to_screen(window, maximize=False)
        dock.fit_width()
    if tab is not None:
        dock.show_tab(tab)
    return dock


class TabOpener(QWidget):
    """What napari docks for a Plugins > MedSeg entry: it opens the MedSeg dock on the tab
    ``name`` and then closes the extra dock napari put it in.

    ``tab_widget`` is the opened tab's widget, so
    ``viewer.window.add_plugin_dock_widget("napari-medseg", "Segment")[1].tab_widget`` is
    the Segment widget (the dock napari returns there is closed at the next event-loop turn;
    :func:`open_dock` returns the MedSeg dock itself).
    """

    name: ClassVar[str] = ""

    def __init__(self, viewer: napari.viewer.Viewer) -> None:
        super().__init__()
        self.setObjectName(f"open {self.name} tab")
        self.viewer = viewer
        self.dock = open_dock(viewer, self.name)
        self.tab_widget = self.dock.tab(self.name)
        self.setMaximumSize(0, 0)
        QTimer.singleShot(0, self._leave)

    def event(self, event: QEvent) -> bool:
        if event.type() == QEvent.Type.ParentChange:
            parent = self.parentWidget()
            if isinstance(parent, QDockWidget):
                parent.hide()  # never shown: it would split the dock area for one turn
        return super().event(event)

    def _leave(self) -> None:
        """Close the dock napari made for this opener, keep the MedSeg dock in front."""
        parent = self.parentWidget()
        if isinstance(parent, QDockWidget):
            try:
                self.viewer.window.remove_dock_widget(parent)
            except (LookupError, RuntimeError) as exc:  # closed already, or no window
                log.debug("opener dock already gone: %s", exc)
        try:
            self.dock.show_tab(self.name)
        except RuntimeError:  # the window was closed in the meantime
            return


class ScanTab(TabOpener):
    name = "Scan"


class SegmentTab(TabOpener):
    name = "Segment"


class InteractiveTab(TabOpener):
    name = "Interactive"


class TrainTab(TabOpener):
    name = "Train"


class CorrectTab(TabOpener):
    name = "Correct and fine-tune"


class EvaluateTab(TabOpener):
    name = "Evaluate"


class FuseTab(TabOpener):
    name = "Fuse"
