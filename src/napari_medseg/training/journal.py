"""An append-only, crash-safe journal of label corrections.

Every edit a person makes (which voxels changed, to which value) and every "slice reviewed"
mark is appended as one JSON line and ``fsync``'d, so a crash loses nothing already recorded.
On reopening, the journal is replayed onto the original prediction to restore the corrected
labels, the edited voxels and the reviewed slices.  A torn last line (a crash mid-append) is
ignored; damage anywhere else is an error.

File layout (``<scan name>.corrections.jsonl`` next to the scan, or in a project folder)::

    {"kind": "header", "version": 1, "shape": [Z, Y, X], "scan": "ct.nii.gz"}
    {"kind": "edit", "index": "<base64 zlib int64 flat indices>", "value": "<... values>"}
    {"kind": "reviewed", "axis": 0, "slice": 12, "reviewed": true}
    {"kind": "volume_reviewed", "reviewed": true}
"""

from __future__ import annotations

import base64
import json
import os
import zlib
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt

from napari_medseg.errors import MedsegError
from napari_medseg.scan import strip_image_suffix

VERSION = 1
SUFFIX = ".corrections.jsonl"


class JournalError(MedsegError):
    """A corrections journal is damaged or belongs to another grid."""


def journal_path_for(scan_path: str | Path | None, folder: str | Path | None = None, *,
                     labels_name: str | None = None, fallback: str | Path | None = None,
                     protected: Sequence[str | Path] = ()) -> Path:
    """Where the corrections of one label layer on one scan are journaled: the one rule.

    ``<folder or scan's folder>/<scan name>[.<labels name>].corrections.jsonl``.  The journal
    goes to ``fallback`` (a user folder) instead when the scan has no file, when its folder
    cannot be written, or when it is one of ``protected`` (the bundled samples: never write
    into the package).  ``labels_name`` keeps two label layers of one scan apart (characters
    other than letters, digits, ``-`` and ``_`` become ``_``).
    """
    safe = "" if labels_name is None else "." + "".join(
        c if c.isalnum() or c in "-_" else "_" for c in labels_name)
    if scan_path is None or str(scan_path) == "":
        if fallback is None:
            msg = "a scan without a file needs a fallback folder for its corrections journal"
            raise ValueError(msg)
        return Path(fallback) / f"{safe.lstrip('.') or 'labels'}{SUFFIX}"
    source = Path(scan_path)
    base = Path(folder) if folder is not None else (source if source.is_dir() else source.parent)
    blocked = [Path(p).resolve() for p in protected]
    if fallback is not None and (not os.access(base, os.W_OK) or base.resolve() in blocked):
        base = Path(fallback)
    return base / f"{strip_image_suffix(source.name)}{safe}{SUFFIX}"


def _pack(array: npt.NDArray[Any]) -> str:
    return base64.b64encode(zlib.compress(np.ascontiguousarray(array, np.int64).tobytes())
                            ).decode("ascii")


def _unpack(text: str) -> npt.NDArray[np.int64]:
    return np.frombuffer(zlib.decompress(base64.b64decode(text)), dtype=np.int64)


@dataclass
class CorrectionState:
    """The replayed journal: corrected ``labels``, ``edited`` voxels, ``reviewed`` voxels
    (whole slices marked reviewed) and whether the whole volume was marked reviewed."""

    labels: npt.NDArray[Any]
    edited: npt.NDArray[np.bool_]
    reviewed: npt.NDArray[np.bool_]
    volume_reviewed: bool

    @property
    def labeled(self) -> npt.NDArray[np.bool_]:
        """Voxels that count as labeled for training."""
        if self.volume_reviewed:
            return np.ones(self.labels.shape, dtype=bool)
        return self.edited | self.reviewed


class CorrectionJournal:
    """Append corrections of one label volume to ``path`` (created with a header if new)."""

    def __init__(self, path: str | Path, shape: tuple[int, ...], *, scan: str = "") -> None:
        self.path = Path(path)
        self.shape = tuple(int(s) for s in shape)
        if self.path.exists():
            self._repair_torn_tail()
        if self.path.exists() and self.path.stat().st_size > 0:
            header = self._records()[0]
            if tuple(header.get("shape", ())) != self.shape:
                msg = (f"the corrections journal {self.path} is for a grid of shape "
                       f"{tuple(header.get('shape', ()))}, not {self.shape}; move it away or "
                       "open the scan it belongs to")
                raise JournalError(msg)
        else:
            self._append({"kind": "header", "version": VERSION, "shape": list(self.shape),
                          "scan": scan})

    # ------------------------------------------------------------------ writing
    def _repair_torn_tail(self) -> None:
        """End the file with a whole line before appending to it again.

        A crash in the middle of an append leaves a last line without its newline; the next
        session's records would be glued onto it and the journal would read as damaged at
        the following start.  A torn line that still parses lost only its newline and is
        kept; anything else was never completely written and is cut off.
        """
        data = self.path.read_bytes()
        if not data or data.endswith(b"\n"):
            return
        start = data.rfind(b"\n") + 1
        try:
            json.loads(data[start:])
            whole = True
        except (json.JSONDecodeError, UnicodeDecodeError):
            whole = False
        with self.path.open("r+b") as handle:
            if whole:
                handle.seek(0, os.SEEK_END)
                handle.write(b"\n")
            else:
                handle.truncate(start)
            handle.flush()
            os.fsync(handle.fileno())

    def _append(self, record: dict[str, Any]) -> None:
        line = json.dumps(record, separators=(",", ":")) + "\n"
        with self.path.open("a", encoding="utf-8") as handle:
            handle.write(line)
            handle.flush()
            os.fsync(handle.fileno())

    def record_edit(self, index: npt.ArrayLike, value: npt.ArrayLike) -> None:
        """Voxels set to new values: ``index`` is ``(N, D)`` voxel indices or ``(N,)`` flat
        indices; ``value`` one value per voxel (or one for all)."""
        idx = np.asarray(index)
        flat = (np.ravel_multi_index(tuple(idx.T), self.shape) if idx.ndim == 2
                else idx.astype(np.int64).ravel())
        values = np.broadcast_to(np.asarray(value, dtype=np.int64), flat.shape)
        if flat.size == 0:
            return
        self._append({"kind": "edit", "index": _pack(flat), "value": _pack(values)})

    def record_reviewed(self, axis: int, slice_index: int, reviewed: bool = True) -> None:
        """Mark (or unmark) a whole slice as reviewed: correct as shown."""
        self._append({"kind": "reviewed", "axis": int(axis), "slice": int(slice_index),
                      "reviewed": bool(reviewed)})

    def record_volume_reviewed(self, reviewed: bool = True) -> None:
        """Mark the whole volume reviewed: every voxel counts as labeled."""
        self._append({"kind": "volume_reviewed", "reviewed": bool(reviewed)})

    # ------------------------------------------------------------------ reading
    def _records(self) -> list[dict[str, Any]]:
        data = self.path.read_bytes()
        lines = data.split(b"\n")
        records = []
        for i, line in enumerate(lines):
            if not line.strip():
                continue
            last = i == len(lines) - 1  # no newline after it: possibly torn
            try:
                records.append(json.loads(line))
            except (json.JSONDecodeError, UnicodeDecodeError):
                if last:
                    break
                msg = (f"the corrections journal {self.path} is damaged at line {i + 1}; "
                       "keep a copy and move it away to start a new one")
                raise JournalError(msg) from None
        if not records or records[0].get("kind") != "header":
            msg = f"{self.path} is not a corrections journal (no header line)"
            raise JournalError(msg)
        return records

    def replay(self, base: npt.NDArray[Any]) -> CorrectionState:
        """Apply the journal to ``base`` (the uncorrected labels, not modified)."""
        if tuple(base.shape) != self.shape:
            msg = f"labels of shape {base.shape} do not match the journal's {self.shape}"
            raise JournalError(msg)
        labels = base.copy()
        edited = np.zeros(self.shape, dtype=bool)
        reviewed = np.zeros(self.shape, dtype=bool)
        volume_reviewed = False
        for number, record in enumerate(self._records()[1:], start=2):
            try:
                kind = record.get("kind")
                if kind == "edit":
                    flat = _unpack(record["index"])
                    labels.flat[flat] = _unpack(record["value"]).astype(labels.dtype)
                    edited.flat[flat] = True
                elif kind == "reviewed":
                    region = [slice(None)] * len(self.shape)
                    region[record["axis"]] = slice(record["slice"], record["slice"] + 1)
                    reviewed[tuple(region)] = record["reviewed"]
                elif kind == "volume_reviewed":
                    volume_reviewed = bool(record["reviewed"])
            except (AttributeError, KeyError, TypeError, ValueError, IndexError,
                    zlib.error) as exc:  # valid JSON that is not a record of ours
                msg = (f"the corrections journal {self.path} is damaged at record {number} "
                       f"({type(exc).__name__}); keep a copy and move it away to start a new "
                       "one")
                raise JournalError(msg) from None
        return CorrectionState(labels=labels, edited=edited, reviewed=reviewed,
                               volume_reviewed=volume_reviewed)
