"""The JSON sidecar of a label file: ``<file name>.provenance.json`` next to it.

It holds what the label file's own format cannot: the class names and coded terms of every
segment (NIfTI has no place for them), the provenance record of the mask
(:mod:`napari_medseg.provenance`), a hash of the label values (so that ``info`` can tell
whether the file was changed after the sidecar was written) and the grid the labels lie on
(so that a DICOM-SEG, which stores only its non-empty frames, reopens on its whole series).

The name includes the label file's full name (``seg.nii.gz.provenance.json``), so that
``seg.nii.gz`` and ``seg.nrrd`` in one folder never share or replace each other's sidecar.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from napari_medseg.provenance import ProvenanceError, ProvenanceRecord, content_hash
from napari_medseg.scan import Geometry, LabelMap
from napari_medseg.terminology import SegmentTerm

SIDECAR_SUFFIX = ".provenance.json"
SIDECAR_FORMAT = "napari-medseg label sidecar"
SIDECAR_VERSION = 1
#: Sidecars larger than this are refused unread (a real one is a few KB).
MAX_SIDECAR_BYTES = 16 * 2**20


def sidecar_path(labels_path: Path | str) -> Path:
    """``seg.nii.gz`` -> ``seg.nii.gz.provenance.json`` (same folder)."""
    path = Path(labels_path)
    return path.with_name(path.name + SIDECAR_SUFFIX)


@dataclass(frozen=True)
class LabelSidecar:
    """What a sidecar holds (see the module docstring)."""

    labels_file: str
    labels_hash: str
    class_names: dict[int, str]
    terms: dict[int, SegmentTerm] = field(default_factory=dict)
    provenance: ProvenanceRecord | None = None
    grid_shape: tuple[int, ...] | None = None
    grid_geometry: Geometry | None = None
    extra: dict[str, Any] = field(default_factory=dict)

    def matches(self, labels: LabelMap) -> bool:
        """True when ``labels`` holds the values this sidecar was written for."""
        return content_hash(labels.array) == self.labels_hash

    def to_json(self) -> str:
        segments = [{"value": value, "name": name,
                     **({"term": self.terms[value].to_dict()} if value in self.terms else {})}
                    for value, name in sorted(self.class_names.items())]
        data: dict[str, Any] = {
            "format": SIDECAR_FORMAT,
            "format_version": SIDECAR_VERSION,
            "labels_file": self.labels_file,
            "labels_hash": self.labels_hash,
            "segments": segments,
            "grid": None if self.grid_shape is None or self.grid_geometry is None else {
                "shape": list(self.grid_shape), "geometry": self.grid_geometry.to_dict()},
            "provenance": None if self.provenance is None else self.provenance.to_dict(),
            **({"extra": self.extra} if self.extra else {}),
        }
        return json.dumps(data, indent=1)

    @classmethod
    def from_json(cls, text: str) -> LabelSidecar:
        """Parse a sidecar; :class:`~napari_medseg.provenance.ProvenanceError` says why not."""
        try:
            data = json.loads(text)
        except (ValueError, RecursionError) as error:
            msg = f"the sidecar is not valid JSON ({str(error)[:120]})"
            raise ProvenanceError(msg) from None
        if not isinstance(data, dict) or data.get("format") != SIDECAR_FORMAT:
            msg = "the sidecar is not a napari-medseg label sidecar (no 'format' naming it)"
            raise ProvenanceError(msg)
        if int(data.get("format_version", 0)) > SIDECAR_VERSION:
            msg = (f"the sidecar's format {data['format_version']} is newer than this "
                   "napari-medseg reads; update napari-medseg")
            raise ProvenanceError(msg)
        try:
            names = {int(s["value"]): str(s["name"]) for s in data["segments"]}
            terms = {int(s["value"]): SegmentTerm.from_dict(s["term"])
                     for s in data["segments"] if s.get("term")}
            grid = data.get("grid")
            record = data.get("provenance")
            return cls(
                labels_file=str(data["labels_file"]), labels_hash=str(data["labels_hash"]),
                class_names=names, terms=terms,
                provenance=None if record is None else ProvenanceRecord.from_dict(record),
                grid_shape=None if not grid else tuple(int(s) for s in grid["shape"]),
                grid_geometry=None if not grid else Geometry.from_dict(grid["geometry"]),
                extra=dict(data.get("extra") or {}),
            )
        except (KeyError, TypeError, ValueError, AttributeError) as error:
            msg = f"the sidecar is malformed ({error!r})"
            raise ProvenanceError(msg) from None


def read_sidecar(labels_path: Path | str) -> LabelSidecar | None:
    """The sidecar of a label file (``None`` when there is none).

    A sidecar renamed along with its label file still counts (``labels_file`` then names the
    old name); :meth:`LabelSidecar.matches` tells whether the values are the ones it
    describes.  Raises :class:`~napari_medseg.provenance.ProvenanceError` for a damaged sidecar.
    """
    labels_path = Path(labels_path)
    path = sidecar_path(labels_path)
    if not path.is_file():
        return None
    if path.stat().st_size > MAX_SIDECAR_BYTES:
        msg = f"{path.name} is {path.stat().st_size:,} bytes, too large for a sidecar"
        raise ProvenanceError(msg)
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as error:
        msg = f"{path.name} could not be read ({error})"
        raise ProvenanceError(msg) from None
    return LabelSidecar.from_json(text)
