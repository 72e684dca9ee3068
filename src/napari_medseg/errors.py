"""The one exception family of napari-medseg.

Every error the project raises on purpose derives from :class:`MedsegError`, so the CLI
can print it as one line (no traceback) and the napari layer can show it as a
notification.  Messages say what was wrong and what to do about it.

A message that asks for a setting names it with :func:`setting`: ``f"... or pass
{setting('overwrite')}"``.  Each front end spells the setting its own way when it shows the
message (:func:`render`): Python reads ``overwrite=True`` (``str(exc)``), the CLI its flag
``--overwrite``, the widgets the control's label.
"""

from __future__ import annotations

import ast
import re
from collections.abc import Callable
from typing import Any

_SETTING = re.compile("\u2039([A-Za-z_][A-Za-z0-9_]*)=(.*?)\u203a")  # <name=value> in guillemets

#: How a front end writes a setting: ``spell(name, value) -> text`` (``None``: its default).
Speller = Callable[[str, Any], "str | None"]


def setting(name: str, value: Any = True) -> str:
    """A setting named in a message (an option field or keyword argument and its value)."""
    return f"\u2039{name}={value!r}\u203a"


def python_spelling(name: str, value: Any) -> str:
    """``name=value``, as a keyword argument."""
    return f"{name}={value!r}"


def render(message: str | BaseException, spell: Speller | None = None) -> str:
    """``message`` with every :func:`setting` written by ``spell`` (Python's spelling where
    ``spell`` is ``None`` or returns ``None``)."""
    text = message.args[0] if isinstance(message, MedsegError) and message.args else message
    text = str(text)

    def one(match: re.Match[str]) -> str:
        name, raw = match.group(1), match.group(2)
        try:
            value = ast.literal_eval(raw)
        except (ValueError, SyntaxError):
            value = raw
        spelled = spell(name, value) if spell is not None else None
        return spelled if spelled is not None else python_spelling(name, value)

    return _SETTING.sub(one, text)


class MedsegError(Exception):
    """Base class of every error napari-medseg raises on purpose.

    ``str(exc)`` spells the settings a message asks for as Python keyword arguments; the
    front ends use :func:`render` with their own spelling.
    """

    def __str__(self) -> str:
        return render(super().__str__())


class ScanReadError(MedsegError):
    """A file or folder could not be read as a scan (unreadable, truncated, empty, not an image)."""


class UnsupportedFormatError(ScanReadError):
    """The file's format (extension or content) is not one napari-medseg reads or writes."""


class UnsupportedScanError(ScanReadError):
    """The file is an image, but not one we can use as it is (4D, NaN voxels, absurd size...)."""


class DicomSeriesError(ScanReadError):
    """A DICOM folder has no readable series, or its slices are inconsistent."""


class AmbiguousDicomSeriesError(DicomSeriesError):
    """A DICOM folder holds several series and none was chosen.

    ``series`` lists them (:class:`napari_medseg.io.dicom.DicomSeriesInfo`), so a caller can
    offer a choice and call again with ``series=<uid or index>``.
    """

    def __init__(self, message: str, series: list[Any]) -> None:
        super().__init__(message)
        self.series = series


class GeometryMismatchError(MedsegError):
    """Two arrays that must share a voxel grid (shape, spacing, origin, direction) do not."""


class ScanWriteError(MedsegError):
    """A scan or label map could not be written."""


class OutputExistsError(ScanWriteError, FileExistsError):
    """The output file exists and overwriting was not asked for."""


class RegistrationError(MedsegError):
    """A registration failed or did not converge; the moving scan was left untouched.

    ``final_metric`` holds the metric value the optimiser stopped at (``nan`` when it never ran).
    """

    def __init__(self, message: str, final_metric: float = float("nan")) -> None:
        super().__init__(message)
        self.final_metric = final_metric


class FusionError(MedsegError):
    """Scans could not be fused as asked (bad options, too few scans, unreadable transform)."""


class CheckpointError(MedsegError):
    """A model checkpoint or state dict could not be read, validated or written.

    Raised for files that are not safetensors checkpoints, specs that do not parse or name an
    unknown architecture or absurd options, and weights whose names or shapes do not match.
    """


class CheckpointExistsError(CheckpointError, OutputExistsError):
    """The checkpoint file exists and overwriting was not asked for."""


class ModelExportError(MedsegError):
    """A model could not be exported (TorchScript, ONNX) or the export does not match torch."""


class TrainingError(MedsegError):
    """Training or fine-tuning could not start or finish (bad labels, no labeled voxel, a NaN
    loss, a failed save); the previous model and any existing checkpoint are left untouched."""
