"""Progress of a job on the terminal: a one-line bar on a TTY, nothing but warnings otherwise."""

from __future__ import annotations

import sys
from typing import TextIO

from napari_medseg.events import Event, FitFinding, Log, Progress


class TerminalProgress:
    """An ``on_event`` callback for :func:`napari_medseg.events.run_to_end`.

    On a terminal it redraws ``stage [#####-----] done/total ETA``; when stderr is not a TTY
    (a pipe, a cluster log) it prints only :class:`Log` lines. ``quiet`` silences both, but
    not the fit check's findings (:class:`FitFinding`): whether a model fits the scan is
    never progress.
    """

    def __init__(self, *, quiet: bool = False, stream: TextIO | None = None) -> None:
        self.stream = stream or sys.stderr
        self.quiet = quiet
        self.bar = not quiet and self.stream.isatty()
        self._open = False

    def __call__(self, event: Event) -> None:
        if isinstance(event, FitFinding):
            self._newline()
            print(f"{event.level}: [{event.rule}] {event.message}", file=self.stream)
            return
        if self.quiet:
            return
        if isinstance(event, Log):
            self._newline()
            print(f"{event.level}: {event.message}", file=self.stream)
        elif isinstance(event, Progress) and self.bar:
            width = 30
            filled = int(width * event.fraction)
            eta = f" ETA {event.eta_s:4.0f}s" if event.eta_s is not None else ""
            self.stream.write(
                f"\r{event.stage} [{'#' * filled}{'-' * (width - filled)}] "
                f"{event.done}/{event.total}{eta}"
            )
            self.stream.flush()
            self._open = event.done < event.total
            if not self._open:
                self.stream.write("\n")

    def _newline(self) -> None:
        if self._open:
            self.stream.write("\n")
            self._open = False
