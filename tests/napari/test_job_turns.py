"""A job's result is shown one layer per event-loop turn, and the job runs until the last.

napari needs 100-400 ms of the GUI thread to add a layer; the fuse result alone is four
layers.  ``JobPanel.in_turns`` runs each step in its own turn of the Qt event loop, so the
window repaints between them; the job counts as running (buttons, Cancel, predicates) until
the last step, Cancel then has nothing left to stop, and a failing step is reported while the
next ones still run.
"""

from __future__ import annotations

import time
from collections.abc import Generator

from qtpy.QtCore import QTimer

from napari_medseg._napari.job_panel import JobPanel
from napari_medseg.events import Progress


def _job() -> Generator[Progress, None, str]:
    yield Progress(stage="test", done=1, total=1)
    return "result"


def test_steps_run_in_separate_turns_and_the_job_runs_until_the_last(qtbot) -> None:
    panel = JobPanel("Run")
    turns: list[int] = []  # which tick of a 0 ms timer each step saw
    ticks = [0]
    ticker = QTimer()
    ticker.setInterval(0)
    ticker.timeout.connect(lambda: ticks.__setitem__(0, ticks[0] + 1))
    ticker.start()
    running_during: list[bool] = []

    def step() -> None:
        turns.append(ticks[0])
        running_during.append(panel.runner.running)
        time.sleep(0.05)  # a layer's worth of GUI work

    def on_done(result: str) -> None:
        assert result == "result"
        panel.in_turns(step, step, step, lambda: panel.done("shown"))

    panel.start(_job(), on_done=on_done, context="test", text="Testing")
    qtbot.waitUntil(lambda: not panel.runner.running, timeout=10_000)
    ticker.stop()
    assert len(turns) == 3
    assert turns[0] < turns[1] < turns[2]  # the event loop turned between the steps
    assert running_during == [True, True, True]
    assert panel.run_button.enabled
    assert not panel.cancel_button.enabled
    assert panel.status.value.endswith(": shown")


def test_cancel_while_the_result_is_shown_changes_nothing(qtbot) -> None:
    panel = JobPanel("Run")
    shown: list[str] = []

    def first() -> None:
        shown.append("first")
        panel.cancel()  # the job's work is done: nothing to stop

    panel.start(_job(), on_done=lambda _: panel.in_turns(first, lambda: shown.append("second")),
                context="test", text="Testing")
    qtbot.waitUntil(lambda: not panel.runner.running, timeout=10_000)
    assert shown == ["first", "second"]
    assert not panel.runner.cancelled
    assert "cancel" not in panel.status.value


def test_a_failing_step_is_reported_and_the_next_ones_run(qtbot, monkeypatch) -> None:
    from napari_medseg._napari import job_panel

    reported: list[str] = []
    monkeypatch.setattr(job_panel, "report", lambda exc, context="": reported.append(str(exc)))
    panel = JobPanel("Run")
    shown: list[str] = []

    def broken() -> None:
        msg = "the layer could not be added"
        raise ValueError(msg)

    panel.start(_job(), on_done=lambda _: panel.in_turns(broken, lambda: shown.append("next")),
                context="test", text="Testing")
    qtbot.waitUntil(lambda: not panel.runner.running, timeout=10_000)
    assert reported == ["the layer could not be added"]
    assert shown == ["next"]
    assert panel.status.value.startswith("failed after")


def test_the_stall_meter_reports_work_and_result_display_apart(qtbot) -> None:
    from napari_medseg._napari.responsiveness import StallMeter

    meter = StallMeter()
    meter.start()
    qtbot.wait(30)
    time.sleep(0.15)  # the GUI thread blocked while the job "worked"
    qtbot.wait(30)
    work_ended = time.perf_counter()
    qtbot.wait(30)
    time.sleep(0.3)  # ... and while its result was "shown"
    qtbot.wait(30)
    meter.stop()
    meter.split_at(work_ended)
    assert 140 <= meter.work_ms < 290
    assert meter.show_ms >= 290
    assert meter.longest_ms == meter.show_ms
