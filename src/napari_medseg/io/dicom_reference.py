"""What a scan read from a DICOM series remembers of it: enough to reference every slice.

A DICOM Segmentation must name the images it was made on (Study, Series and SOP Instance
UIDs, Frame of Reference) and place each of its frames at a source slice's position.  The
DICOM reader records that, once, as a :class:`DicomSeriesReference` in the scan's metadata
(under :data:`REFERENCE_KEY`, as JSON, so it travels wherever the metadata goes, napari layers
included): slice ``k`` of the array is ``slices[k]``, with its file, SOP Instance UID and
ImagePositionPatient.

Empty UIDs (anonymised exports):

* an empty SOP Class or SOP Instance UID in the dataset is taken from the file's meta
  information (Media Storage SOP Class / Instance UID), which by definition names the same
  object (PS3.10 7.1); :attr:`DicomSeriesReference.uids_from_file_meta` records that it was;
* an empty Study or Series Instance UID cannot be recovered; the DICOM-SEG writer then
  derives a stable one from the series' SOP Instance UIDs (see
  :func:`napari_medseg.io.dicom_seg.derived_uid`) and says so in what it writes.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from napari_medseg.scan import Geometry

#: Scan metadata key under which the DICOM reader stores the reference (JSON text).
REFERENCE_KEY = "dicom_reference"

SEGMENTATION_STORAGE = "1.2.840.10008.5.1.4.1.1.66.4"
LABEL_MAP_SEGMENTATION_STORAGE = "1.2.840.10008.5.1.4.1.1.66.7"
#: SOP classes of objects that are no image slices (segmentations, structure sets,
#: structured reports, presentation states): a series reader skips them.
_NON_IMAGE_PREFIXES = (
    "1.2.840.10008.5.1.4.1.1.66.",  # segmentation, registration, surface, ...
    "1.2.840.10008.5.1.4.1.1.481.3",  # RT structure set
    "1.2.840.10008.5.1.4.1.1.88.",  # structured reports, key object selection
    "1.2.840.10008.5.1.4.1.1.11.",  # presentation states
)


def is_image_sop_class(uid: str) -> bool:
    """False for SOP classes that hold no image slice (SEG, RTSTRUCT, SR, PR)."""
    return not any(uid.startswith(p) for p in _NON_IMAGE_PREFIXES)


@dataclass(frozen=True)
class DicomSlice:
    """One source slice: file name (in the series folder), SOP Instance UID and
    ImagePositionPatient (LPS mm, ``(x, y, z)`` as DICOM lists it; ``None`` if absent)."""

    file: str
    sop_instance_uid: str
    position: tuple[float, float, float] | None


@dataclass(frozen=True)
class DicomSeriesReference:
    """The series a scan was read from; ``slices[k]`` is array slice ``k``.

    ``orientation`` is ImageOrientationPatient (row then column direction cosines, LPS);
    ``pixel_spacing`` is (row spacing, column spacing) in mm; ``slice_step`` the distance
    between slice centres (mm) derived from the positions; ``slice_thickness`` is the tag's
    value (mm, ``None`` if absent); ``rows`` and ``columns`` the matrix size.  Empty strings
    stand for empty UIDs.
    """

    folder: Path
    slices: tuple[DicomSlice, ...]
    sop_class_uid: str
    study_instance_uid: str
    series_instance_uid: str
    frame_of_reference_uid: str
    orientation: tuple[float, ...] | None
    pixel_spacing: tuple[float, float] | None
    slice_step: float | None
    slice_thickness: float | None = None
    rows: int = 0
    columns: int = 0
    modality: str = ""
    uids_from_file_meta: bool = False
    description: str = ""
    extra: dict[str, str] = field(default_factory=dict)

    @property
    def n_slices(self) -> int:
        return len(self.slices)

    def grid(self) -> tuple[Geometry, tuple[int, int, int]]:
        """The voxel grid of the series, ``(geometry, (Z, Y, X) shape)``, from the recorded
        positions, orientation and pixel spacing (as :func:`~napari_medseg.io.read_scan`
        places the scan).  Raises ``ValueError`` when :meth:`missing` is not empty."""
        problems = self.missing()
        if problems:
            raise ValueError("; ".join(problems))
        first = self.slices[0].position
        if self.orientation is None or self.pixel_spacing is None or first is None:
            msg = "the reference lacks positions, orientation or pixel spacing"
            raise ValueError(msg)
        row, col = np.asarray(self.orientation[:3]), np.asarray(self.orientation[3:])
        row, col = row / np.linalg.norm(row), col / np.linalg.norm(col)
        normal = np.cross(row, col)
        step = self.slice_step or self.slice_thickness or 1.0
        geometry = Geometry.from_itk(
            spacing=(self.pixel_spacing[1], self.pixel_spacing[0], step), origin=first,
            direction=np.stack([row, col, normal], axis=1).ravel())
        return geometry, (self.n_slices, self.rows, self.columns)

    def files(self) -> list[Path]:
        """The slice files in array order."""
        return [self.folder / s.file for s in self.slices]

    def missing(self) -> list[str]:
        """What a DICOM-SEG needs and this series lacks (empty when it can be referenced)."""
        problems = []
        no_position = [s.file for s in self.slices if s.position is None]
        if no_position:
            problems.append(f"{len(no_position)} slice(s) without ImagePositionPatient "
                            f"(e.g. {no_position[0]})")
        if self.orientation is None:
            problems.append("no ImageOrientationPatient")
        if self.pixel_spacing is None:
            problems.append("no PixelSpacing")
        no_uid = [s.file for s in self.slices if not s.sop_instance_uid]
        if no_uid:
            problems.append(f"{len(no_uid)} slice(s) without a SOP Instance UID, neither in the "
                            f"dataset nor in the file meta information (e.g. {no_uid[0]})")
        if not self.sop_class_uid:
            problems.append("no SOP Class UID")
        if not self.frame_of_reference_uid:
            problems.append("no FrameOfReferenceUID")
        if self.rows <= 0 or self.columns <= 0:
            problems.append("no matrix size (Rows, Columns)")
        return problems

    def to_dict(self) -> dict[str, Any]:
        return {
            "folder": str(self.folder),
            "slices": [[s.file, s.sop_instance_uid, list(s.position) if s.position else None]
                       for s in self.slices],
            "sop_class_uid": self.sop_class_uid,
            "study_instance_uid": self.study_instance_uid,
            "series_instance_uid": self.series_instance_uid,
            "frame_of_reference_uid": self.frame_of_reference_uid,
            "orientation": list(self.orientation) if self.orientation else None,
            "pixel_spacing": list(self.pixel_spacing) if self.pixel_spacing else None,
            "slice_step": self.slice_step,
            "slice_thickness": self.slice_thickness,
            "rows": self.rows,
            "columns": self.columns,
            "modality": self.modality,
            "uids_from_file_meta": self.uids_from_file_meta,
            "description": self.description,
            "extra": dict(self.extra),
        }

    def to_json(self) -> str:
        return json.dumps(self.to_dict())

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> DicomSeriesReference:
        def floats(value: Any) -> tuple[float, ...] | None:
            return None if value is None else tuple(float(v) for v in value)

        slices = []
        for file, uid, position in data["slices"]:
            pos = floats(position)
            slices.append(DicomSlice(file=str(file), sop_instance_uid=str(uid),
                                     position=None if pos is None else (pos[0], pos[1], pos[2])))
        spacing = floats(data.get("pixel_spacing"))
        return cls(
            folder=Path(data["folder"]),
            slices=tuple(slices),
            sop_class_uid=str(data.get("sop_class_uid", "")),
            study_instance_uid=str(data.get("study_instance_uid", "")),
            series_instance_uid=str(data.get("series_instance_uid", "")),
            frame_of_reference_uid=str(data.get("frame_of_reference_uid", "")),
            orientation=floats(data.get("orientation")),
            pixel_spacing=None if spacing is None else (spacing[0], spacing[1]),
            slice_step=None if data.get("slice_step") is None else float(data["slice_step"]),
            slice_thickness=(None if data.get("slice_thickness") is None
                             else float(data["slice_thickness"])),
            rows=int(data.get("rows", 0)),
            columns=int(data.get("columns", 0)),
            modality=str(data.get("modality", "")),
            uids_from_file_meta=bool(data.get("uids_from_file_meta", False)),
            description=str(data.get("description", "")),
            extra={str(k): str(v) for k, v in (data.get("extra") or {}).items()},
        )

    @classmethod
    def from_json(cls, text: str) -> DicomSeriesReference:
        return cls.from_dict(json.loads(text))


def dicom_reference(metadata: Mapping[str, Any]) -> DicomSeriesReference | None:
    """The reference a DICOM-read scan carries in its metadata (``None`` for other scans or
    metadata that does not hold a readable one)."""
    text = metadata.get(REFERENCE_KEY)
    if not text:
        return None
    try:
        return DicomSeriesReference.from_json(str(text))
    except (ValueError, KeyError, TypeError):
        return None
