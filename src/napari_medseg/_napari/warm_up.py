"""Load the heavy libraries of the tabs (torch, the engine and training modules) in the
background once a person opens a scan through napari-medseg, so that the MedSeg dock opens
without freezing the window.

Importing torch and the jobs takes 2-3 s of one core; done on the GUI thread when the dock is
created, the window froze that long.  A scan opened through our reader or samples is the usual
first step before the dock, so :func:`warm_up` starts a daemon thread then; the GUI thread
keeps running (the longest gap measured while the thread imports: ~0.3 s, loading torch's
shared library, against 2.6 s).  An import the GUI thread needs meanwhile waits for the same
module, as Python's import locks ensure; a failed import is left for the code that needs it to
report.
"""

from __future__ import annotations

import importlib
import logging
import threading

log = logging.getLogger(__name__)

#: What the tabs import when they are built or first run, heaviest first.
MODULES = ("torch", "napari_medseg.inference.segment", "napari_medseg.inference.fit",
           "napari_medseg.training.job", "napari_medseg.interactive.session")
_started = threading.Event()
finished = threading.Event()


def warm_up() -> None:
    """Start importing :data:`MODULES` in a daemon thread (once per process)."""
    if _started.is_set():
        return
    _started.set()
    threading.Thread(target=_import_all, name="medseg-warm-up", daemon=True).start()


def _import_all() -> None:
    try:
        for name in MODULES:
            importlib.import_module(name)
    except Exception as exc:  # the tab that needs it reports it when it imports it itself
        log.debug("warm-up import failed: %s", exc)
    finally:
        finished.set()
