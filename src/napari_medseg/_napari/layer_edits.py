"""Follow the edits of one Labels layer, throttled: a text that describes what is painted
keeps up with a person's brush without slowing it down.

napari reports a brush stroke, a fill or a ``data_setitem`` with the layer's ``paint`` event
(at the end of a stroke), the pixels it redraws while painting with ``labels_update``, and
new data with ``data``.  :class:`LayerEdits` merges them: the callback runs at most once
every :data:`THROTTLE_MS` while edits come in, on the GUI thread, after napari has written
the new values.  Undo and redo emit none of these events, so they are seen at the next edit.
Describing a whole CT takes about a second, so the callback hands that work to
:class:`LatestOnly`, which runs it on a worker thread (numpy leaves the GUI thread free to
paint meanwhile) and shows only the newest result.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from napari.qt.threading import create_worker
from qtpy.QtCore import QObject, QTimer

from napari_medseg._napari.shortcuts import alive

#: At most one callback per this many milliseconds while a person paints.
THROTTLE_MS = 300
_EVENTS = ("paint", "labels_update", "data")


class LayerEdits:
    """Calls ``callback()`` (throttled) when the followed layer's labels change; ``parent``
    owns the timer (the widget that shows the result)."""

    def __init__(self, parent: QObject, callback: Callable[[], Any], *,
                 interval_ms: int = THROTTLE_MS) -> None:
        self.layer: Any = None
        self._timer = QTimer(parent)
        self._timer.setSingleShot(True)
        self._timer.setInterval(interval_ms)
        self._timer.timeout.connect(callback)

    def follow(self, layer: Any) -> None:
        """Follow ``layer`` (a Labels layer, or ``None``) instead of the one followed."""
        if layer is self.layer:
            return
        if self.layer is not None:
            for name in _EVENTS:
                getattr(self.layer.events, name).disconnect(self._edited)
        self.layer = layer
        if layer is not None:
            for name in _EVENTS:
                getattr(layer.events, name).connect(self._edited)

    def _edited(self, _event: Any = None) -> None:
        if alive(self._timer) and not self._timer.isActive():
            self._timer.start()


class LatestOnly:
    """Runs one function at a time on a worker thread and gives its result to ``show`` on the
    GUI thread; a function submitted while one runs waits, replacing any waiting one."""

    def __init__(self, show: Callable[[Any], Any]) -> None:
        self.show = show
        self.running = False
        self._waiting: Callable[[], Any] | None = None

    def submit(self, work: Callable[[], Any]) -> None:
        if self.running:
            self._waiting = work
            return
        self.running = True
        worker = create_worker(work)
        worker.returned.connect(self.show)
        worker.finished.connect(self._finished)
        worker.start()

    def _finished(self) -> None:
        self.running = False
        work, self._waiting = self._waiting, None
        if work is not None:
            self.submit(work)
