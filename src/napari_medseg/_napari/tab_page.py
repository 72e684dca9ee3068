"""One tab of the MedSeg dock: its widget in a scroll area that scrolls down, never sideways.

A tab taller than the dock scrolls vertically instead of making the window taller or
squeezing its buttons.  Sideways, the tab fits the dock: a combo box asks for room for
:data:`NAME_CHARS` characters, not for its longest choice (napari layer names and DICOM
series descriptions run to 60 characters, which made the Scan tab wider than the dock with
the combo boxes' arrows cut off), and long texts wrap
(:class:`~napari_medseg._napari.wrapping_label.WrappingLabel`).  Controls added later (a
scan list's new row) are fitted the same way when the tab's layout changes.
"""

from __future__ import annotations

from qtpy.QtCore import QEvent, QObject, QSize
from qtpy.QtWidgets import (
    QComboBox,
    QFrame,
    QScrollArea,
    QSizePolicy,
    QStyle,
    QVBoxLayout,
    QWidget,
)

#: The characters a combo box of a tab makes room for (a longer choice is cut at its arrow
#: and shown whole in its list).
NAME_CHARS = 14
_EXPANDING = {QSizePolicy.Policy.Expanding, QSizePolicy.Policy.MinimumExpanding,
              QSizePolicy.Policy.Ignored}
_NARROW = QComboBox.SizeAdjustPolicy.AdjustToMinimumContentsLengthWithIcon


def wants_height(widget: QWidget) -> bool:
    """napari's rule for a docked widget: it takes the height it is given if it, or one of
    the widgets directly in its layout, expands vertically (a table, a plot)."""
    if widget.sizePolicy().verticalPolicy() in _EXPANDING:
        return True
    layout = widget.layout()
    if layout is None:
        return False
    for i in range(layout.count()):
        item = layout.itemAt(i)
        child = item.widget() if item is not None else None
        if child is not None and child.sizePolicy().verticalPolicy() in _EXPANDING:
            return True
    return False


def narrow_combo_boxes(root: QWidget) -> int:
    """Let every combo box under ``root`` be as narrow as :data:`NAME_CHARS` characters
    (with its arrow) instead of its longest choice; returns how many it changed."""
    changed = 0
    for combo in root.findChildren(QComboBox):
        if combo.sizeAdjustPolicy() != _NARROW:
            combo.setSizeAdjustPolicy(_NARROW)
            combo.setMinimumContentsLength(NAME_CHARS)
            policy = combo.sizePolicy()  # it takes the row's width (a scan list's row)
            policy.setHorizontalPolicy(QSizePolicy.Policy.Expanding)
            combo.setSizePolicy(policy)
            combo.updateGeometry()
            changed += 1
    return changed


class _Holder(QWidget):
    """A scroll area's content that is never squeezed below its preferred height: a tab
    taller than the dock scrolls instead of shrinking its buttons."""

    def minimumSizeHint(self) -> QSize:
        hint = super().minimumSizeHint()
        return QSize(hint.width(), max(hint.height(), self.sizeHint().height()))


class TabPage(QScrollArea):
    """A tab's widget in a scroll area: taller than the dock, it scrolls vertically; its
    controls narrow to the dock (see the module docstring).  Only a dock narrower than
    :meth:`needed_width` (a person narrowed it on a small screen) scrolls sideways rather
    than cutting the controls."""

    def __init__(self, content: QWidget) -> None:
        super().__init__()
        self.setWidgetResizable(True)
        self.setFrameShape(QFrame.Shape.NoFrame)
        holder = _Holder()
        self._layout = QVBoxLayout(holder)
        self._layout.setContentsMargins(0, 0, 0, 0)
        self.content = content
        self._place(content)
        holder.installEventFilter(self)
        self.setWidget(holder)
        self.holder: QWidget = holder

    def _place(self, content: QWidget) -> None:
        self._layout.addWidget(content)
        if not wants_height(content):
            self._layout.addStretch(1)  # controls stay at the top, as napari docks them
        narrow_combo_boxes(self.widget() or content)

    def replace(self, content: QWidget) -> None:
        """Show ``content`` instead of the present content (a tab built when first shown
        takes the place of its placeholder); the old content is deleted."""
        while self._layout.count():
            item = self._layout.takeAt(0)
            old = item.widget() if item is not None else None
            if old is not None:
                old.hide()
                old.deleteLater()
        self.content = content
        self._place(content)

    def eventFilter(self, watched: QObject | None, event: QEvent | None) -> bool:
        if (event is not None and event.type() == QEvent.Type.LayoutRequest
                and isinstance(watched, QWidget)):
            narrow_combo_boxes(watched)  # a control added since (a new row of a scan list)
        return False

    def needed_width(self) -> int:
        """The width that shows the widget whole, with room for the vertical scroll bar."""
        style, holder = self.style(), self.widget()
        if style is None or holder is None:
            return 0
        bar = style.pixelMetric(QStyle.PixelMetric.PM_ScrollBarExtent)
        return holder.minimumSizeHint().width() + bar + 2 * self.frameWidth()
