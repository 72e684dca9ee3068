"""Run core generator jobs in a worker thread, one at a time, with progress and Cancel.

The core job yields :class:`~napari_medseg.events.Progress` / ``Log`` events and returns its
result; superqt's ``GeneratorWorker`` (napari's ``create_worker``) runs it off the GUI
thread and delivers events, the result and errors back on the GUI thread. Cancel takes
effect at the job's next ``yield``; the job is then closed, so it leaves nothing half-done.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Callable, Generator, Iterator
from typing import Any

from napari.qt.threading import GeneratorWorker, create_worker

from napari_medseg._napari.notify import report, warn
from napari_medseg.events import Event, Log, Progress


class JobRunner:
    """Owns at most one running job; a second start while one runs is refused."""

    def __init__(self) -> None:
        self.worker: GeneratorWorker | None = None
        self.cancelled = False

    @property
    def running(self) -> bool:
        return self.worker is not None

    def start(
        self,
        job: Generator[Event, None, Any],
        *,
        on_progress: Callable[[Progress], None],
        on_done: Callable[[Any], None],
        on_finished: Callable[[], None],
        context: str,
    ) -> GeneratorWorker | None:
        """Start ``job``; returns the worker, or ``None`` (with a warning) if one is running."""
        if self.running:
            warn(f"{context} is already running; wait for it or press Cancel")
            job.close()
            return None
        self.cancelled = False

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
            elif isinstance(event, Log) and event.level == "warning":
                warn(event.message)

        def on_returned(result: Any) -> None:
            if not self.cancelled:
                on_done(result)

        def finished() -> None:
            self.worker = None
            on_finished()

        worker = create_worker(run, _start_thread=False, _ignore_errors=True)
        worker.yielded.connect(on_event)
        worker.returned.connect(on_returned)
        worker.errored.connect(lambda exc: report(exc, context=context))
        worker.finished.connect(finished)
        self.worker = worker
        worker.start()
        return worker

    def cancel(self) -> None:
        """Ask the running job to stop at its next yield; its result is discarded."""
        if self.worker is not None:
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
