"""The Interactive tab's engine runs here, off the GUI thread: prompts queue up, a worker
applies them in order to the session, and only the newest object comes back to be drawn.

A click while the engine works is answered at once (the tab shows the click and "working");
it waits in the queue, and the object it leads to replaces the stale one.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from napari_medseg.interactive import InteractiveError, Session

Op = Callable[[Session], Any]


@dataclass
class Snapshot:
    """What the worker hands back: the object (in its region), the note and what each queued
    operation returned (an :class:`InteractiveError` for a refused prompt)."""

    region: Any
    crop: np.ndarray | None
    note: str
    outcomes: list[Any] = field(default_factory=list)

    def refusals(self) -> list[str]:
        return [str(o) for o in self.outcomes if isinstance(o, InteractiveError)]


class SessionQueue:
    """Operations on one session, applied in order by a worker thread (napari's)."""

    def __init__(self, on_result: Callable[[Snapshot], None],
                 on_error: Callable[[Exception], None]) -> None:
        self.session: Session | None = None
        self.on_result = on_result
        self.on_error = on_error
        self._queue: list[Op] = []
        self._busy = False

    @property
    def busy(self) -> bool:
        """Whether operations are running or waiting."""
        return self._busy or bool(self._queue)

    def submit(self, op: Op) -> int:
        """Queue ``op``; returns how many wait behind the running batch (0: it starts now)."""
        self._queue.append(op)
        if self._busy:
            return len(self._queue)
        self._start()
        return 0

    def after(self, action: Callable[[], None]) -> None:
        """Run ``action`` on the GUI thread once every queued operation is done."""
        from qtpy.QtCore import QTimer

        def poll() -> None:
            if self.busy:
                QTimer.singleShot(20, poll)
            else:
                action()

        QTimer.singleShot(0, poll)

    def _start(self) -> None:
        from napari.qt.threading import create_worker

        ops, self._queue = self._queue, []
        self._busy = True
        session = self.session
        assert session is not None

        def apply() -> Snapshot:
            outcomes = []
            for op in ops:
                try:
                    outcomes.append(op(session))
                except InteractiveError as exc:
                    outcomes.append(exc)
            state = session.state
            crop = None if state.mask is None else state.mask.copy()
            return Snapshot(state.region, crop, session.note, outcomes)

        worker = create_worker(apply)
        worker.returned.connect(self._done)
        worker.errored.connect(self._failed)
        worker.start()

    def _done(self, snapshot: Snapshot) -> None:
        self._busy = False
        if self._queue:  # newer prompts came: this object is stale, work on
            for refusal in snapshot.refusals():
                self.on_error(InteractiveError(refusal))
            self._start()
            return
        self.on_result(snapshot)

    def _failed(self, exc: Exception) -> None:
        self._busy = False
        self.on_error(exc)
        if self._queue:
            self._start()
