"""What napari docks for a *Plugins > MedSeg* entry: a tab opener.

napari would give each widget contribution of the manifest a dock of its own; each entry's
``python_name`` is instead a :class:`TabOpener` subclass here, which opens (or finds) the one
MedSeg dock (:func:`~napari_medseg._napari.dock.open_dock`) on its tab and closes the small
dock napari put it in as soon as the event loop turns.  Adding a tab: a
:class:`~napari_medseg._napari.dock.Tab` in ``dock.TABS``, a three-line opener class below,
and a widget entry in ``napari.yaml`` whose ``python_name`` is that class and whose
``display_name`` is the tab's ``name``.
"""

from __future__ import annotations

import logging
from typing import ClassVar

from qtpy.QtCore import QEvent, QTimer
from qtpy.QtWidgets import QDockWidget, QWidget

import napari
from napari_medseg._napari.dock import open_dock

log = logging.getLogger(__name__)


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

    def event(self, event: QEvent | None) -> bool:
        if event is not None and event.type() == QEvent.Type.ParentChange:
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
