"""Errors of the core shown to a person as napari notifications (never a crash).

Our own errors (:class:`~napari_medseg.errors.MedsegError`) already say what to do; other
exceptions are shown with their type and, for the common ones, the usual fix, and their
traceback goes to the log for a bug report.
"""

from __future__ import annotations

import logging

from napari.utils.notifications import show_error, show_warning

from napari_medseg.errors import MedsegError, render

log = logging.getLogger(__name__)


def fix_for(exc: BaseException) -> str:
    """What usually helps with an exception that is not one of ours ("" when unknown)."""
    text = str(exc).lower()
    if isinstance(exc, MemoryError) or "out of memory" in text:
        return ("try a smaller tile or batch (Advanced), the CPU device, or crop the scan "
                "to the region you need")
    if isinstance(exc, PermissionError):
        return "choose a file or folder you can write to"
    if isinstance(exc, FileNotFoundError):
        return "check the path (was the file moved?) and choose it again"
    if isinstance(exc, OSError) and "no space" in text:
        return "free some disk space, or write to another drive"
    return ""


def message(exc: BaseException) -> str:
    """The text of ``exc`` for a person in the GUI: a setting it asks for is named by its
    control (:func:`~napari_medseg._napari.options_form.gui_spelling`)."""
    if not isinstance(exc, MedsegError):
        return str(exc)
    from napari_medseg._napari.options_form import gui_spelling

    return render(exc, gui_spelling)


def report(exc: BaseException, *, context: str = "") -> None:
    """Show ``exc`` as a notification: our errors as their message, others with their type
    and the usual fix."""
    prefix = f"napari-medseg{': ' + context if context else ''}: "
    if isinstance(exc, MedsegError):
        show_error(prefix + message(exc))
        return
    log.warning("napari-medseg %s failed", context or "job", exc_info=exc)
    fix = fix_for(exc)
    show_error(prefix + f"{type(exc).__name__}: {exc}" + (f"; {fix}" if fix else ""))


def warn(message: str) -> None:
    show_warning(f"napari-medseg: {message}")
