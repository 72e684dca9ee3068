"""Typed events that long jobs yield, and :func:`run_to_end` to drive a job from a script.

A *job* is a generator: it ``yield``s :class:`Progress` / :class:`Log` events while it works
and ``return``s its result.  Scripts and the CLI drive it with a plain loop (or
:func:`run_to_end`); the napari layer runs the same generator in a worker thread whose
cancel takes effect at the next ``yield`` (superqt's ``GeneratorWorker``).  A job must leave
nothing half-written when it is closed between two yields.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Generator
from dataclasses import dataclass, field
from typing import Any, TypeVar

R = TypeVar("R")


@dataclass(frozen=True)
class Progress:
    """``done`` of ``total`` units of ``stage`` finished (tiles, steps, iterations).

    ``elapsed_s`` counts from the start of the stage; ``eta_s`` is ``None`` until it can be
    estimated.  ``metrics`` carries numbers worth plotting (loss, Dice, metric value...).
    """

    stage: str
    done: int
    total: int
    elapsed_s: float = 0.0
    eta_s: float | None = None
    message: str = ""
    metrics: dict[str, float] = field(default_factory=dict)

    @property
    def fraction(self) -> float:
        return self.done / self.total if self.total > 0 else 0.0


@dataclass(frozen=True)
class Log:
    """A line of text worth showing the user (a warning, a decision the job took)."""

    message: str
    level: str = "info"  # "info" | "warning"


Event = Progress | Log
Job = Generator[Event, None, R]


class ProgressClock:
    """Builds :class:`Progress` events with elapsed time and a linear ETA for one stage."""

    def __init__(self, stage: str, total: int) -> None:
        self.stage = stage
        self.total = total
        self._start = time.perf_counter()

    def event(
        self, done: int, message: str = "", metrics: dict[str, float] | None = None
    ) -> Progress:
        elapsed = time.perf_counter() - self._start
        eta = elapsed / done * (self.total - done) if done > 0 else None
        return Progress(
            stage=self.stage,
            done=done,
            total=self.total,
            elapsed_s=elapsed,
            eta_s=eta,
            message=message,
            metrics=dict(metrics or {}),
        )


def run_to_end(job: Generator[Event, None, R], on_event: Callable[[Event], Any] | None = None) -> R:
    """Drive ``job`` to completion, passing each event to ``on_event``; return its result."""
    while True:
        try:
            event = next(job)
        except StopIteration as stop:
            return stop.value
        if on_event is not None:
            on_event(event)
