"""When napari-medseg's writers may replace an existing file: only after a person was asked.

napari reaches a writer contribution in two ways:

* *File > Save Selected Layers* (``QtViewer._save_layers_dialog``): Qt's save dialog asks
  "... already exists. Do you want to replace it?" before it returns an existing name
  (napari never passes ``DontConfirmOverwrite``), then napari calls the writer with exactly
  that name.
* ``viewer.layers.save(path)``, ``napari.save_layers(path, layers)`` and npe2's
  ``write``: nobody is asked, and napari may append an extension to ``path`` first.

So the writers replace an existing file only when they run inside napari's save dialog
handler *and* the file is the one the dialog returned (found by looking up the call stack
for that handler's ``filename``).  Anything else that would replace a file raises
:class:`~napari_medseg.errors.OutputExistsError`, which says how to go on; the file is left
as it was.  If napari renames its handler, saving over a file from the dialog fails with
that message too: safe, and the test of this module notices.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path
from types import FrameType

from napari_medseg.errors import OutputExistsError

SAVE_DIALOG_HANDLER = "_save_layers_dialog"  # napari._qt.qt_viewer.QtViewer


def _dialog_frame() -> FrameType | None:
    """The frame of napari's save dialog handler on the current call stack, if any."""
    frame: FrameType | None = sys._getframe(1)
    while frame is not None:
        if (frame.f_code.co_name == SAVE_DIALOG_HANDLER
                and str(frame.f_globals.get("__name__", "")).startswith("napari._qt")):
            return frame
        frame = frame.f_back
    return None


def confirmed_by_save_dialog(path: Path) -> bool:
    """Whether ``path`` is the file napari's save dialog returned in this call: the dialog
    asked before returning an existing file."""
    frame = _dialog_frame()
    if frame is None:
        return False
    chosen = frame.f_locals.get("filename")
    if not isinstance(chosen, str | os.PathLike) or not str(chosen):
        return False
    return Path(chosen).resolve() == Path(path).resolve()


def may_replace(path: Path) -> bool:
    """The ``overwrite`` flag for writing ``path`` from napari: ``False`` for a new file,
    ``True`` for an existing one the save dialog asked about; otherwise raises."""
    if not path.exists():
        return False
    if confirmed_by_save_dialog(path):
        return True
    msg = (
        f"{path} already exists and napari did not ask whether to replace it (saving from "
        "Python or the console asks nobody), so it was left as it was; save under another "
        "name, use File > Save Selected Layers (it asks), or delete the file first"
    )
    raise OutputExistsError(msg)
