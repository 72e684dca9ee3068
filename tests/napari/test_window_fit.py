"""The window at 1280x800 and 1920x1080 (issue #16): one MedSeg dock however the tools are
opened, a main window that fits the screen, a canvas that keeps its width, no control cut.

Each screen size is a fresh Xvfb screen and a fresh process running
``tests/napari/window_check.py`` (it opens napari as a person does and measures); these
tests assert on its report.  Screenshots go to ``tmp_path``, and a selection to the folder
named by ``NAPARI_MEDSEG_WINDOW_SHOTS`` (how ``docs/images/window/`` is made).
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from napari_medseg._napari.dock import MAX_SHARE
from napari_medseg._napari.launch import widget_names

pytestmark = pytest.mark.gui

REPO = Path(__file__).resolve().parents[2]
SIZES = [(1280, 800), (1920, 1080)]
DOC_SHOTS = {  # report step -> name in docs/images/window/
    "main 0 opened": "main-segment",
    "main 3 Interactive": "main-interactive",
    "main 4 Train": "main-train",
    "main 5 Correct and fine-tune": "main-correct",
}
# "Most of the width": at 1920 px the canvas gets half the window or more; at 1280 px, where
# napari's own layer panels take 271-337 px, it is the widest part of the window.
# Controls the widgets cut on purpose (none now): each listed one must still be cut (so the
# list is pruned when it is fixed), and no other may be.
KNOWN_CUT: dict[tuple[str, str], str] = {}


@pytest.fixture(scope="module", params=SIZES, ids=[f"{w}x{h}" for w, h in SIZES])
def report(request, tmp_path_factory):
    if shutil.which("Xvfb") is None:
        pytest.skip("needs Xvfb for a virtual screen of each size (Linux: apt install xvfb)")
    from pyvirtualdisplay.display import Display

    width, height = request.param
    out = tmp_path_factory.mktemp(f"window-{width}x{height}")
    display = Display(backend="xvfb", size=(width, height), color_depth=24,
                      manage_global_env=False)
    display.start()
    try:
        env = {
            **os.environ,
            "DISPLAY": f":{display.display}",
            "QT_QPA_PLATFORM": "xcb",
            "NAPARI_CONFIG": str(out / "napari" / "settings.yaml"),
            "NAPARI_MEDSEG_CONFIG_DIR": str(out / "medseg-config"),
            "NAPARI_MEDSEG_MODELS": str(out / "models"),
        }
        proc = subprocess.run(
            [sys.executable, "-m", "tests.napari.window_check", "--out", str(out)],
            cwd=REPO, env=env, capture_output=True, text=True, timeout=400, check=False)
    finally:
        display.stop()
    assert proc.returncode == 0, f"window_check failed:\n{proc.stdout[-4000:]}\n" \
                                 f"{proc.stderr[-4000:]}"
    data = json.loads((out / "report.json").read_text(encoding="utf-8"))
    assert data["screen"] == [width, height]  # the check ran on the screen asked for
    _keep_doc_shots(data)
    return data


def _keep_doc_shots(data) -> None:
    folder = os.environ.get("NAPARI_MEDSEG_WINDOW_SHOTS")
    if not folder:
        return
    Path(folder).mkdir(parents=True, exist_ok=True)
    size = "x".join(map(str, data["screen"]))
    for record in data["menu"] + data["main"]:
        if record["step"] in DOC_SHOTS:
            shutil.copyfile(record["screenshot"],
                            Path(folder) / f"{size}-{DOC_SHOTS[record['step']]}.png")


def _with_dock(data):
    """Every record taken with the MedSeg dock open (all but napari before MedSeg)."""
    return [r for r in data["menu"] + data["main"] if r["expected_tab"] is not None]


def _inside(frame, area) -> bool:
    x, y, w, h = frame
    ax, ay, aw, ah = area
    return ax <= x and ay <= y and x + w <= ax + aw and y + h <= ay + ah


def test_every_menu_entry_and_the_main_job_use_one_dock_on_their_tab(report):
    entries = [r["expected_tab"] for r in report["menu"][1:]]
    assert entries == widget_names()  # every Plugins > MedSeg entry was triggered
    for record in _with_dock(report):
        assert record["dock_widgets"] == ["MedSeg"], record["step"]
        assert record["tab"] == record["expected_tab"], record["step"]
        medseg = [d for d in record["visible_docks"] if d not in ("layer controls", "layer list")]
        assert medseg == ["MedSeg"], record["step"]  # no opener dock left, nothing stacked


def test_main_window_fits_the_screen(report):
    before = report["menu"][0]
    assert before["frame"][3] > before["available"][3]  # napari's remembered 1939 px height
    for record in _with_dock(report):
        assert _inside(record["frame"], record["available"]), record["step"]
    for record in report["main"]:  # the main job fills the screen
        assert record["frame"] == record["available"], record["step"]


def test_canvas_keeps_most_of_the_width(report):
    for record in _with_dock(report):
        canvas = record["canvas"][0]
        widest_panel = max(rect[2] for rect in record["dock_rects"].values())
        assert canvas > widest_panel, record["step"]  # wider than the dock and layer panels
        if report["screen"][0] >= 1920:
            assert canvas >= 0.5 * record["frame"][2], record["step"]


def test_dock_shows_every_tab_whole_within_its_share_of_the_window(report):
    for record in _with_dock(report):
        assert record["dock_width"] >= record["dock_needs"], record["step"]
        assert record["dock_width"] <= MAX_SHARE * record["frame"][2] + 1, record["step"]
        assert record["tab_bar_fits"], record["step"]
        assert not record["scrolls_sideways"], record["step"]


def test_no_control_is_cut(report):
    still_cut = set()
    for record in _with_dock(report):
        for control in record["clipped"]:
            key = (record["tab"], control["type"])
            assert key in KNOWN_CUT, (record["step"], control)
            still_cut.add(key)
    assert still_cut == set(KNOWN_CUT)  # a fixed one leaves this list


def test_screenshots_show_the_window_and_the_scan(report):
    for record in _with_dock(report):
        assert record["screenshot_size"] == record["frame"][2:], record["step"]
        assert record["canvas_std"] > 10, record["step"]  # a scan is drawn, not a blank canvas
