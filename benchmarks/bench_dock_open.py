"""How long opening the MedSeg dock, and each tab the first time, blocks napari's window.

    xvfb-run -a -s "-screen 0 1600x1000x24" python benchmarks/bench_dock_open.py [--cold]

A shown napari window at 1280x800; the bundled CT is opened through the plugin's samples (as a
newcomer does first: it starts loading torch and the jobs in the background), 4 s pass, then
the dock is opened on its Scan tab; it builds the other tabs one at a time in the next seconds
(measured as one step, the longest stall is one tab's build), then every tab is shown once.
Printed per step: wall time and the longest gap of the Qt event loop
(:class:`~napari_medseg._napari.responsiveness.StallMeter`, with the code that caused it).
``--cold``: the dock is opened first, before any scan (torch not yet loaded).  Goal: every
stall under 100 ms.  Results to
``benchmarks/results/dock_open_cpu.json``.
"""

from __future__ import annotations

import argparse
import json
import os
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--cold", action="store_true", help="open the dock before any scan")
    parser.add_argument("--out", type=Path, default=REPO / "benchmarks" / "results"
                        / "dock_open_cpu.json")
    args = parser.parse_args()
    tmp = tempfile.mkdtemp()
    os.environ["NAPARI_MEDSEG_MODELS"] = str(Path(tmp) / "models")
    os.environ.setdefault("NAPARI_MEDSEG_CONFIG_DIR", str(Path(tmp) / "config"))

    from qtpy.QtWidgets import QApplication

    import napari
    from napari_medseg._napari.dock import TABS, open_dock
    from napari_medseg._napari.responsiveness import StallMeter

    viewer = napari.Viewer(show=True)
    window = viewer.window._qt_window
    window.resize(1280, 800)
    app = QApplication.instance()

    def wait(seconds: float) -> None:
        end = time.perf_counter() + seconds
        while time.perf_counter() < end:
            app.processEvents()
            time.sleep(0.005)

    def measure(step: str, action) -> dict[str, object]:
        meter = StallMeter(where=True)
        meter.start()
        wait(0.1)
        start = time.perf_counter()
        action()
        seconds = time.perf_counter() - start
        wait(0.5)  # what the step queued for later turns of the event loop
        meter.stop()
        row = {"step": step, "seconds": round(seconds, 3),
               "longest_stall_ms": round(meter.longest_ms, 1), "in": meter.culprit[-6:]}
        print(f"{step:<28} {seconds:7.3f} s  longest stall {meter.longest_ms:7.1f} ms")
        return row

    wait(1.0)
    rows = []
    if not args.cold:
        rows.append(measure("open the sample CT", lambda: viewer.open_sample(
            "napari-medseg", "ct_abdomen")))
        wait(4.0)
    dock_box: list = []
    rows.append(measure("open the dock (Scan tab)",
                        lambda: dock_box.append(open_dock(viewer, "Scan"))))
    dock = dock_box[0]

    def build_the_rest() -> None:  # the dock builds the other tabs, one at a time
        end = time.perf_counter() + 20
        while set(dock.widgets) != set(dock.names) and time.perf_counter() < end:
            wait(0.05)

    rows.append(measure("the other tabs built by then", build_the_rest))
    for tab in TABS[1:]:
        rows.append(measure(f"show the {tab.name} tab", lambda t=tab: dock.show_tab(t.name)))
    viewer.close()
    result = {"cold": args.cold, "window": "1280x800", "rows": rows,
              "worst_ms": max(r["longest_stall_ms"] for r in rows)}
    out = args.out.with_name(args.out.stem + ("_cold" if args.cold else "") + args.out.suffix)
    out.write_text(json.dumps(result, indent=1))
    print(f"worst stall {result['worst_ms']:.0f} ms (goal < 100 ms); wrote {out}")


if __name__ == "__main__":
    main()
