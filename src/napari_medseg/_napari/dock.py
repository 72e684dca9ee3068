"""One MedSeg dock with a tab per tool, however the tools are opened.

``Plugins > MedSeg > Segment`` (and every other entry there), ``napari-medseg view`` and
``viewer.window.add_plugin_dock_widget("napari-medseg", "Segment")`` all end in the same
dock, named ``MedSeg``, on the right tab.  napari itself would give each widget contribution
a dock of its own (named ``Segment (MedSeg)`` from the menu and ``Segment (napari-medseg)``
from Python), and five stacked docks force the main window taller than the screen.  So each
widget contribution of the manifest is a *tab opener* (:mod:`~napari_medseg._napari.openers`)
that opens (or finds) the one dock with :func:`open_dock` and raises its tab.

Each tab's widget sits in a :class:`~napari_medseg._napari.tab_page.TabPage`: a tall tab
scrolls instead of making the window taller, and the dock is only as wide as its widest tab
needs.  The dock is found again by its type among ``viewer.window.dock_widgets``, so its
name does not matter.  When it first opens, and whenever a scan is opened through the
plugin's reader or samples, the view is refitted to the canvas (``viewer.reset_view()``):
the dock took part of the canvas's width.  Every tab with a model list follows the models
folder (:func:`~napari_medseg._napari.model_events.follow_models`).

A tab is built when it is first shown or asked for (:meth:`MedSegDock.tab`); until then its
page holds one line of text.  Building all seven tabs when the dock opened froze the window
for about three seconds; now the dock builds the one shown, and the others one at a time
in the following seconds (:data:`PREBUILD_AFTER_MS`, once the background loading of torch
has finished), so that their keyboard shortcuts work before they are shown.

Adding a tab takes three lines: a :class:`Tab` in :data:`TABS` (its widget class is
imported when the tab is built), an opener class in :mod:`~napari_medseg._napari.openers`
and a widget entry in ``napari.yaml`` whose ``python_name`` is that class and whose
``display_name`` is the tab's ``name``.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from qtpy.QtCore import QEvent, Qt, QTimer
from qtpy.QtWidgets import (
    QDockWidget,
    QLabel,
    QMainWindow,
    QSizePolicy,
    QTabWidget,
    QVBoxLayout,
    QWidget,
)

import napari
from napari_medseg._napari import shortcuts, warm_up
from napari_medseg._napari.model_events import follow_models
from napari_medseg._napari.notify import report
from napari_medseg._napari.screen import fit_to_screen, grow_within_screen
from napari_medseg._napari.tab_page import TabPage

DOCK_NAME = "MedSeg"
#: After the dock opens, the tabs not shown yet are built one at a time, starting this long
#: after and this long apart (ms): each is 0.06-0.3 s of the GUI thread on a 2-core CPU.
PREBUILD_AFTER_MS = 1500
PREBUILD_EVERY_MS = 400
#: ... waiting for the background loading at most this many times PREBUILD_EVERY_MS
PREBUILD_POLLS = 100
MAX_SHARE = 0.4  # of the main window's width, at most, for the dock's opening width
PLUGIN = "napari-medseg"


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


class MedSegDock(QWidget):
    """The tabs of napari-medseg in one dock widget; see the module docstring.

    napari calls :meth:`reset_choices` when layers change; it is passed on to every tab.
    A tab with a model list (``refresh_models``) follows the models folder.
    """

    def __init__(self, viewer: napari.viewer.Viewer, *, tabs: Sequence[Tab] = TABS,
                 first: str | None = None) -> None:
        super().__init__()
        self.viewer = viewer
        self.setObjectName(DOCK_NAME)
        self.tabs = QTabWidget()
        self.tabs.setObjectName("medseg_tabs")
        self.tabs.setUsesScrollButtons(True)
        self.tabs.setElideMode(Qt.TextElideMode.ElideNone)
        self.tabs.setSizePolicy(QSizePolicy.Policy.Preferred, QSizePolicy.Policy.Expanding)
        #: the widgets of the tabs built so far (a tab is built when first shown or asked for)
        self.widgets: dict[str, Any] = {}
        self.pages: dict[str, TabPage] = {}
        self._specs = {tab.name: tab for tab in tabs}
        self._polls = 0  # times _build_next waited for the background loading
        for tab in tabs:
            waiting = QLabel(f"Opening {tab.title}...")
            waiting.setObjectName("tab_waiting")
            page = TabPage(waiting)
            page.holder.installEventFilter(self)  # a tab that grows widens the dock
            index = self.tabs.addTab(page, tab.title)
            self.tabs.setTabToolTip(index, tab.tooltip or tab.name)
            self.pages[tab.name] = page
        if first is not None and first in self.pages:
            self.tabs.setCurrentWidget(self.pages[first])
        if self.pages:
            self.tab(self.current())
        self.tabs.currentChanged.connect(self._shown)
        QTimer.singleShot(PREBUILD_AFTER_MS, self._build_next)
        layout = QVBoxLayout(self)
        layout.setContentsMargins(0, 0, 0, 0)
        layout.addWidget(self.tabs)
        viewer.layers.events.inserted.connect(self._layer_added)

    def _build_next(self) -> None:
        """Build one tab not built yet, then the next a little later: the tabs' keyboard
        shortcuts (bound when a tab is built) work without the tab ever being shown, and
        each build is a short pause of its own instead of one long one."""
        if not shortcuts.alive(self):  # the dock was closed meanwhile
            return
        self._polls += 1
        if warm_up.running() and self._polls < PREBUILD_POLLS:
            # a tab built now would wait for torch on the GUI thread
            QTimer.singleShot(PREBUILD_EVERY_MS, self._build_next)
            return
        waiting = [name for name in self.pages if name not in self.widgets]
        if waiting:
            self.tab(waiting[0])
            QTimer.singleShot(PREBUILD_EVERY_MS, self._build_next)

    def _shown(self, index: int) -> None:
        """A tab shown before the dock built it in the background is built now."""
        page = self.tabs.widget(index)
        name = next((n for n, p in self.pages.items() if p is page), None)
        if name is not None:
            self.tab(name)

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
        return list(self.pages)

    def tab(self, name: str) -> Any:
        """The widget of the tab ``name`` (a Plugins > MedSeg entry, e.g. ``"Segment"``),
        built now if it was not yet."""
        if name in self.widgets:
            return self.widgets[name]
        if name not in self.pages:
            msg = f"the MedSeg dock has no tab {name!r}; its tabs are {', '.join(self.names)}"
            raise KeyError(msg)
        widget = self._create(self._specs[name])
        self.widgets[name] = widget
        self.pages[name].replace(_qt(widget))
        if hasattr(widget, "refresh_models"):
            follow_models(widget)
        return widget

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
        bar = self.tabs.tabBar()
        return max(pages, bar.sizeHint().width() + 4 if bar is not None else 0)

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

    def eventFilter(self, watched: Any, event: QEvent | None) -> bool:
        if event is not None and event.type() == QEvent.Type.LayoutRequest:
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

    def _layer_added(self, event: Any) -> None:
        """A scan opened through the plugin's reader or samples is shown whole."""
        layer = event.value
        source = layer.source
        opened = PLUGIN in (source.reader_plugin, (source.sample or (None,))[0])
        if opened and isinstance(layer, napari.layers.Image) and shortcuts.alive(self):
            refit_view(self.viewer)


def refit_view(viewer: napari.viewer.Viewer) -> None:
    """Fit the scans into the canvas (``viewer.reset_view()``) once the event loop has laid
    the window out (the canvas's size changes with the dock and the window)."""

    def refit() -> None:
        try:
            viewer.reset_view()
        except RuntimeError:  # the window was closed in the meantime
            return

    QTimer.singleShot(0, refit)


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
    tab needs (:meth:`MedSegDock.fit_width`), and the view is refitted to the canvas.
    """
    dock = find_dock(viewer)
    if dock is None:
        from napari_medseg._napari.preferred_reader import prefer_medseg_reader

        prefer_medseg_reader()
        warm_up.warm_up()  # the job tabs' libraries load in the background meanwhile
        dock = MedSegDock(viewer, first=tab)
        viewer.window.add_dock_widget(dock, name=DOCK_NAME, area="right",
                                      add_vertical_stretch=False)
        window = dock.window()
        if isinstance(window, QMainWindow):
            # the canvas keeps its width: the window grows by the dock, as far as the
            # screen allows (and a window larger than the screen shrinks into it)
            grow_within_screen(window, width=window.width() + dock.needed_width())
            fit_to_screen(window, maximize=False)
        dock.fit_width()
        refit_view(viewer)
    if tab is not None:
        dock.show_tab(tab)
    return dock

