"""One evented signal for the models folder: a tab that saves a model announces it, and every
model list follows.

The Train and Correct tabs save new versions into the person's models folder
(:func:`~napari_medseg.inference.catalog.user_models_dir`); the Segment and Correct tabs list
that folder.  Instead of a saving tab looking for the others among napari's docks, it calls
:func:`announce_model`, and each list that :func:`follow_models` subscribed re-reads the
folder.  The folder is the same for every viewer of the process, so one signal serves them
all; followers are held weakly, and a closed widget is dropped.
"""

from __future__ import annotations

import weakref
from pathlib import Path
from typing import Any

from psygnal import SignalInstance

from napari_medseg._napari.shortcuts import alive

#: Emitted with the new checkpoint's path whenever a tab saved a model.
models_changed = SignalInstance((object,), name="models_changed")
_FOLLOWING: weakref.WeakSet[Any] = weakref.WeakSet()


def announce_model(path: Path) -> None:
    """A tab saved ``path``: every model list re-reads the models folder."""
    models_changed.emit(path)


def follow_models(widget: Any) -> None:
    """Call ``widget.refresh_models()`` after each model saved, while ``widget`` lives
    (subscribing a widget twice subscribes it once)."""
    if widget in _FOLLOWING:
        return
    _FOLLOWING.add(widget)
    ref = weakref.ref(widget)

    def refresh(_path: Path) -> None:
        target = ref()
        if target is None or not alive(target):
            models_changed.disconnect(refresh)  # the widget was closed
            return
        target.refresh_models()

    models_changed.connect(refresh)
