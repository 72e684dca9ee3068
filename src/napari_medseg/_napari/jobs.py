"""Run core generator jobs in a worker thread, one at a time, with progress and Cancel.

The core job yields :class:`~napari_medseg.events.Progress` / ``Log`` events and returns its
result; superqt's ``GeneratorWorker`` (napari's ``create_worker``) runs it off the GUI
thread and delivers events, the result and errors back on the GUI thread. Cancel takes
effect at the job's next ``yield``; the job is then closed, so it leaves nothing half-done.

Showing a result is GUI work too: napari needs 100-400 ms to add one layer (its controls, its
vispy visual, the first paint; measured with software OpenGL on 2 cores).  A result handler
therefore queues each layer as a step (:meth:`JobRunner.in_turns`); the steps run one per turn
of the Qt event loop, so the window repaints and takes input between two layers instead of
freezing for their sum, and the job counts as running until the last one is in.
"""

from __future__ import annotations

import contextlib
import os
import time
from collections import deque
from collections.abc import Callable, Generator, Iterator
from typing import Any

from napari.qt.threading import GeneratorWorker, create_worker
from qtpy.QtCore import QTimer

from napari_medseg._napari.notify import report, warn
from napari_medseg._napari.warm_up import warm_up
from napari_medseg.events import Event, Log, Progress


class JobRunner:
    """Owns at most one running job; a second start while one runs is refused."""

    def __init__(self) -> None:
        self.worker: GeneratorWorker | None = None
        self.cancelled = False
        self._turns: deque[Callable[[], None]] = deque()
        self.showing_since: float | None = None  # perf_counter() when the last job's work ended
        warm_up()  # what the first job imports loads in the background (see warm_up)

    @property
    def running(self) -> bool:
        """A job runs, or its result is still being shown (see :meth:`in_turns`)."""
        return self.worker is not None

    def in_turns(self, *steps: Callable[[], None]) -> None:
        """Queue GUI steps (one layer each) that show the result, one per event-loop turn.

        Called from ``on_done``; the steps run after it, in order, each in its own turn of
        the Qt event loop; ``on_finished`` runs after the last.
        """
        self._turns.extend(steps)

    def start(
        self,
        job: Generator[Event, None, Any],
        *,
        on_progress: Callable[[Progress], None],
        on_done: Callable[[Any], None],
        on_finished: Callable[[], None],
        context: str,
        on_log: Callable[[Log], None] | None = None,
    ) -> GeneratorWorker | None:
        """Start ``job``; returns the worker, or ``None`` (with a warning) if one is running.

        ``on_log`` gets every :class:`Log` line on the GUI thread (warnings are shown as
        notifications as well).
        """
        if self.running:
            warn(f"{context} is already running; wait for it or press Cancel")
            job.close()
            return None
        self.cancelled = False
        self._turns.clear()
        self.showing_since = None

        def run() -> Generator[Event, None, Any]:
            try:
                return (yield from job)
            finally:
                job.close()

        def on_event(event: Event) -> None:
            if self.cancelled:  # events still queued when Cancel was pressed
                return
            if isinstance(event, Progress):
                on_progress(event)
                return
            if on_log is not None:
                on_log(event)
            if event.level == "warning":
                warn(event.message)

        def on_returned(result: Any) -> None:
            if not self.cancelled:
                on_done(result)

        def finished() -> None:
            self.showing_since = time.perf_counter()
            self._next_turn(on_finished)

        worker = create_worker(run, _start_thread=False, _ignore_errors=True)
        worker.yielded.connect(on_event)
        worker.returned.connect(on_returned)
        worker.errored.connect(lambda exc: report(exc, context=context))
        worker.finished.connect(finished)
        self.worker = worker
        worker.start()
        return worker

    def _next_turn(self, on_finished: Callable[[], None]) -> None:
        if not self._turns:
            self.worker = None
            on_finished()
            return
        step = self._turns.popleft()

        def run_step() -> None:
            try:
                step()
            finally:
                self._next_turn(on_finished)

        QTimer.singleShot(0, run_step)

    def cancel(self) -> None:
        """Ask the running job to stop at its next yield; its result is discarded.

        Once the job's work is done and its layers are being added, there is nothing left to
        stop: the result is shown whole.
        """
        showing = self.showing_since is not None  # the work is done, the result being shown
        if self.worker is not None and not showing:
            self.cancelled = True
            self.worker.quit()


@contextlib.contextmanager
def gui_friendly_threads() -> Iterator[None]:
    """Leave one CPU core to the GUI thread while a CPU job runs (torch uses all by default)."""
    import torch

    before = torch.get_num_threads()
    torch.set_num_threads(max(1, min(before, (os.cpu_count() or 2) - 1)))
    try:
        yield
    finally:
        torch.set_num_threads(before)
