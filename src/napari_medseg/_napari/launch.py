"""Open napari with the MedSeg dock and a scan (the README's main job)."""

from __future__ import annotations

from pathlib import Path

from npe2 import PluginManifest
from qtpy.QtWidgets import QMainWindow

import napari
from napari_medseg._napari.dock import open_dock
from napari_medseg._napari.sample_data import sample_dir
from napari_medseg._napari.screen import fit_to_screen

PLUGIN = "napari-medseg"
DEFAULT_SAMPLE = "ct_abdomen"
FIRST_TAB = "Segment"  # the main job starts where the work starts


def widget_names() -> list[str]:
    """Display names of the plugin's widget contributions (the Plugins > MedSeg entries,
    each a tab of the one MedSeg dock), in manifest order."""
    manifest = PluginManifest.from_file(Path(__file__).resolve().parents[1] / "napari.yaml")
    return [w.display_name for w in manifest.contributions.widgets or []]


def open_viewer(
    paths: list[Path] | None = None, *, sample: str | None = DEFAULT_SAMPLE, show: bool = True,
    viewer: napari.Viewer | None = None,
) -> napari.Viewer:
    """A viewer sized to the screen with the MedSeg dock (on its Segment tab) and ``paths``
    or a sample opened.

    ``viewer``: dock into this viewer instead of a new one (tests pass napari's fixture
    viewer, whose plugin state napari resets between tests).
    """
    if viewer is None:
        viewer = napari.Viewer(title="napari-medseg", show=show)
    dock = open_dock(viewer, FIRST_TAB)
    window = dock.window()
    if isinstance(window, QMainWindow):
        fit_to_screen(window, maximize=True)
        dock.fit_width()  # for the fitted window's width
    if paths:
        for path in paths:
            viewer.open(str(path), plugin=PLUGIN)
    elif sample:
        viewer.open_sample(PLUGIN, sample)
    return viewer


def view(paths: list[Path], *, sample: str | None, screenshot: Path | None) -> int:
    """Run napari until closed; with ``screenshot``, save the window and exit instead."""
    sample_dir()  # fail early with a clear message if the samples are missing
    viewer = open_viewer(paths, sample=sample if not paths else None)
    if screenshot is not None:
        from qtpy.QtWidgets import QApplication

        for _ in range(20):
            QApplication.processEvents()
        viewer.screenshot(str(screenshot), canvas_only=False)
        viewer.close()
        return 0
    napari.run()
    return 0
