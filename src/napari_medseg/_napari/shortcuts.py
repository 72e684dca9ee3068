"""Keyboard shortcuts of the dock widgets, bound in the viewer's keymap.

napari hands a key press to the viewer's keymap when the canvas has focus, and a docked
widget passes on the keys it does not use, so these work while painting on the canvas and
while a MedSeg control has focus.  All are Ctrl+Shift+letter combinations that napari 0.9
leaves free (it uses Ctrl+Shift+C console, +O open folder, +P command palette, +T theme,
+Z redo in Labels); a key a person bound in napari's preferences wins over ours.
"""

from __future__ import annotations

import weakref
from collections.abc import Callable
from typing import Any

from napari.utils.key_bindings import coerce_keybinding
from qtpy.QtCore import QObject
from qtpy.QtGui import QKeySequence

import napari

SEGMENT = "Ctrl+Shift+S"
FINETUNE = "Ctrl+Shift+F"
MARK_REVIEWED = "Ctrl+Shift+R"
CANCEL = "Ctrl+Shift+X"


def key_text(key: str) -> str:
    """The key as the platform writes it (``Ctrl+Shift+S``; ``⇧⌘S`` on macOS)."""
    return QKeySequence(key).toString(QKeySequence.SequenceFormat.NativeText)


def hint(text: str, key: str) -> str:
    """``text`` followed by the key in parentheses, for tooltips and button labels."""
    return f"{text} ({key_text(key)})"


def alive(owner: Any) -> bool:
    """Whether the Qt object behind ``owner`` (a QWidget or a magicgui widget) still exists."""
    native = owner if isinstance(owner, QObject) else getattr(owner, "native", None)
    if native is None:
        return True
    try:
        native.objectName()
    except RuntimeError:  # the C++ object was deleted (the dock widget was closed)
        return False
    return True


_alive = alive


class KeyAction:
    """What one key does in one viewer: the newest live action, or every live one.

    Actions are held weakly, so a closed widget is neither kept alive nor called.
    """

    def __init__(self, *, every: bool) -> None:
        self.every = every
        self._actions: list[weakref.WeakMethod[Callable[[], Any]]] = []

    def add(self, action: Callable[[], Any]) -> None:
        self._actions.append(weakref.WeakMethod(action))

    def live(self) -> list[Callable[[], Any]]:
        actions = [ref() for ref in self._actions]
        return [a for a in actions if a is not None and alive(a.__self__)]  # type: ignore[attr-defined]

    def __call__(self) -> None:
        live = self.live()
        for action in live if self.every else live[-1:]:
            action()


def bind(viewer: napari.viewer.Viewer, key: str, action: Callable[[], Any], *,
         every: bool = False) -> None:
    """Call the bound method ``action`` when ``key`` is pressed in ``viewer``.

    With several widgets bound to one key, the newest one answers, or all with ``every``
    (Cancel stops whatever runs).  A key a script already bound in this viewer is left alone.
    """
    bound = viewer.keymap.get(coerce_keybinding(key))
    if bound is not None and not isinstance(getattr(bound, "key_action", None), KeyAction):
        return  # a script bound this key in this viewer: its binding wins
    if bound is None:
        key_action = KeyAction(every=every)

        def on_key(_viewer: Any) -> None:  # napari wants a plain function (it reads __name__)
            key_action()

        on_key.__name__ = on_key.__qualname__ = "napari_medseg_" + key.replace("+", "_")
        on_key.key_action = key_action  # type: ignore[attr-defined]
        viewer.bind_key(key, on_key, overwrite=True)
        bound = on_key
    bound.key_action.add(action)
