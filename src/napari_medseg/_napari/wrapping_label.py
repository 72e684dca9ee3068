"""A text label that wraps to the dock's width, long file and layer names included.

Qt wraps a label's plain text only between words, so one long name
(``abdomen_t1_vibe_dixon_tra_bh_opposed_phase_series_0007``) made a label as wide as that
name: the dock grew past its share of the window and the tab scrolled sideways, or the name
was cut.  :class:`WrappingLabel` shows such a word with invisible break opportunities
(zero-width spaces) after its ``_ / \\ . -`` and every :data:`LONG_WORD` characters; its
``value`` is the text as given, without them.
"""

from __future__ import annotations

import re
from typing import Any

from magicgui.widgets import Label
from qtpy.QtWidgets import QSizePolicy

#: A word longer than this many characters may be broken inside.
LONG_WORD = 24
_BREAK = "\u200b"  # zero-width space: a line may break here, nothing is drawn
_LONG = re.compile(rf"\S{{{LONG_WORD + 1},}}")
_AFTER = re.compile(r"([_/\\.\-])")
_RUN = re.compile(rf"([^_/\\.\-{_BREAK}]{{{LONG_WORD}}})(?=[^_/\\.\-{_BREAK}])")


def breakable(text: str) -> str:
    """``text`` with break opportunities inside its words longer than :data:`LONG_WORD`."""

    def split(match: re.Match[str]) -> str:
        return _RUN.sub(rf"\1{_BREAK}", _AFTER.sub(rf"\1{_BREAK}", match.group(0)))

    return _LONG.sub(split, text)


class WrappingLabel(Label):
    """A magicgui ``Label`` that wraps to the width it is given and never asks for more."""

    def __init__(self, value: str = "", **kwargs: Any) -> None:
        super().__init__(value=value, **kwargs)
        self.native.setWordWrap(True)
        self.native.setSizePolicy(QSizePolicy.Policy.Ignored, QSizePolicy.Policy.Preferred)

    @property
    def value(self) -> str:
        return str(Label.value.fget(self)).replace(_BREAK, "")  # type: ignore[attr-defined]

    @value.setter
    def value(self, text: str) -> None:
        Label.value.fset(self, breakable(str(text)))  # type: ignore[attr-defined]
