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
from enum import Enum
from typing import Any, TypeVar

R = TypeVar("R")


class Stage(str, Enum):
    """The stages a front end tells apart (a ``str``: ``Stage.TRAIN == "train"``); front ends
    compare with these, never with a message's words."""

    TRAIN = "train"
    FINETUNE = "fine-tune"
    MEASURE = "measure"  # the network scored on held-back voxels
    SEGMENT = "segment"
    EVALUATE = "evaluate"
    COHORT = "cohort"


@dataclass(frozen=True)
class Progress:
    """``done`` of ``total`` units of ``stage`` finished (tiles, steps, iterations).

    ``elapsed_s`` counts from the start of the stage; ``eta_s`` is ``None`` until it can be
    estimated.  ``metrics`` carries numbers worth plotting (loss, Dice, metric value...);
    ``fold_in`` is true for training steps taken after the held-back voxels were given back.
    """

    stage: str
    done: int
    total: int
    elapsed_s: float = 0.0
    eta_s: float | None = None
    message: str = ""
    metrics: dict[str, float] = field(default_factory=dict)
    fold_in: bool = False

    @property
    def fraction(self) -> float:
        return self.done / self.total if self.total > 0 else 0.0


@dataclass(frozen=True)
class Log:
    """A line of text worth showing the user (a warning, a decision the job took)."""

    message: str
    level: str = "info"  # "info" | "warning"


@dataclass(frozen=True)
class PlanReady(Log):
    """The plan a training job chose (``summary`` for a plan line; ``message`` for a log);
    ``train_s`` and ``segment_s`` are its estimated seconds of training and of segmenting the
    scan after the training (what a time left adds once the training steps are done)."""

    summary: str = ""
    train_s: float = 0.0
    segment_s: float = 0.0


@dataclass(frozen=True)
class FitFinding(Log):
    """One way a scan differs from what a model was trained on (the fit check's finding:
    ``rule`` names it, ``level`` is ``"info"`` or ``"warning"``, ``message`` says what to do)."""

    rule: str = ""
    model: str = ""


Event = Progress | Log
Job = Generator[Event, None, R]


class ProgressClock:
    """Builds :class:`Progress` events with elapsed time and a linear ETA for one stage."""

    def __init__(self, stage: str, total: int) -> None:
        self.stage = stage
        self.total = total
        self._start = time.perf_counter()

    def event(
        self, done: int, message: str = "", metrics: dict[str, float] | None = None, *,
        fold_in: bool = False,
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
            fold_in=fold_in,
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
