"""Measure how long the Qt event loop stalls while a job runs (the "never freezes" check).

A 10 ms ``QTimer`` records the gaps between its ticks; a gap well above 10 ms means the GUI
thread was blocked that long (no repaint, no scrolling).  With ``where=True`` a watchdog
thread also samples the GUI thread's Python stack while a gap is open, so that the longest
stall comes with the code that caused it (:attr:`StallMeter.culprit`).
"""

from __future__ import annotations

import sys
import threading
import time
import traceback

from qtpy.QtCore import QTimer


class StallMeter:
    """Records the longest gap between 10 ms timer ticks while started."""

    def __init__(self, interval_ms: int = 10, *, where: bool = False,
                 threshold_ms: float = 50.0) -> None:
        self.interval_ms = interval_ms
        self.gaps: list[float] = []
        self._ends: list[float] = []
        self._split: int | None = None
        self.culprit: list[str] = []  # the GUI thread's innermost frames in the longest gap
        self._last = 0.0
        self._timer = QTimer()
        self._timer.setInterval(interval_ms)
        self._timer.timeout.connect(self._tick)
        self._where = where
        self._threshold_s = threshold_ms / 1000.0
        self._samples: list[list[str]] = []
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._watchdog: threading.Thread | None = None
        self._gui_thread = threading.get_ident()

    def start(self) -> None:
        self.gaps.clear()
        self._ends.clear()
        self._split = None
        self.culprit = []
        self._last = time.perf_counter()
        self._gui_thread = threading.get_ident()
        self._timer.start()
        if self._where:
            self._stop.clear()
            self._watchdog = threading.Thread(target=self._watch, name="stall-watchdog",
                                              daemon=True)
            self._watchdog.start()

    def stop(self) -> None:
        self._timer.stop()
        if self._watchdog is not None:
            self._stop.set()
            self._watchdog.join()
            self._watchdog = None

    def _tick(self) -> None:
        now = time.perf_counter()
        gap = (now - self._last) * 1000.0
        with self._lock:
            if self._samples and gap > self.longest_ms:
                self.culprit = self._samples[len(self._samples) // 2]
            self._samples = []
        self.gaps.append(gap)
        self._ends.append(now)
        self._last = now

    def _watch(self) -> None:
        while not self._stop.wait(0.02):
            if time.perf_counter() - self._last < self._threshold_s:
                continue
            frame = sys._current_frames().get(self._gui_thread)
            if frame is None:
                continue
            stack = [f"{f.filename.rsplit('site-packages/', 1)[-1]}:{f.lineno} {f.name}"
                     for f in traceback.extract_stack(frame)[-12:]]
            with self._lock:
                self._samples.append(stack)

    def split_at(self, when: float) -> None:
        """Report the gaps that ended by ``when`` (a ``perf_counter()`` time: the end of a
        job's work) apart from the later ones (showing its result): :attr:`work_ms`,
        :attr:`show_ms`.  A gap spanning ``when`` counts as a later one."""
        self._split = sum(1 for end in self._ends if end <= when)

    @property
    def work_ms(self) -> float:
        """The longest gap before :meth:`split_at` (all of them if it was not called)."""
        return max(self.gaps[:self._split], default=0.0)

    @property
    def show_ms(self) -> float:
        """The longest gap after :meth:`split_at` (0 if it was not called)."""
        return 0.0 if self._split is None else max(self.gaps[self._split:], default=0.0)

    @property
    def longest_ms(self) -> float:
        return max(self.gaps, default=0.0)
