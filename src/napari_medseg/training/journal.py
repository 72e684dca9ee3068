"""An append-only, crash-safe journal of label corrections.

Every edit a person makes (which voxels changed, to which value) and every "slice reviewed"
mark is appended as one JSON line and ``fsync``'d, so a crash loses nothing already recorded.
On reopening, the journal is replayed onto the original prediction to restore the corrected
labels, the edited voxels and the reviewed slices.  A torn last line (a crash mid-append) is
ignored; damage anywhere else is an error.

Journals are keyed by the scan's **identity** (:class:`ScanIdentity`: the content hash of its
voxels and grid, and the DICOM Study/Series UIDs and a digest of the SOP Instance UIDs where it
was read from a DICOM series) and by the label layer's name; they all live in one folder,
:func:`napari_medseg.paths.journals_dir` (the configured data folder's ``corrections/``), as
``<scan name>.<identity digest>.<labels name>.corrections.jsonl``.  A journal whose stored
identity differs from the scan it is opened for is refused, whatever its file name and grid
shape: one patient's corrections never replay onto another's labels.

File layout::

    {"kind": "header", "version": 2, "shape": [Z, Y, X], "scan": "ct.nii.gz",
     "identity": {"content_hash": "sha256:...", "study_instance_uid": "...", ...},
     "labels": "prediction", "created": "2026-12-07T14:00:00+00:00"}
    {"kind": "edit", "index": "<base64 zlib int64 flat indices>", "value": "<... values>"}
    {"kind": "reviewed", "axis": 0, "slice": 12, "reviewed": true}
    {"kind": "volume_reviewed", "reviewed": true}

What a crash can lose: nothing that was recorded.  A brush stroke is recorded when napari
reports it (when the mouse button is released); a stroke still held down when the process dies
is lost.  Values changed by undo/redo are recorded by the tracker's periodic ``sync`` (every
3 s in the Correct tab), so an undo in the last 3 s before a crash can be lost.
"""

from __future__ import annotations

import base64
import hashlib
import json
import os
import zlib
from collections.abc import Callable, Iterator, Mapping
from dataclasses import asdict, dataclass, field
from datetime import datetime, timezone
from enum import Enum
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt

from napari_medseg.errors import MedsegError
from napari_medseg.paths import journals_dir
from napari_medseg.scan import Scan, strip_image_suffix

VERSION = 2
SUFFIX = ".corrections.jsonl"


class JournalError(MedsegError):
    """A corrections journal is damaged or belongs to another grid."""


@dataclass(frozen=True, kw_only=True)
class ScanIdentity:
    """Which scan a journal belongs to: the voxels and grid (``content_hash``), and for a scan
    read from DICOM its Study and Series Instance UIDs and a digest of its SOP Instance UIDs.

    Two identities match when every field that both have agrees and the content hashes are
    equal: a re-export of the same DICOM series to NIfTI keeps its content hash, a
    different patient's ``ct.nii.gz`` of the same shape does not."""

    content_hash: str
    study_instance_uid: str = ""
    series_instance_uid: str = ""
    sop_instances: str = ""  # sha256 of the slices' SOP Instance UIDs in order

    @classmethod
    def of_scan(cls, scan: Scan) -> ScanIdentity:
        """The identity of ``scan`` (hashes its voxels once: ~0.3 s per 100 MB)."""
        from napari_medseg.io.dicom_reference import dicom_reference
        from napari_medseg.provenance import content_hash

        reference = dicom_reference(scan.metadata)
        if reference is None:
            return cls(content_hash=content_hash(scan.array, geometry=scan.geometry))
        sops = "\n".join(s.sop_instance_uid for s in reference.slices)
        return cls(content_hash=content_hash(scan.array, geometry=scan.geometry),
                   study_instance_uid=reference.study_instance_uid,
                   series_instance_uid=reference.series_instance_uid,
                   sop_instances=hashlib.sha256(sops.encode()).hexdigest())

    @classmethod
    def of_labels(cls, labels: npt.NDArray[Any]) -> ScanIdentity:
        """For labels tracked without a scan: the labels as they were when tracking began."""
        from napari_medseg.provenance import content_hash

        return cls(content_hash="labels:" + content_hash(np.asarray(labels)))

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> ScanIdentity:
        return cls(content_hash=str(data.get("content_hash", "")),
                   study_instance_uid=str(data.get("study_instance_uid", "")),
                   series_instance_uid=str(data.get("series_instance_uid", "")),
                   sop_instances=str(data.get("sop_instances", "")))

    def to_dict(self) -> dict[str, str]:
        return asdict(self)

    def matches(self, other: ScanIdentity) -> bool:
        if not self.content_hash or self.content_hash != other.content_hash:
            return False
        pairs = ((self.study_instance_uid, other.study_instance_uid),
                 (self.series_instance_uid, other.series_instance_uid),
                 (self.sop_instances, other.sop_instances))
        return all(a == b for a, b in pairs if a and b)

    @property
    def digest(self) -> str:
        """12 hex digits naming the journal file (from every field)."""
        text = json.dumps(self.to_dict(), sort_keys=True)
        return hashlib.sha256(text.encode()).hexdigest()[:12]


def _safe(name: str) -> str:
    return "".join(c if c.isalnum() or c in "-_" else "_" for c in name) or "labels"


def journal_path_for(identity: ScanIdentity, labels_name: str, *, scan_name: str = "scan",
                     folder: str | Path | None = None) -> Path:
    """Where the corrections of the label layer ``labels_name`` on the scan ``identity`` are
    journaled: the one rule.

    ``<folder or journals_dir()>/<scan name>.<identity digest>.<labels name>.corrections.jsonl``
    (characters other than letters, digits, ``-`` and ``_`` become ``_``).  The scan name is
    for people reading the folder; the digest is what keeps two patients apart."""
    base = Path(folder) if folder is not None else journals_dir()
    stem = _safe(strip_image_suffix(scan_name))
    return base / f"{stem}.{identity.digest}.{_safe(labels_name)}{SUFFIX}"


def _pack(array: npt.NDArray[Any]) -> str:
    return base64.b64encode(zlib.compress(np.ascontiguousarray(array, np.int64).tobytes())
                            ).decode("ascii")


def _unpack(text: str) -> npt.NDArray[np.int64]:
    return np.frombuffer(zlib.decompress(base64.b64decode(text)), dtype=np.int64)


def _now() -> str:
    return datetime.now(tz=timezone.utc).isoformat(timespec="seconds")


@dataclass(frozen=True)
class JournalSummary:
    """What a journal holds: counts a person can decide on, and where it came from."""

    path: Path
    scan: str
    labels: str
    created: str
    modified: str
    edited_voxels: int
    reviewed_slices: int
    volume_reviewed: bool
    identity: ScanIdentity | None = field(default=None, compare=False)

    @property
    def empty(self) -> bool:
        return not (self.edited_voxels or self.reviewed_slices or self.volume_reviewed)

    def describe(self) -> str:
        """``"412 edited voxels and 2 reviewed slices from 2026-12-07 14:03"``."""
        parts = [f"{self.edited_voxels} edited voxel{'s' * (self.edited_voxels != 1)}"]
        if self.volume_reviewed:
            parts.append("the whole volume marked reviewed")
        else:
            parts.append(f"{self.reviewed_slices} reviewed "
                         f"slice{'s' * (self.reviewed_slices != 1)}")
        when = self.modified.replace("T", " ")[:16]
        return f"{' and '.join(parts)} from {when} UTC"


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

    def __init__(self, path: str | Path, shape: tuple[int, ...], *, scan: str = "",
                 identity: ScanIdentity | None = None, labels: str = "") -> None:
        self.path = Path(path)
        self.shape = tuple(int(s) for s in shape)
        if self.path.exists():
            self._repair_torn_tail()
        if self.path.exists() and self.path.stat().st_size > 0:
            header = self._records()[0]
            if identity is not None:
                self._check_identity(header, identity)
            if tuple(header.get("shape", ())) != self.shape:
                msg = (f"the corrections journal {self.path} is for a grid of shape "
                       f"{tuple(header.get('shape', ()))}, not {self.shape}; move it away or "
                       "open the scan it belongs to")
                raise JournalError(msg)
        else:
            header = {"kind": "header", "version": VERSION, "shape": list(self.shape),
                      "scan": scan, "labels": labels, "created": _now()}
            if identity is not None:
                header["identity"] = identity.to_dict()
            self._append(header)

    def _check_identity(self, header: Mapping[str, Any], identity: ScanIdentity) -> None:
        stored = header.get("identity")
        if not isinstance(stored, Mapping):
            msg = (f"the corrections journal {self.path} does not say which scan it belongs to "
                   "(written by an older napari-medseg), so it cannot be matched to this scan "
                   "safely; it was not replayed. Move it away to start a new journal")
            raise JournalError(msg)
        if not ScanIdentity.from_dict(stored).matches(identity):
            msg = (f"the corrections journal {self.path} belongs to another scan "
                   f"({header.get('scan') or 'unnamed'}, content "
                   f"{str(stored.get('content_hash', '?')).removeprefix('sha256:')[:8]}), not "
                   f"this one (content {identity.content_hash.removeprefix('sha256:')[:8]}); "
                   "its corrections were not replayed")
            raise JournalError(msg)

    @property
    def header(self) -> dict[str, Any]:
        return self._records()[0]

    def summary(self) -> JournalSummary:
        """What the journal holds, for a person to decide whether to restore it."""
        return summarize(self.path)

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
        return _read_records(self.path)

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


def _read_records(path: Path) -> list[dict[str, Any]]:
    data = path.read_bytes()
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
            msg = (f"the corrections journal {path} is damaged at line {i + 1}; "
                   "keep a copy and move it away to start a new one")
            raise JournalError(msg) from None
    if not records or records[0].get("kind") != "header":
        msg = f"{path} is not a corrections journal (no header line)"
        raise JournalError(msg)
    return records



def summarize(path: Path) -> JournalSummary:
    """What the journal at ``path`` holds (counts, dates, its scan)."""
    records = _read_records(path)
    header = records[0]
    edited: list[npt.NDArray[np.int64]] = []
    slices: set[tuple[int, int]] = set()
    volume = False
    for record in records[1:]:
        kind = record.get("kind")
        try:
            if kind == "edit":
                edited.append(_unpack(record["index"]))
            elif kind == "reviewed":
                key = (int(record["axis"]), int(record["slice"]))
                if record.get("reviewed", True):
                    slices.add(key)
                else:
                    slices.discard(key)
            elif kind == "volume_reviewed":
                volume = bool(record.get("reviewed", True))
        except (KeyError, TypeError, ValueError, zlib.error):
            continue
    modified = datetime.fromtimestamp(path.stat().st_mtime, tz=timezone.utc)
    identity = header.get("identity")
    return JournalSummary(
        path=path, scan=str(header.get("scan") or ""),
        labels=str(header.get("labels") or ""), created=str(header.get("created") or ""),
        modified=modified.isoformat(timespec="seconds"),
        edited_voxels=int(np.unique(np.concatenate(edited)).size) if edited else 0,
        reviewed_slices=len(slices), volume_reviewed=volume,
        identity=ScanIdentity.from_dict(identity) if isinstance(identity, Mapping)
        else None)



# ---------------------------------------------------------------------- the folder of journals
class RestoreChoice(Enum):
    """What a person chose for an earlier journal of the scan they are correcting."""

    RESTORE = "restore"  # replay it onto the labels and go on recording into it
    DISCARD = "discard"  # delete it; start over
    LATER = "later"  # set it aside (kept, listed by `napari-medseg journals`); start a new one


def kept_journals(path: Path) -> list[Path]:
    """Journals of ``path`` that were set aside for later, newest first."""
    stem = path.name.removesuffix(SUFFIX)
    kept = path.parent.glob(f"{stem}.kept-*{SUFFIX}")
    return sorted(kept, key=lambda p: p.name, reverse=True)


def set_aside(path: Path) -> Path:
    """Keep ``path`` for later under a dated name beside it; returns the new name."""
    stamp = datetime.now(tz=timezone.utc).strftime("%Y%m%dT%H%M%S%f")
    target = path.with_name(f"{path.name.removesuffix(SUFFIX)}.kept-{stamp}{SUFFIX}")
    path.rename(target)
    return target


def open_journal(path: Path, shape: tuple[int, ...], *, identity: ScanIdentity, scan: str,
                 labels: str,
                 decide: Callable[[JournalSummary], RestoreChoice]) -> tuple[
                     CorrectionJournal, RestoreChoice | None]:
    """The journal to record into at ``path``, asking ``decide`` once about earlier ones.

    An earlier journal of the same scan and labels (the live one, else the newest kept for
    later) that holds corrections is summarised and ``decide`` chooses: restore it (the
    returned journal holds it and replays it), discard it (deleted), or keep it for later (set
    aside; a new journal starts).  A journal of another scan at ``path`` raises
    :class:`JournalError` before anything is asked.  Returns the journal and the choice made
    (``None`` when there was nothing to ask about)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    candidate: CorrectionJournal | None = None
    summary: JournalSummary | None = None
    for earlier in [path, *kept_journals(path)]:
        if earlier.exists() and earlier.stat().st_size > 0:
            candidate = CorrectionJournal(earlier, shape, identity=identity)
            summary = candidate.summary()
            if not summary.empty:
                break
            candidate = None
    if candidate is None or summary is None:
        return CorrectionJournal(path, shape, scan=scan, identity=identity, labels=labels), None
    choice = decide(summary)
    if choice is RestoreChoice.RESTORE:
        if candidate.path != path:
            if path.exists():
                set_aside(path)
            candidate.path.rename(path)
        return CorrectionJournal(path, shape, identity=identity), choice
    if choice is RestoreChoice.DISCARD:
        candidate.path.unlink()
    elif candidate.path == path:
        set_aside(path)
    return CorrectionJournal(path, shape, scan=scan, identity=identity, labels=labels), choice


def list_journals(folder: str | Path | None = None) -> Iterator[JournalSummary]:
    """Every journal in ``folder`` (default :func:`journals_dir`), oldest change first;
    damaged ones are skipped."""
    base = Path(folder) if folder is not None else journals_dir()
    if not base.is_dir():
        return
    paths = sorted(base.glob(f"*{SUFFIX}"), key=lambda p: p.stat().st_mtime)
    for path in paths:
        try:
            yield summarize(path)
        except (JournalError, OSError):
            continue
