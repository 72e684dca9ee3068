"""Errors of the core shown to a person as napari notifications (never a crash)."""

from __future__ import annotations

from napari.utils.notifications import show_error, show_warning

from napari_medseg.errors import MedsegError


def report(exc: BaseException, *, context: str = "") -> None:
    """Show ``exc`` as a notification: our errors as their message, others with their type."""
    prefix = f"napari-medseg{': ' + context if context else ''}: "
    if isinstance(exc, MedsegError):
        show_error(prefix + str(exc))
    else:
        show_error(prefix + f"{type(exc).__name__}: {exc}")


def warn(message: str) -> None:
    show_warning(f"napari-medseg: {message}")
