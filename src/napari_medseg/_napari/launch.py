"""Open napari with every MedSeg dock widget and a scan (the README's main job)."""

from __future__ import annotations

from pathlib import Path

from npe2 import PluginManifest

import napari
from napari_medseg._napari.sample_data import sample_dir

PLUGIN = "napari-medseg"
DEFAULT_SAMPLE = "ct_abdomen"


def widget_names() -> list[str]:
    """Display names of the plugin's dock widgets, in manifest order."""
    manifest = PluginManifest.from_file(Path(__file__).resolve().parents[1] / "napari.yaml")
    return [w.display_name for w in manifest.contributions.widgets or []]


def open_viewer(
    paths: list[Path] | None = None, *, sample: str | None = DEFAULT_SAMPLE, show: bool = True,
    viewer: napari.Viewer | None = None,
) -> napari.Viewer:
    """A viewer with the MedSeg widgets docked (tabbed) and ``paths`` or a sample opened.

    ``viewer``: dock into this viewer instead of a new one (tests pass napari's fixture
    viewer, whose plugin state napari resets between tests).
    """
    if viewer is None:
        viewer = napari.Viewer(title="napari-medseg", show=show)
    docks = [
        viewer.window.add_plugin_dock_widget(PLUGIN, name, tabify=True)[0]
        for name in widget_names()
    ]
    if paths:
        for path in paths:
            viewer.open(str(path), plugin=PLUGIN)
    elif sample:
        viewer.open_sample(PLUGIN, sample)
    names = widget_names()
    if "Segment" in names:  # the main job starts on the Segment tab
        docks[names.index("Segment")].raise_()
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
