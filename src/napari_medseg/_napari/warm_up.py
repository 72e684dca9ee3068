"""Load the heavy libraries of the tabs (torch, the engine and training modules) in the
background once a person opens a scan through napari-medseg, so that the MedSeg dock opens
without freezing the window.

Importing torch and the jobs takes 2-3 s of one core; done on the GUI thread when the dock is
created, the window froze that long.  A scan opened through our reader or samples is the usual
first step before the dock, so :func:`warm_up` starts a daemon thread then; the GUI thread
keeps running (the longest gap measured while the thread imports: ~0.3 s, loading torch's
shared library, against 2.6 s).  The job tabs' runners start it too (a tab made without a
scan opened through us, e.g. from Python).  An import the GUI thread needs meanwhile waits for
the same module, as Python's import locks ensure; a failed import is left for the code that
needs it to report.
"""

from __future__ import annotations

import importlib
import logging
import threading

log = logging.getLogger(__name__)

#: What the tabs import when they are built or first run, heaviest first.
#: ``pandas``: napari imports it for the first Labels layer's features table (0.6 s of a
#: 1.2 s first add); ``torch._dynamo``: ``torch.optim``'s optimizers import torch's compiler
#: stack on their first use (2.4 s on 2 cores, holding the GIL for 0.2-0.5 s at a time: inside
#: the first fine-tune it froze the window that long).
MODULES = ("torch", "napari_medseg.inference.segment", "napari_medseg.inference.fit",
           "napari_medseg.training.job", "napari_medseg.interactive.session",
           "pandas", "torch._dynamo")
_started = threading.Event()
finished = threading.Event()


#: With a Qt application running, the thread starts this long after :func:`warm_up` is
#: called: napari is then still building and drawing the scan's first layer, and the thread
#: (loading torch's libraries holds Python's lock) made that 1.4 s longer (3.4 s against 2.0 s).
DELAY_MS = 1500


def warm_up() -> None:
    """Start importing :data:`MODULES` in a daemon thread (once per process), after
    :data:`DELAY_MS` when a Qt application runs (see there), else at once."""
    if _started.is_set():
        return
    _started.set()
    from qtpy.QtCore import QThread, QTimer
    from qtpy.QtWidgets import QApplication

    app = QApplication.instance()
    if app is not None and QThread.currentThread() is app.thread():
        QTimer.singleShot(DELAY_MS, _start)
    else:  # no event loop here to run a timer (no Qt, or a reader called in a thread)
        _start()


def running() -> bool:
    """Whether the loading was asked for and has not finished (it may not have begun)."""
    return _started.is_set() and not finished.is_set()


def _start() -> None:
    threading.Thread(target=_import_all, name="medseg-warm-up", daemon=True).start()


def _import_all() -> None:
    try:
        for name in MODULES:
            importlib.import_module(name)
        _fill_line_patterns()
    except Exception as exc:  # the tab that needs it reports it when it imports it itself
        log.debug("warm-up import failed: %s", exc)
    finally:
        finished.set()


def _fill_line_patterns() -> None:
    """Compute vispy's dash patterns once, off the GUI thread: napari draws every Labels
    layer's outline overlays with vispy lines, and the first line computes 13 patterns in
    Python (0.08-0.15 s of the GUI thread when our first result layer was added); vispy keeps
    them in an ``lru_cache``.  Pure NumPy, no OpenGL."""
    from vispy.visuals.line.dash_atlas import DashAtlas

    DashAtlas()
