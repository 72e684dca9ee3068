"""Run / Cancel buttons, a progress bar and a status line around one :class:`JobRunner`.

Every dock widget that runs a background job composes one; it keeps the buttons' state,
the progress and the status text consistent (disabled Run while a job runs, "cancelled" when
cancelled, ETA while running).
"""

from __future__ import annotations

from collections.abc import Callable, Generator, Sequence
from typing import Any

from magicgui.widgets import Container, Label, ProgressBar, PushButton, Widget

from napari_medseg._napari.jobs import JobRunner
from napari_medseg.events import Event, Progress


class JobPanel(Container):
    """The controls of one background job; ``start`` runs it, ``cancel`` stops it."""

    def __init__(self, run_text: str, *, run_tooltip: str = "",
                 extra_buttons: Sequence[Widget] = ()) -> None:
        self.runner = JobRunner()
        self.run_button = PushButton(text=run_text, tooltip=run_tooltip)
        self.cancel_button = PushButton(text="Cancel", enabled=False,
                                        tooltip="Stop at the next step; nothing half-done is kept")
        self.progress = ProgressBar(value=0, min=0, max=100)
        self.status = Label(value="")
        buttons = Container(widgets=[self.run_button, self.cancel_button, *extra_buttons],
                            layout="horizontal", labels=False)
        super().__init__(widgets=[buttons, self.progress, self.status], labels=False)
        self.cancel_button.clicked.connect(self.cancel)

    def start(
        self,
        job: Generator[Event, None, Any],
        *,
        on_done: Callable[[Any], None],
        context: str,
        text: str,
        on_progress: Callable[[Progress], None] | None = None,
        on_finished: Callable[[], None] | None = None,
    ) -> None:
        """Run ``job`` in the background; ``on_done`` gets its result (not after a cancel)."""
        self.set_running(True, text)

        def finished() -> None:
            self.set_running(False, "cancelled" if self.runner.cancelled else None)
            if on_finished is not None:
                on_finished()

        self.runner.start(job, on_progress=on_progress or self.show_progress, on_done=on_done,
                          on_finished=finished, context=context)

    def cancel(self) -> None:
        self.runner.cancel()
        self.status.value = "cancelling..."

    def set_running(self, running: bool, text: str | None = None) -> None:
        self.run_button.enabled = not running
        self.cancel_button.enabled = running
        if running:
            self.progress.value = 0
        if text is not None:
            self.status.value = text

    def show_progress(self, event: Progress) -> None:
        self.progress.value = int(100 * event.fraction)
        eta = f", about {event.eta_s:.0f} s left" if event.eta_s is not None else ""
        self.status.value = f"{event.stage}: {event.message or f'{event.done}/{event.total}'}{eta}"
