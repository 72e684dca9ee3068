"""The one MedSeg dock: every way of opening a tool ends in it, on the right tab."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from npe2 import PluginManifest
from qtpy.QtWidgets import QLabel, QMainWindow, QWidget

import napari_medseg
from napari_medseg._napari import notify, shortcuts
from napari_medseg._napari.dock import (
    DOCK_NAME,
    MAX_SHARE,
    TABS,
    MedSegDock,
    Tab,
    find_dock,
    open_dock,
)
from napari_medseg._napari.launch import open_viewer, widget_names
from napari_medseg._napari.model_events import announce_model
from napari_medseg._napari.openers import TabOpener
from napari_medseg._napari.screen import available_geometry, fit_to_screen, grow_within_screen

pytestmark = pytest.mark.gui
PLUGIN = "napari-medseg"
MANIFEST = PluginManifest.from_file(Path(napari_medseg.__file__).parent / "napari.yaml")


class Recorder(QWidget):
    """A tab that records what the dock passes on to it."""

    def __init__(self, viewer) -> None:
        super().__init__()
        self.viewer = viewer
        self.calls: list[str] = []

    def reset_choices(self, *_args) -> None:
        self.calls.append("reset_choices")

    def refresh_models(self) -> None:
        self.calls.append("refresh_models")


class Tall(QWidget):
    """A tab taller than any screen."""

    def __init__(self, viewer) -> None:
        super().__init__()
        self.setMinimumSize(200, 3000)


def broken(viewer):
    msg = "no such model folder"
    raise RuntimeError(msg)


HERE = "tests.napari.test_dock"


def _settle(qtbot) -> None:
    qtbot.wait(20)  # the opener closes its own dock when the event loop turns


def test_manifest_entries_are_the_tabs_in_order():
    widgets = MANIFEST.contributions.widgets
    commands = {c.id: c.python_name for c in MANIFEST.contributions.commands}
    assert [w.display_name for w in widgets] == [t.name for t in TABS] == widget_names()
    for widget in widgets:
        module, _, name = commands[widget.command].partition(":")
        opener = getattr(__import__(module, fromlist=[name]), name)
        assert issubclass(opener, TabOpener)
        assert opener.name == widget.display_name  # the entry opens its own tab


def test_each_entry_from_python_opens_the_one_dock_on_its_tab(qtbot, napari_settings,
                                                             make_napari_viewer):
    viewer = make_napari_viewer(show=True)
    viewer.open_sample(PLUGIN, "ct_abdomen")
    seen = {}
    for name in widget_names():
        _, opener = viewer.window.add_plugin_dock_widget(PLUGIN, name)
        _settle(qtbot)
        assert list(viewer.window.dock_widgets) == [DOCK_NAME]  # nothing stacked
        dock = find_dock(viewer)
        assert dock.current() == name
        assert dock.isVisible()
        assert opener.tab_widget is dock.tab(name)
        seen[name] = type(opener.tab_widget).__name__
    assert seen == {"Scan": "ScanWidget", "Segment": "SegmentWidget",
                    "Interactive": "InteractiveWidget", "Train": "TrainWidget",
                    "Correct and fine-tune": "FinetuneWidget", "Evaluate": "EvaluateWidget",
                    "Fuse": "FuseWidget"}


def test_each_menu_entry_opens_the_one_dock_on_its_tab(qtbot, napari_settings,
                                                       make_napari_viewer):
    from napari._app_model import get_app_model

    viewer = make_napari_viewer(show=True)
    app = get_app_model()
    for widget in reversed(MANIFEST.contributions.widgets):  # the menu runs its command
        app.commands.execute_command(widget.command).result()
        _settle(qtbot)
        assert list(viewer.window.dock_widgets) == [DOCK_NAME]
        assert find_dock(viewer).current() == widget.display_name
    again = MANIFEST.contributions.widgets[1]  # an entry chosen twice shows its tab again
    find_dock(viewer).show_tab("Fuse")
    app.commands.execute_command(again.command).result()
    _settle(qtbot)
    assert find_dock(viewer).current() == again.display_name


def test_main_job_and_menu_share_the_dock(qtbot, napari_settings, make_napari_viewer):
    viewer = open_viewer(sample="ct_abdomen", viewer=make_napari_viewer(show=True))
    dock = find_dock(viewer)
    assert dock.current() == "Segment"
    segment = dock.tab("Segment")
    viewer.window.add_plugin_dock_widget(PLUGIN, "Evaluate")
    _settle(qtbot)
    assert find_dock(viewer) is dock
    assert dock.current() == "Evaluate"
    assert dock.tab("Segment") is segment  # the same widgets, not new ones
    assert open_dock(viewer) is dock


def test_layer_changes_and_new_models_reach_every_tab(qtbot, napari_settings,
                                                      make_napari_viewer):
    viewer = make_napari_viewer()
    tabs = [Tab(name="A", title="A", factory=f"{HERE}:Recorder"),
            Tab(name="B", title="B", factory=f"{HERE}:Recorder")]
    dock = MedSegDock(viewer, tabs=tabs)
    viewer.window.add_dock_widget(dock, name=DOCK_NAME)
    assert list(dock.widgets) == ["A"]  # only the tab shown is built; B when first shown
    dock.tabs.setCurrentIndex(1)  # (or a moment later, see the test below)
    assert list(dock.widgets) == ["A", "B"]
    viewer.add_image(np.zeros((4, 4)), name="new")  # napari calls the dock's reset_choices
    announce_model(Path("new-model-v1.safetensors"))  # what a tab that saved a model calls
    for name in "AB":
        assert dock.tab(name).calls[-2:] == ["reset_choices", "refresh_models"]
    closed = dock.tab("A")
    closed.deleteLater()  # a closed tab is no longer called, and nothing fails
    qtbot.waitUntil(lambda: not shortcuts.alive(closed), timeout=5_000)
    announce_model(Path("new-model-v2.safetensors"))
    assert dock.tab("B").calls[-1] == "refresh_models"
    assert dock.tab("B").calls.count("refresh_models") == 2  # once per model, not per tab


def test_a_tab_lists_a_scan_opened_after_it(qtbot, napari_settings, make_napari_viewer):
    viewer = make_napari_viewer()
    dock = open_dock(viewer, "Scan")
    image = viewer.open_sample(PLUGIN, "ct_abdomen")[0]
    assert image in dock.tab("Scan").layer.choices  # through the dock's reset_choices


def test_a_tab_that_fails_says_why_and_the_others_work(qtbot, monkeypatch, napari_settings,
                                                       make_napari_viewer):
    shown: list[str] = []
    monkeypatch.setattr(notify, "show_error", shown.append)
    viewer = make_napari_viewer()
    dock = MedSegDock(viewer, tabs=[Tab(name="Broken", title="Broken", factory=f"{HERE}:broken"),
                                    Tab(name="A", title="A", factory=f"{HERE}:Recorder")])
    label = dock.tab("Broken")
    assert isinstance(label, QLabel)
    assert "no such model folder" in label.text()
    assert isinstance(dock.tab("A"), Recorder)
    assert len(shown) == 1
    assert "Broken tab" in shown[0]
    with pytest.raises(KeyError, match="its tabs are Broken, A"):
        dock.tab("Train")


def test_a_tall_tab_scrolls_instead_of_growing_the_window(qtbot, napari_settings,
                                                          make_napari_viewer):
    viewer = make_napari_viewer(show=True)
    qtbot.wait(20)
    height = viewer.window._qt_window.height()
    dock = MedSegDock(viewer, tabs=[Tab(name="Tall", title="Tall", factory=f"{HERE}:Tall")])
    viewer.window.add_dock_widget(dock, name=DOCK_NAME, add_vertical_stretch=False)
    qtbot.wait(50)
    assert dock.window().height() == height
    page = dock.pages["Tall"]
    assert page.verticalScrollBar().maximum() > 0  # the 3000 px tab scrolls


def test_dock_is_as_wide_as_its_widest_tab_within_its_share(qtbot, napari_settings,
                                                            make_napari_viewer):
    viewer = make_napari_viewer(show=True)
    dock = open_dock(viewer)
    window = dock.window()
    window.resize(1900, 700)
    qtbot.wait(20)
    assert dock.fit_width() == dock.needed_width()
    qtbot.wait(20)
    assert dock.width() >= dock.needed_width()
    window.resize(600, 500)  # too narrow: the dock takes its share, the tab scrolls sideways
    qtbot.wait(20)
    assert dock.fit_width() == int(MAX_SHARE * window.width()) < dock.needed_width()


def test_windows_fit_the_screen(qtbot):
    window = QMainWindow()
    qtbot.addWidget(window)
    window.show()
    area = available_geometry(window)
    window.resize(area.width() + 800, area.height() + 1339)  # what napari remembered
    window.move(area.left() + 40, area.top() + 30)
    fitted = fit_to_screen(window, maximize=False)
    assert fitted.width() <= area.width()
    assert fitted.height() <= area.height()
    assert area.contains(window.frameGeometry())
    small = fit_to_screen(window, maximize=False)  # a window that fits stays as it is
    assert small == fitted
    window.resize(300, 200)
    grow_within_screen(window, width=area.width() + 500)
    assert window.frameGeometry().width() == area.width()  # as far as the screen allows
    assert area.contains(window.frameGeometry())
    window.resize(300, 200)
    fit_to_screen(window, maximize=True)
    assert window.frameGeometry() == area or window.isMaximized()



def test_tabs_never_shown_are_built_soon_and_their_shortcuts_work(qtbot, napari_settings,
                                                                   make_napari_viewer):
    """The dock opens on one tab; the others are built one at a time in the next seconds, so
    that Ctrl+Shift+S (Segment), +L (Train) and +F (Fine-tune) answer without their tabs ever
    having been shown."""
    from napari.utils.key_bindings import coerce_keybinding

    viewer = make_napari_viewer()
    dock = open_dock(viewer, "Scan")
    assert list(dock.widgets) == ["Scan"]
    assert coerce_keybinding(shortcuts.SEGMENT) not in viewer.keymap  # bound by its tab
    qtbot.waitUntil(lambda: set(dock.widgets) == set(dock.names), timeout=30_000)
    assert dock.current() == "Scan"  # building did not switch tabs
    for key in (shortcuts.SEGMENT, shortcuts.TRAIN, shortcuts.FINETUNE):
        assert coerce_keybinding(key) in viewer.keymap, key
