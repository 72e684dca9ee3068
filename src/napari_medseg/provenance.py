"""How a mask came to be: one typed record per label file, kept beside it as JSON.

A :class:`ProvenanceRecord` says which scan the labels were made on (a content hash of its
voxels and grid, and its DICOM UIDs when it came from a series), which model(s) (checkpoint
file hash, the training record in the checkpoint's spec, and the fine-tune parent chain),
with which options, which slices a person edited or reviewed afterwards, the software
versions and the time.  Every label file the CLI and the napari writer produce gets it as a
sidecar ``<file name>.provenance.json`` (see :mod:`napari_medseg.io.sidecar`); a DICOM-SEG
also carries a summary in its own header.  ``napari-medseg info LABELS`` shows it.

Building a record for a prediction (the scan and model parts are read by
:mod:`napari_medseg.inference.records`, which knows DICOM references and the model catalog)::

    record = prediction_record(scans, ["brain-tissue-t1"], options, made_by="my script")
    record = with_edits(record, edited=tracker.edited, reviewed=tracker.reviewed)

Records are immutable; :func:`with_edits` returns a new one.  This module sits at the bottom
of the house: it imports only the scan types and errors.
"""

from __future__ import annotations

import dataclasses
import datetime
import hashlib
import json
import platform
from collections.abc import Mapping
from dataclasses import dataclass, field
from importlib import metadata
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt

from napari_medseg import __version__
from napari_medseg.errors import MedsegError
from napari_medseg.scan import LabelMap

FORMAT = "napari-medseg provenance"
FORMAT_VERSION = 1
#: Packages whose versions a record lists when installed (read from their metadata: nothing
#: is imported for it).
_PACKAGES = ("numpy", "SimpleITK", "nibabel", "scipy", "torch", "monai", "pydicom", "highdicom",
             "napari")


class ProvenanceError(MedsegError):
    """A provenance record could not be read (the sidecar is damaged or not ours)."""


# ---------------------------------------------------------------------------- hashing
def content_hash(array: npt.NDArray[Any], *, geometry: Any = None) -> str:
    """``sha256:<hex>`` of an array's shape and values (and of a geometry, if given).

    Integer arrays are hashed in the smallest integer type that holds their range (so a
    label map hashes the same whatever type a format stored it in: uint8 in NRRD, uint16
    elsewhere); float arrays in their own type.  Slice by slice, without a full copy.
    """
    digest = hashlib.sha256()
    if np.issubdtype(array.dtype, np.integer) or array.dtype == np.bool_:
        low = int(array.min()) if array.size else 0
        high = int(array.max()) if array.size else 0
        target = np.dtype(_smallest_int(low, high)).newbyteorder("<")
    else:
        target = array.dtype.newbyteorder("<")
    digest.update(f"{target.str}{tuple(array.shape)}".encode())
    if geometry is not None:
        digest.update(json.dumps(_rounded(geometry.to_dict())).encode())
    slabs = array if array.ndim > 1 else array[None]
    for slab in slabs:
        digest.update(np.ascontiguousarray(slab, dtype=target).tobytes())
    return f"sha256:{digest.hexdigest()}"


def _smallest_int(low: int, high: int) -> type[np.integer]:
    for kind in (np.uint8, np.int8, np.uint16, np.int16, np.uint32, np.int32, np.uint64):
        info = np.iinfo(kind)
        if info.min <= low and high <= info.max:
            return kind
    return np.int64


def _rounded(value: Any) -> Any:
    """Floats rounded to 1e-6 (mm), so that rounding noise does not change a hash."""
    if isinstance(value, float):
        return round(value, 6) + 0.0
    if isinstance(value, list | tuple):
        return [_rounded(v) for v in value]
    if isinstance(value, dict):
        return {k: _rounded(v) for k, v in value.items()}
    return value


def file_hash(path: Path) -> str:
    """The one identity of a file: ``sha256:<hex>`` of its bytes (whatever its name).  A
    folder (a DICOM series) is ``sha256-folder:<hex>`` of its files' relative paths and
    ``sha256:`` digests in sorted order, so it is never mistaken for a file's."""
    path = Path(path)
    if path.is_dir():
        folder = hashlib.sha256()
        for f in sorted(p for p in path.rglob("*") if p.is_file()):
            folder.update(f"{f.relative_to(path).as_posix()}\0{file_hash(f)}\n".encode())
        return f"sha256-folder:{folder.hexdigest()}"
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        for chunk in iter(lambda: handle.read(1 << 20), b""):
            digest.update(chunk)
    return f"sha256:{digest.hexdigest()}"


# ---------------------------------------------------------------------------- records
@dataclass(frozen=True, kw_only=True)
class ScanRecord:
    """The scan labels were made on: name, file or folder, voxel content hash, grid."""

    name: str
    source: str | None
    content_hash: str
    shape: tuple[int, ...]
    spacing_mm: tuple[float, ...]
    modality: str
    dicom: dict[str, Any] | None = None


@dataclass(frozen=True, kw_only=True)
class ModelRecord:
    """One checkpoint: as named, its file and file hash, architecture, classes, its
    training record (the spec's provenance) and its fine-tune parents, nearest first."""

    name: str
    file: str | None
    file_hash: str | None
    architecture: str
    class_names: dict[int, str] = field(default_factory=dict)
    training: dict[str, Any] = field(default_factory=dict)
    lineage: tuple[dict[str, Any], ...] = ()


@dataclass(frozen=True, kw_only=True)
class EditRecord:
    """What a person did to the labels: slices (along array ``axis``) with edited voxels,
    slices marked reviewed, a whole-volume review; ``labels_hash``: the labels when these
    edits were recorded; ``untracked_changes``: the labels differ from what the record knew
    and nothing recorded how."""

    axis: int = 0
    edited_slices: tuple[int, ...] = ()
    reviewed_slices: tuple[int, ...] = ()
    whole_volume_reviewed: bool = False
    labels_hash: str | None = None
    untracked_changes: bool = False

    @property
    def touched(self) -> bool:
        return bool(self.edited_slices or self.reviewed_slices or self.whole_volume_reviewed
                    or self.untracked_changes)


@dataclass(frozen=True, kw_only=True)
class ProvenanceRecord:
    """How one mask came to be (see the module docstring).

    ``result_hash`` is the :func:`content_hash` of the labels as made (before any edit), so
    a later change that nothing recorded can be told (:func:`note_untracked_changes`).
    """

    made_by: str
    created: str
    result_hash: str | None = None
    scan: ScanRecord | None = None
    models: tuple[ModelRecord, ...] = ()
    options: dict[str, Any] = field(default_factory=dict)
    edits: EditRecord | None = None
    software: dict[str, str] = field(default_factory=dict)
    derived_from: dict[str, Any] | None = None
    notes: tuple[str, ...] = ()

    # ------------------------------------------------------------------ (de)serialising
    def to_dict(self) -> dict[str, Any]:
        data = jsonable(dataclasses.asdict(self))
        return {"format": FORMAT, "format_version": FORMAT_VERSION, **data}

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), indent=1, sort_keys=False)

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> ProvenanceRecord:
        """Parse a record; :class:`ProvenanceError` says what is wrong."""
        if not isinstance(data, Mapping) or data.get("format") != FORMAT:
            msg = "not a napari-medseg provenance record (no 'format' field naming it)"
            raise ProvenanceError(msg)
        if int(data.get("format_version", 0)) > FORMAT_VERSION:
            msg = (f"provenance format {data['format_version']} is newer than this "
                   f"napari-medseg reads ({FORMAT_VERSION}); update napari-medseg")
            raise ProvenanceError(msg)
        try:
            scan = data.get("scan")
            edits = data.get("edits")
            return cls(
                made_by=str(data["made_by"]),
                created=str(data["created"]),
                result_hash=data.get("result_hash"),
                scan=None if scan is None else ScanRecord(
                    name=str(scan["name"]), source=scan.get("source"),
                    content_hash=str(scan["content_hash"]),
                    shape=tuple(int(s) for s in scan["shape"]),
                    spacing_mm=tuple(float(s) for s in scan["spacing_mm"]),
                    modality=str(scan.get("modality", "unknown")), dicom=scan.get("dicom")),
                models=tuple(ModelRecord(
                    name=str(m["name"]), file=m.get("file"), file_hash=m.get("file_hash"),
                    architecture=str(m.get("architecture", "")),
                    class_names={int(k): str(v) for k, v in (m.get("class_names") or {}).items()},
                    training=dict(m.get("training") or {}),
                    lineage=tuple(dict(p) for p in m.get("lineage") or ()))
                    for m in data.get("models") or ()),
                options=dict(data.get("options") or {}),
                edits=None if edits is None else EditRecord(
                    axis=int(edits.get("axis", 0)),
                    edited_slices=tuple(int(i) for i in edits.get("edited_slices") or ()),
                    reviewed_slices=tuple(int(i) for i in edits.get("reviewed_slices") or ()),
                    whole_volume_reviewed=bool(edits.get("whole_volume_reviewed", False)),
                    labels_hash=edits.get("labels_hash"),
                    untracked_changes=bool(edits.get("untracked_changes", False))),
                software={str(k): str(v) for k, v in (data.get("software") or {}).items()},
                derived_from=data.get("derived_from"),
                notes=tuple(str(n) for n in data.get("notes") or ()),
            )
        except (KeyError, TypeError, ValueError, AttributeError) as error:
            msg = f"the provenance record is malformed ({error!r})"
            raise ProvenanceError(msg) from None

    @classmethod
    def from_json(cls, text: str) -> ProvenanceRecord:
        try:
            data = json.loads(text)
        except (ValueError, RecursionError) as error:
            msg = f"the provenance record is not valid JSON ({str(error)[:120]})"
            raise ProvenanceError(msg) from None
        return cls.from_dict(data)

    # ------------------------------------------------------------------ summaries
    def summary(self, limit: int = 64) -> str:
        """One short line (at most ``limit`` characters): model, scan hash, edits.

        ``"brain-tissue-t1 on scan 1a2b3c4d; 3 slices edited"`` - sized for DICOM's
        ContentDescription (LO, 64 characters).
        """
        who = "+".join(m.name.rsplit("/", 1)[-1].removesuffix(".safetensors")
                       for m in self.models) or self.made_by
        parts = [who]
        if self.scan is not None:
            parts[0] += f" on scan {self.scan.content_hash.removeprefix('sha256:')[:8]}"
        if self.edits is not None and self.edits.touched:
            parts.append(_edit_phrase(self.edits))
        text = "; ".join(parts)
        return text if len(text) <= limit else text[: limit - 3] + "..."

    def describe(self) -> list[str]:
        """Readable lines for ``napari-medseg info`` and a DICOM-SEG's image comments."""
        lines = [f"made by     {self.made_by}, {self.created}"]
        if self.scan is not None:
            scan = self.scan
            where = f" ({scan.source})" if scan.source else ""
            lines.append(f"scan        {scan.name}{where}, {scan.modality}, "
                         f"{'x'.join(str(s) for s in scan.shape)}, {scan.content_hash}")
            if scan.dicom:
                lines.append(f"  DICOM     study {scan.dicom.get('study_instance_uid') or '?'}"
                             f", series {scan.dicom.get('series_instance_uid') or '?'}")
        for model in self.models:
            lines.append(f"model       {model.name} ({model.architecture}), "
                         f"{model.file_hash or 'file not hashed'}")
            trained = model.training
            if trained:
                what = ", ".join(f"{k} {trained[k]}" for k in ("mode", "steps", "date",
                                                               "val_dice") if k in trained)
                lines.append(f"  trained   {what}")
            for parent in model.lineage:
                found = parent.get("file_hash") or "not found"
                lines.append(f"  parent    {parent.get('name')} ({found}, "
                             f"{parent.get('mode', '?')} {parent.get('date', '')})")
        if self.options:
            shown = ", ".join(f"{k}={v}" for k, v in self.options.items())
            lines.append(f"options     {shown}")
        if self.edits is not None:
            lines.append(f"edits       {_edit_phrase(self.edits) or 'none'}")
        if self.derived_from:
            lines.append(f"converted   from {self.derived_from.get('file')} "
                         f"({self.derived_from.get('labels_hash', '')})")
        if self.software:
            lines.append("software    " + ", ".join(f"{k} {v}" for k, v in self.software.items()))
        lines.extend(f"note        {n}" for n in self.notes)
        return lines


def _edit_phrase(edits: EditRecord) -> str:
    parts = ["changed after it was made (edits not tracked)"] if edits.untracked_changes else []
    if edits.whole_volume_reviewed:
        parts.append("whole volume reviewed")
    if edits.edited_slices:
        parts.append(f"{len(edits.edited_slices)} slice(s) edited")
    if edits.reviewed_slices and not edits.whole_volume_reviewed:
        parts.append(f"{len(edits.reviewed_slices)} reviewed")
    return ", ".join(parts)


def jsonable(value: Any) -> Any:
    """Plain JSON types: tuples to lists, paths to strings, int keys to strings, numpy
    scalars to Python numbers."""
    if isinstance(value, dict):
        return {str(k): jsonable(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [jsonable(v) for v in value]
    if isinstance(value, Path):
        return str(value)
    if isinstance(value, np.generic):
        return value.item()
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return jsonable(dataclasses.asdict(value))
    if value is None or isinstance(value, bool | int | float | str):
        return value
    return str(value)


# ---------------------------------------------------------------------------- building
def now() -> str:
    """The current UTC time, ISO 8601 to the second."""
    return datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds")


def software_versions() -> dict[str, str]:
    """napari-medseg, Python and the installed versions of the packages it builds on."""
    versions = {"napari-medseg": __version__, "python": platform.python_version()}
    for name in _PACKAGES:
        try:
            versions[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            continue
    return versions


def options_record(options: Any) -> dict[str, Any]:
    """A dataclass of options (``PredictOptions``...) as plain JSON data."""
    if dataclasses.is_dataclass(options) and not isinstance(options, type):
        return dict(jsonable(dataclasses.asdict(options)))
    return dict(jsonable(dict(options or {})))


def note_untracked_changes(record: ProvenanceRecord, labels: LabelMap) -> ProvenanceRecord:
    """``record``, marked as changed when ``labels`` no longer hold the values it last knew
    (as made, or as of its last recorded edits) - someone painted without tracking."""
    known = record.edits.labels_hash if record.edits is not None and (
        record.edits.labels_hash) else record.result_hash
    if known is None or content_hash(labels.array) == known:
        return record
    edits = dataclasses.replace(record.edits or EditRecord(), untracked_changes=True)
    return dataclasses.replace(record, edits=edits)


def with_edits(record: ProvenanceRecord, *, edited: npt.NDArray[np.bool_] | None = None,
               reviewed: npt.NDArray[np.bool_] | None = None, axis: int = 0,
               whole_volume_reviewed: bool = False,
               labels: npt.NDArray[Any] | None = None) -> ProvenanceRecord:
    """``record`` plus what a person did: ``edited`` voxels and ``reviewed`` slices as bool
    masks on the labels' grid, ``(Z, Y, X)``; ``axis`` is the array axis the slices are
    counted along (0 = axial); ``labels``: the label values now (so that later changes that
    nobody records can be told, see :func:`note_untracked_changes`).  Slices already in
    ``record`` are kept (the union), so calling it again with a tracker's growing masks
    records each slice once."""
    before = record.edits or EditRecord(axis=axis)
    if before.axis != axis and before.touched:
        msg = (f"the record counts edited slices along axis {before.axis}, not {axis}; "
               "record edits along one axis")
        raise ValueError(msg)

    def slices(mask: npt.NDArray[np.bool_] | None) -> set[int]:
        if mask is None or not np.any(mask):
            return set()
        others = tuple(a for a in range(mask.ndim) if a != axis)
        return {int(i) for i in np.flatnonzero(np.any(mask, axis=others))}

    edits = dataclasses.replace(
        before, axis=axis,
        edited_slices=tuple(sorted(set(before.edited_slices) | slices(edited))),
        reviewed_slices=tuple(sorted(set(before.reviewed_slices) | slices(reviewed))),
        whole_volume_reviewed=before.whole_volume_reviewed or whole_volume_reviewed,
        labels_hash=content_hash(labels) if labels is not None else before.labels_hash,
        untracked_changes=before.untracked_changes,
    )
    return dataclasses.replace(record, edits=edits)


def conversion_record(source: Path, labels: LabelMap, earlier: ProvenanceRecord | None, *,
                      made_by: str) -> ProvenanceRecord:
    """The record of a label file converted from ``source``: the earlier record (read from
    the source's sidecar) is kept, with ``derived_from`` naming the source."""
    derived = {"file": str(source), "labels_hash": content_hash(labels.array),
               "made_by": earlier.made_by if earlier else None}
    if earlier is None:
        return ProvenanceRecord(made_by=made_by, created=now(), software=software_versions(),
                                derived_from=derived,
                                notes=(f"{source.name} had no provenance record",))
    return dataclasses.replace(earlier, derived_from=derived,
                               notes=(*earlier.notes, f"converted by {made_by} at {now()}"))


def unknown_record(*, made_by: str, note: str) -> ProvenanceRecord:
    """A record that says only who wrote the file and when (the origin is not known)."""
    return ProvenanceRecord(made_by=made_by, created=now(), software=software_versions(),
                            notes=(note,))
