"""The base of the job tabs: a tab declares controls, starts a core job, receives progress and
its result, and shows the outcome; the base runs it (one at a time), reports bad choices,
remembers settings and binds the keys."""

from __future__ import annotations

import time
from collections.abc import Generator

import pytest
from magicgui.widgets import Container, PushButton, SpinBox
from qtpy.QtCore import Qt
from qtpy.QtWidgets import QLabel

from napari_medseg._napari import notify, settings, shortcuts
from napari_medseg._napari.job_widget import JobStart, JobWidget
from napari_medseg.errors import MedsegError
from napari_medseg.events import Event, Progress

pytestmark = pytest.mark.gui


class CountTab(JobWidget):
    """Counts to ``n`` in the background, a step a time; shows one 'layer' per step."""

    section = "count-test"
    run_text = "Count"
    idle_text = "Choose how far, then press Count"
    shortcut = shortcuts.SEGMENT
    busy_text = "a count"

    def __init__(self, viewer) -> None:  # type: ignore[no-untyped-def]
        super().__init__(viewer)
        self.n = SpinBox(label="n", value=3, min=0, max=100, tooltip="How far")
        self.pause = SpinBox(label="pause ms", value=0, min=0, max=1000, tooltip="Per step")
        self.extra = PushButton(text="Extra", tooltip="Another button")
        self.note = QLabel("below")
        self.add_controls(Container(widgets=[self.n]))
        self.add_advanced(Container(widgets=[self.pause]))
        self.add_buttons(self.extra)
        self.add_below(self.note)
        self.remember("n", "pause")
        self.seen: list[int] = []
        self.shown: list[int] = []
        self.cleared = 0
        self.finished = 0

    def prepare(self) -> JobStart | None:
        n = int(self.n.value)
        if n == 0:
            notify.warn("nothing to count")
            return None
        if n > 50:
            msg = f"{n} is too far; choose 50 or less"
            raise MedsegError(msg)
        return JobStart(self._count(n, self.pause.value / 1000), text=f"Counting to {n}")

    @staticmethod
    def _count(n: int, pause: float) -> Generator[Event, None, list[int]]:
        for i in range(1, n + 1):
            time.sleep(pause)
            yield Progress(stage="count", done=i, total=n, message=f"at {i}")
        return list(range(1, n + 1))

    def on_progress(self, event: Progress) -> None:
        self.seen.append(event.done)
        super().on_progress(event)

    def show_result(self, result: list[int]) -> None:
        self.present(*[lambda i=i: self.shown.append(i) for i in result],
                  outcome=lambda: f"counted {len(self.shown)}")

    def clear_result(self) -> None:
        self.cleared += 1
        self.shown.clear()

    def on_finished(self) -> None:
        self.finished += 1


@pytest.fixture
def shown(monkeypatch):
    messages: list[str] = []
    monkeypatch.setattr(notify, "show_error", messages.append)
    monkeypatch.setattr(notify, "show_warning", messages.append)
    return messages


def test_a_tab_runs_its_job_and_shows_the_outcome(make_napari_viewer, qtbot, shown):
    tab = CountTab(make_napari_viewer())
    assert tab.status.value == "Choose how far, then press Count"
    assert tab.run_button.text == f"Count ({shortcuts.key_text(shortcuts.SEGMENT)})"
    tab.run()
    assert not tab.run_button.enabled
    assert tab.cancel_button.enabled
    qtbot.waitUntil(lambda: not tab.runner.running, timeout=10_000)
    assert tab.seen == [1, 2, 3]
    assert tab.shown == [1, 2, 3]  # one step per event-loop turn, all of them
    assert tab.status.value.startswith("done in ")
    assert tab.status.value.endswith(": counted 3")
    assert tab.progress.value == 100
    assert (tab.cleared, tab.finished) == (1, 1)
    assert tab.run_button.enabled
    assert not tab.cancel_button.enabled
    assert not shown


def test_bad_choices_are_reported_and_start_nothing(make_napari_viewer, shown):
    tab = CountTab(make_napari_viewer())
    tab.n.value = 0
    tab.run()
    assert shown == ["napari-medseg: nothing to count"]
    tab.n.value = 60
    tab.run()
    assert shown[-1] == "napari-medseg: count-test: 60 is too far; choose 50 or less"
    assert not tab.runner.running
    assert (tab.cleared, tab.finished) == (0, 0)


def test_one_job_at_a_time_and_cancel_drops_the_result(make_napari_viewer, qtbot, shown):
    tab = CountTab(make_napari_viewer())
    tab.n.value, tab.pause.value = 50, 50
    tab.run()
    tab.run()
    assert shown[-1] == "napari-medseg: a count is already running; wait for it or press Cancel"
    qtbot.waitUntil(lambda: bool(tab.seen), timeout=10_000)
    tab.cancel()
    qtbot.waitUntil(lambda: not tab.runner.running, timeout=10_000)
    assert tab.status.value == "cancelled"
    assert tab.runner.cancelled
    assert tab.shown == []
    assert (tab.cleared, tab.finished) == (1, 1)


def test_remembered_controls_and_the_keys(make_napari_viewer, qtbot):
    viewer = make_napari_viewer(show=True)
    tab = CountTab(viewer)
    viewer.window.add_dock_widget(tab, name="Count")
    tab.n.value, tab.pause.value = 7, 20
    assert settings.load_all()["count-test"] == {"n": 7, "pause": 20}
    again = CountTab(viewer)
    assert (again.n.value, again.pause.value) == (7, 20)
    canvas = viewer.window._qt_viewer.canvas.native
    canvas.setFocus()
    qtbot.keyClick(canvas, Qt.Key.Key_S, Qt.KeyboardModifier.ControlModifier
                   | Qt.KeyboardModifier.ShiftModifier)
    assert again.runner.running  # the newest tab answers the run key
    assert not tab.runner.running
    qtbot.waitUntil(lambda: not again.runner.running, timeout=10_000)
    assert again.shown == list(range(1, 8))


def test_the_layout_puts_controls_above_and_results_below_run(make_napari_viewer):
    tab = CountTab(make_napari_viewer())
    tab.show()
    top = tab.n.native.mapTo(tab, tab.n.native.rect().topLeft()).y()
    run = tab.run_button.native.mapTo(tab, tab.run_button.native.rect().topLeft()).y()
    extra = tab.extra.native.mapTo(tab, tab.extra.native.rect().topLeft()).y()
    below = tab.note.mapTo(tab, tab.note.rect().topLeft()).y()
    assert top < run < extra < below
