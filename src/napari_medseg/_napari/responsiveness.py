"""Measure how long the Qt event loop stalls while a job runs (the "never freezes" check).

A 10 ms ``QTimer`` records the gaps between its ticks; a gap well above 10 ms means the GUI
thread was blocked that long (no repaint, no scrolling).
"""

from __future__ import annotations

import time

from qtpy.QtCore import QTimer


class StallMeter:
    """Records the longest gap between 10 ms timer ticks while started."""

    def __init__(self, interval_ms: int = 10) -> None:
        self.interval_ms = interval_ms
        self.gaps: list[float] = []
        self._last = 0.0
        self._timer = QTimer()
        self._timer.setInterval(interval_ms)
        self._timer.timeout.connect(self._tick)

    def start(self) -> None:
        self.gaps.clear()
        self._last = time.perf_counter()
        self._timer.start()

    def stop(self) -> None:
        self._timer.stop()

    def _tick(self) -> None:
        now = time.perf_counter()
        self.gaps.append((now - self._last) * 1000.0)
        self._last = now

    @property
    def longest_ms(self) -> float:
        return max(self.gaps, default=0.0)
