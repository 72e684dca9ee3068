"""Run / Cancel buttons, a progress bar and a status line around one :class:`JobRunner`.

Every dock widget that runs a background job composes one; it keeps the buttons' state,
the progress and the status text consistent: Run disabled and Cancel enabled while a job
runs (both restored after it finishes, is cancelled or fails), what runs and the time left
while it runs ("Segmenting CT with head-ct-tissue: window 12 of 48, 0:41 left"), and how it
ended ("done in 12.3 s: ...", "cancelled", "failed after 3.1 s: ...").
"""

from __future__ import annotations

import functools
import time
from collections.abc import Callable, Generator, Sequence
from typing import Any

from magicgui.widgets import Container, ProgressBar, PushButton, Widget
from qtpy.QtWidgets import QSizePolicy

from napari_medseg._napari import shortcuts
from napari_medseg._napari.jobs import JobRunner
from napari_medseg._napari.notify import message, report, warn
from napari_medseg._napari.wrapping_label import WrappingLabel
from napari_medseg.events import Event, Log, Progress


def format_clock(seconds: float) -> str:
    """``0:41``, ``12:05``, ``1:02:03``: a time left, as a clock shows it."""
    total = max(0, round(seconds))
    hours, rest = divmod(total, 3600)
    minutes, secs = divmod(rest, 60)
    return f"{hours}:{minutes:02d}:{secs:02d}" if hours else f"{minutes}:{secs:02d}"


def format_duration(seconds: float) -> str:
    """``3.2 s`` under a minute, else a clock (``1:05``)."""
    return f"{seconds:.1f} s" if seconds < 60 else format_clock(seconds)


def _fixed_height(widget: Widget) -> Widget:
    """Keep a row of controls at its natural height while the status below it grows (a
    squeezed dock shrank the Run/Cancel row to a sliver of half-cut text)."""
    native = widget.native
    native.setSizePolicy(native.sizePolicy().horizontalPolicy(), QSizePolicy.Policy.Fixed)
    return widget


def _first_line(exc: BaseException, limit: int = 120) -> str:
    text = (message(exc).strip().splitlines() or [type(exc).__name__])[0]
    return text if len(text) <= limit else text[: limit - 3] + "..."


class JobPanel(Container):
    """The controls of one background job; ``start`` runs it, ``cancel`` stops it.

    ``shortcut`` (a key such as ``Ctrl+Shift+S``) is shown on the Run button; the widget
    binds it (see :mod:`napari_medseg._napari.shortcuts`).  ``idle_text`` is the status shown
    before the first run: what to do first.
    """

    def __init__(self, run_text: str, *, run_tooltip: str = "",
                 extra_buttons: Sequence[Widget] = (), shortcut: str | None = None,
                 idle_text: str = "") -> None:
        self.runner = JobRunner()
        if not run_tooltip:
            run_tooltip = f"{run_text} in the background"
        if shortcut is not None:
            run_text, run_tooltip = (shortcuts.hint(run_text, shortcut),
                                     shortcuts.hint(run_tooltip, shortcut))
        self.run_button = PushButton(text=run_text, tooltip=run_tooltip)
        self.cancel_button = PushButton(
            text=shortcuts.hint("Cancel", shortcuts.CANCEL), enabled=False,
            tooltip=shortcuts.hint("Stop at the next step; nothing half-done is kept",
                                   shortcuts.CANCEL))
        self.progress = ProgressBar(value=0, min=0, max=100)
        self.progress.tooltip = "Progress of the running job"
        # a long status (a long layer name too) wraps to the dock's width instead of widening
        # the dock, and takes the lines it needs (never the height of the buttons above it)
        self.status = WrappingLabel(idle_text)
        self.status.native.setSizePolicy(QSizePolicy.Policy.Ignored,
                                          QSizePolicy.Policy.MinimumExpanding)
        rows = [_fixed_height(Container(widgets=[self.run_button, self.cancel_button],
                                        layout="horizontal", labels=False))]
        super().__init__(widgets=[*rows, _fixed_height(self.progress), self.status],
                         labels=False)
        self._rows = 1
        if extra_buttons:
            self.add_row(*extra_buttons)
        self.cancel_button.clicked.connect(self.cancel)
        self.what = ""
        self._started = 0.0
        self._error: BaseException | None = None
        self._reported = False
        self._context = ""

    def add_row(self, *buttons: Widget) -> None:
        """A row of extra buttons under Run/Cancel (a row of their own keeps the dock narrow)."""
        self.insert(self._rows, _fixed_height(Container(widgets=list(buttons),
                                                        layout="horizontal", labels=False)))
        self._rows += 1

    @property
    def elapsed_s(self) -> float:
        """Seconds since the current (or last) job started."""
        return time.perf_counter() - self._started

    def start(
        self,
        job: Generator[Event, None, Any],
        *,
        on_done: Callable[[Any], None],
        context: str,
        text: str,
        on_progress: Callable[[Progress], None] | None = None,
        on_finished: Callable[[], None] | None = None,
        on_log: Callable[[Log], None] | None = None,
    ) -> None:
        """Run ``job`` in the background; ``on_done`` gets its result (not after a cancel).

        ``text`` says what runs ("Segmenting CT with head-ct-tissue"); progress is shown after
        it.  A second start while a job runs is refused with a warning.
        """
        if self.runner.running:
            warn(f"{context} is already running; wait for it or press Cancel")
            job.close()
            return
        self.what = text
        self._started = time.perf_counter()
        self._error = None
        self._reported = False
        self.set_running(True, f"{text}...")

        def watched() -> Generator[Event, None, Any]:
            try:
                return (yield from job)
            except Exception as exc:  # reported by the runner; remembered for the status
                self._error = exc
                raise

        self._context = context

        def done(result: Any) -> None:
            self._guarded(on_done, result)

        def finished() -> None:
            if self.runner.cancelled:
                self.progress.value = 0  # nothing of it is kept: no bar left at 4 %
                self.set_running(False, "cancelled")
            elif self._error is not None:
                self.progress.value = 0
                self.set_running(False, f"failed after {format_duration(self.elapsed_s)}: "
                                        f"{_first_line(self._error)}")
            else:
                self.set_running(False, None if self._reported else self.done_text(""))
            if on_finished is not None:
                on_finished()

        self.runner.start(watched(), on_progress=on_progress or self.show_progress,
                          on_done=done, on_finished=finished, context=context, on_log=on_log)

    def _guarded(self, step: Callable[..., None], *args: Any) -> None:
        try:
            step(*args)
        except Exception as exc:  # turning the result into layers failed: say so
            self._error = exc
            report(exc, context=self._context)

    def in_turns(self, *steps: Callable[[], None]) -> None:
        """Show the result step by step (a layer each), one per event-loop turn, so that the
        window keeps repainting between napari's layer additions; call from ``on_done``.
        A step that fails is reported and the next ones still run."""
        self.runner.in_turns(*(functools.partial(self._guarded, step) for step in steps))

    def cancel(self) -> None:
        """Stop the running job at its next step (nothing happens when none runs)."""
        if not self.runner.running:
            return
        self.runner.cancel()
        self.status.value = "cancelling..."

    def set_running(self, running: bool, text: str | None = None) -> None:
        self.run_button.enabled = not running
        self.cancel_button.enabled = running
        if running:
            self.progress.value = 0
        if text is not None:
            self.status.value = text

    def running_text(self, detail: str, eta_s: float | None = None) -> str:
        """``"<what runs>: <detail>, 0:41 left"``."""
        eta = f", {format_clock(eta_s)} left" if eta_s is not None else ""
        return f"{self.what}: {detail}{eta}" if self.what else f"{detail}{eta}"

    def done_text(self, summary: str) -> str:
        """``"done in 12.3 s: <summary>"``."""
        return f"done in {format_duration(self.elapsed_s)}" + (f": {summary}" if summary else "")

    def done(self, summary: str) -> None:
        """Show how the job ended (a widget's ``on_done`` calls this)."""
        self._reported = True
        self.progress.value = 100
        self.status.value = self.done_text(summary)

    def show_progress(self, event: Progress) -> None:
        self.progress.value = int(100 * event.fraction)
        self.status.value = self.running_text(event.message or f"{event.done}/{event.total}",
                                              event.eta_s)
