"""DICOM series: find the series in a folder, sort their slices, read them with true geometry.

What we do ourselves and what SimpleITK (GDCM) does:

* GDCM decodes pixel data, compressed transfer syntaxes included (JPEG, JPEG 2000, RLE), and
  applies the rescale slope/intercept (CT in HU).
* We group files into series (SeriesInstanceUID; when it is empty, as in some anonymised
  exports, by series number, description, orientation and matrix size), sort slices along the
  slice normal by ImagePositionPatient, and derive the slice spacing from those positions, not
  from SliceThickness / SpacingBetweenSlices, which are often wrong.  The direction comes from
  ImageOrientationPatient, so oblique series stay oblique.
* Files that hold no image slice (DICOM-SEG, RT structure sets, reports) are skipped, so a
  segmentation saved into the series folder does not join the series.
* A multi-frame file (RT Dose, Enhanced CT/MR) holds a whole volume: it is a series of its
  own, read by :mod:`napari_medseg.io.dicom_multiframe`.
* The scan remembers the series (:class:`~napari_medseg.io.dicom_reference.
  DicomSeriesReference` in its metadata): each slice's file, SOP Instance UID and position,
  which a DICOM-SEG written on the scan references.
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import SimpleITK as sitk

from napari_medseg.errors import (
    AmbiguousDicomSeriesError,
    DicomSeriesError,
    ScanReadError,
    UnsupportedScanError,
    setting,
)
from napari_medseg.io.content import checked_geometry
from napari_medseg.io.dicom_multiframe import read_multiframe
from napari_medseg.io.dicom_reference import (
    REFERENCE_KEY,
    DicomSeriesReference,
    DicomSlice,
    is_image_sop_class,
)
from napari_medseg.io.dicom_structure import FileMeta, check_dicom_file
from napari_medseg.io.formats import is_dicom_file, suffix_of
from napari_medseg.io.itk import _itk_reason, check_header, geometry_of
from napari_medseg.io.slice_stack import stack_order
from napari_medseg.scan import Geometry, Scan

_TAGS = {
    "series_uid": "0020|000e",
    "position": "0020|0032",
    "orientation": "0020|0037",
    "modality": "0008|0060",
    "series_number": "0020|0011",
    "description": "0008|103e",
    "study_uid": "0020|000d",
    "instance_number": "0020|0013",
    "patient_id": "0010|0020",
    "sop_class": "0008|0016",
    "sop_instance": "0008|0018",
    "frame_of_reference": "0020|0052",
    "pixel_spacing": "0028|0030",
    "slice_thickness": "0018|0050",
}
#: Tags that differ from slice to slice (not copied into the scan's metadata).
_PER_SLICE = ("position", "sop_instance", "instance_number")


@dataclass
class _Slice:
    path: Path
    tags: dict[str, str]
    size: tuple[int, ...]
    position: np.ndarray | None
    orientation: np.ndarray | None
    meta: FileMeta = field(default_factory=FileMeta)
    frames: int = 1  # a multi-frame file holds a whole volume

    @property
    def sop_instance_uid(self) -> str:
        """The dataset's SOP Instance UID, else the file meta information's."""
        return self.tags["sop_instance"] or self.meta.sop_instance_uid

    @property
    def sop_class_uid(self) -> str:
        return self.tags["sop_class"] or self.meta.sop_class_uid


@dataclass
class DicomSeriesInfo:
    """One series found in a folder (what a person picks from)."""

    uid: str
    description: str
    modality: str
    series_number: str
    rows: int
    columns: int
    files: list[Path] = field(repr=False)
    _slices: list[_Slice] = field(default_factory=list, repr=False, compare=False)

    @property
    def n_slices(self) -> int:
        """Slices of the volume: files, or the frames of a multi-frame file."""
        return sum(s.frames for s in self._slices) if self._slices else len(self.files)

    @property
    def multiframe(self) -> bool:
        """True for one multi-frame file (RT Dose, Enhanced CT/MR...) holding the volume."""
        return len(self._slices) == 1 and self._slices[0].frames > 1

    def label(self) -> str:
        """One line for a chooser: description, modality, slices, matrix."""
        desc = self.description or "(no description)"
        kind = "frame(s) in one multi-frame file" if self.multiframe else "slice(s)"
        return (
            f"{desc} - {self.modality or '?'}, {self.n_slices} {kind}, "
            f"{self.rows}x{self.columns}, series {self.series_number or '?'}"
        )


def _floats(text: str | None, n: int) -> np.ndarray | None:
    if not text:
        return None
    try:
        values = np.array([float(v) for v in text.strip().split("\\")], dtype=np.float64)
    except ValueError:
        return None
    return values if values.size == n and np.all(np.isfinite(values)) else None


class _Damaged(str):
    """Why a file failed the structure check (it is damaged, not merely another object)."""


class _NotAnImage(str):
    """A DICOM object that holds no image slice (a segmentation, a report...)."""


def _read_slice_header(path: Path) -> _Slice | str:
    """The header of one file, or why it cannot be read (GDCM is only given files whose
    element structure fits in them: see :mod:`napari_medseg.io.dicom_structure`)."""
    try:
        meta = check_dicom_file(path).meta
    except ScanReadError as exc:
        return _Damaged(exc)
    if meta.sop_class_uid and not is_image_sop_class(meta.sop_class_uid):
        return _NotAnImage(f"{path.name} holds no image (SOP class {meta.sop_class_uid})")
    reader = sitk.ImageFileReader()
    reader.SetImageIO("GDCMImageIO")
    reader.SetFileName(str(path))
    try:
        reader.ReadImageInformation()
    except RuntimeError as exc:
        return f"{path.name}: {_itk_reason(exc)}"
    tags = {
        name: reader.GetMetaData(tag).strip() if reader.HasMetaDataKey(tag) else ""
        for name, tag in _TAGS.items()
    }
    if tags["sop_class"] and not is_image_sop_class(tags["sop_class"]):
        return _NotAnImage(f"{path.name} holds no image (SOP class {tags['sop_class']})")
    size = tuple(int(s) for s in reader.GetSize())
    return _Slice(
        path=path,
        tags=tags,
        size=size,
        position=_floats(tags["position"], 3),
        orientation=_floats(tags["orientation"], 6),
        meta=meta,
        frames=size[2] if len(size) > 2 else 1,
    )


def _candidate_files(folder: Path) -> list[Path]:
    files = []
    for p in sorted(folder.iterdir()):
        if not p.is_file() or p.name.startswith("."):
            continue
        if suffix_of(p) in (".dcm", ".dicom", ".ima") or is_dicom_file(p):
            files.append(p)
    return files


def _group_key(s: _Slice) -> tuple[str, ...]:
    if s.frames > 1:  # a multi-frame file is a volume of its own
        return (s.tags["series_uid"], "multi-frame", str(s.path))
    orient = "" if s.orientation is None else ",".join(f"{v:.4f}" for v in s.orientation)
    size = "x".join(str(v) for v in s.size[:2])
    uid = s.tags["series_uid"]
    if uid:
        # one UID can still hold localisers of another orientation or matrix: split those
        return (uid, orient, size)
    return ("", s.tags["series_number"], s.tags["description"], s.tags["modality"], orient, size)


def list_dicom_series(path: Path | str) -> list[DicomSeriesInfo]:
    """Every series in a DICOM folder (or in the folder of one DICOM file), largest first."""
    path = Path(path)
    folder = path if path.is_dir() else path.parent
    files = _candidate_files(folder)
    if not files:
        msg = (
            f"{folder} holds no DICOM file (none with a .dcm suffix or a DICM preamble); "
            "pick the folder that holds the slices"
        )
        raise DicomSeriesError(msg)
    groups: dict[tuple[str, ...], list[_Slice]] = defaultdict(list)
    problems = []
    not_images = []
    for f in files:
        header = _read_slice_header(f)
        if isinstance(header, _NotAnImage):
            not_images.append(header)
        elif isinstance(header, str):
            problems.append(header)
        else:
            groups[_group_key(header)].append(header)
    if not groups and not_images and not problems:
        msg = (f"{folder} holds no DICOM image series, only {len(not_images)} other DICOM "
               f"object(s) ({not_images[0]}); a DICOM-SEG opens with read_label_map (napari: "
               "File > Open) and lies on the series it references")
        raise DicomSeriesError(msg)
    if not groups:
        msg = (f"none of the {len(files)} DICOM file(s) in {folder} could be read "
               f"({problems[0]})")
        raise DicomSeriesError(msg)
    damaged = [p for p in problems if isinstance(p, _Damaged)]
    if damaged:  # a series read without them could silently miss its first or last slices
        msg = (f"{len(damaged)} of the {len(files)} DICOM files in {folder} are damaged "
               f"({damaged[0]}); move them out of the folder or export the series again")
        raise DicomSeriesError(msg)
    series = []
    for key, slices in groups.items():
        first = slices[0]
        uid = key[0] or "|".join(key[1:])
        series.append(
            DicomSeriesInfo(
                uid=uid,
                description=first.tags["description"],
                modality=first.tags["modality"],
                series_number=first.tags["series_number"],
                rows=first.size[1],
                columns=first.size[0],
                files=[s.path for s in slices],
                _slices=slices,
            )
        )
    series.sort(key=lambda s: (-s.n_slices, s.description))
    taken: set[str] = set()
    for s in sorted(series, key=lambda s: s.multiframe):  # UIDs must tell series apart
        if s.uid in taken and s.multiframe:
            s.uid = f"{s.uid}|{s._slices[0].sop_instance_uid or s.files[0].name}"
        taken.add(s.uid)
    return series


def _select(
    series: list[DicomSeriesInfo], path: Path, choice: str | int | None
) -> DicomSeriesInfo:
    if path.is_file():
        for s in series:
            if path in s.files:
                return s
        msg = (f"{path.name} is no slice of an image series (a DICOM-SEG, a structure set or "
               "a report?); read a DICOM-SEG with read_label_map (napari: File > Open), or open "
               f"the folder {path.parent} for its image series")
        raise UnsupportedScanError(msg)
    if choice is None:
        if len(series) == 1:
            return series[0]
        listing = "; ".join(f"[{i}] {s.label()}" for i, s in enumerate(series))
        msg = (
            f"{path} holds {len(series)} DICOM series: {listing}. Choose one with "
            f"{setting('series', '<index or UID>')}"
        )
        raise AmbiguousDicomSeriesError(msg, series)
    if isinstance(choice, int) or (isinstance(choice, str) and choice.isdigit()):
        index = int(choice)
        if 0 <= index < len(series):
            return series[index]
    for s in series:
        if s.uid == choice:
            return s
    msg = f"no series {choice!r} in {path}; there are {len(series)}: indices 0-{len(series) - 1}"
    raise DicomSeriesError(msg)


def _sorted_geometry(slices: list[_Slice], name: str, folder: Path
                     ) -> tuple[list[_Slice], Geometry | None]:
    """Slices sorted along the normal and the geometry derived from their positions (its
    in-plane spacing is 1: GDCM reads that from PixelSpacing)."""
    if any(s.position is None or s.orientation is None for s in slices):
        return sorted(slices, key=lambda s: _instance_number(s.tags["instance_number"])), None
    orient = slices[0].orientation
    assert orient is not None
    positions = np.array([s.position for s in slices], dtype=np.float64)
    order, geometry = stack_order(positions, orient, what=f"DICOM series {name!r} in {folder}",
                                  names=[s.path.name for s in slices])
    return [slices[i] for i in order], geometry


def _reference(folder: Path, slices: list[_Slice], chosen: DicomSeriesInfo,
               slice_geometry: Geometry | None) -> DicomSeriesReference:
    """What a DICOM-SEG needs to reference these slices (in array order)."""
    first = slices[0]
    spacing = _floats(first.tags["pixel_spacing"], 2)
    thickness = _floats(first.tags["slice_thickness"], 1)
    return DicomSeriesReference(
        folder=folder.resolve(),
        slices=tuple(
            DicomSlice(file=s.path.name, sop_instance_uid=s.sop_instance_uid,
                       position=None if s.position is None else (
                           float(s.position[0]), float(s.position[1]), float(s.position[2])))
            for s in slices),
        sop_class_uid=first.sop_class_uid,
        study_instance_uid=first.tags["study_uid"],
        series_instance_uid=first.tags["series_uid"],
        frame_of_reference_uid=first.tags["frame_of_reference"],
        orientation=None if first.orientation is None else tuple(
            float(v) for v in first.orientation),
        pixel_spacing=None if spacing is None else (float(spacing[0]), float(spacing[1])),
        slice_step=None if slice_geometry is None else float(slice_geometry.spacing[0]),
        slice_thickness=None if thickness is None else float(thickness[0]),
        rows=int(first.size[1]),
        columns=int(first.size[0]),
        modality=first.tags["modality"].upper(),
        uids_from_file_meta=any(
            not s.tags["sop_instance"] or not s.tags["sop_class"] for s in slices),
        description=chosen.description,
    )


def _instance_number(text: str) -> float:
    """InstanceNumber for sorting; unreadable values sort last."""
    try:
        return float(text or 0)
    except ValueError:
        return float("inf")


def read_dicom_series(path: Path, *, series: str | int | None = None) -> Scan:
    """Read one series from a DICOM folder (or the series of one DICOM file) as a :class:`Scan`."""
    found = list_dicom_series(path)
    chosen = _select(found, path, series)
    if chosen.multiframe:
        return _read_multiframe_series(chosen, path)
    slices, slice_geometry = _sorted_geometry(chosen._slices, chosen.description or chosen.uid,
                                              path if path.is_dir() else path.parent)
    first = slices[0]
    check_header(path, (first.size[0], first.size[1], len(slices)), 1, 4)
    reader = sitk.ImageSeriesReader()
    reader.SetImageIO("GDCMImageIO")
    reader.SetFileNames([str(s.path) for s in slices])
    warnings_shown = sitk.ProcessObject.GetGlobalWarningDisplay()
    sitk.ProcessObject.SetGlobalWarningDisplay(False)  # we check the slice spacing ourselves
    try:
        image = reader.Execute()
    except RuntimeError as exc:
        msg = (f"the pixel data of DICOM series {chosen.label()!r} in {path} could not be "
               f"decoded: {_itk_reason(exc)}")
        raise ScanReadError(msg) from exc
    finally:
        sitk.ProcessObject.SetGlobalWarningDisplay(warnings_shown)
    if image.GetNumberOfComponentsPerPixel() != 1:
        msg = (f"DICOM series {chosen.label()!r} in {path} holds colour pixels; napari-medseg "
               "reads grey scans")
        raise ScanReadError(msg)
    label = f"DICOM series {chosen.label()!r} in {path}"
    itk_geometry = checked_geometry(label, lambda: geometry_of(image))
    if slice_geometry is not None:
        in_plane = itk_geometry.spacing[1:]
        geometry = Geometry(
            spacing=(slice_geometry.spacing[0], *in_plane),
            origin=slice_geometry.origin,
            direction=slice_geometry.direction,
        )
    else:
        geometry = itk_geometry
    array = sitk.GetArrayFromImage(image)
    metadata = {f"dicom_{k}": v for k, v in first.tags.items() if v and k not in _PER_SLICE}
    metadata["dicom_n_slices"] = str(len(slices))
    folder = path if path.is_dir() else path.parent
    metadata[REFERENCE_KEY] = _reference(folder, slices, chosen, slice_geometry).to_json()
    return Scan(
        array=array,
        geometry=geometry,
        modality=first.tags["modality"].upper() or "unknown",
        metadata=metadata,
        source=path,
    )


def _read_multiframe_series(chosen: DicomSeriesInfo, path: Path) -> Scan:
    """The volume of one multi-frame file (:mod:`napari_medseg.io.dicom_multiframe`)."""
    first = chosen._slices[0]
    volume = read_multiframe(first.path)
    metadata = {f"dicom_{k}": v for k, v in first.tags.items() if v and k not in _PER_SLICE}
    metadata.update({f"dicom_{k}": v for k, v in volume.metadata.items()})
    metadata["dicom_n_slices"] = str(volume.array.shape[0])
    return Scan(
        array=volume.array,
        geometry=volume.geometry,
        modality=first.tags["modality"].upper() or "unknown",
        metadata=metadata,
        source=path,
    )


def read_dicom_reference(path: Path | str, *, series: str | int | None = None
                         ) -> DicomSeriesReference:
    """What :func:`read_dicom_series` records about a series, from its headers alone (no
    pixel is decoded): for writing a DICOM-SEG that references it."""
    path = Path(path)
    if not path.exists():
        msg = f"{path} does not exist; give the folder of the DICOM series (or one of its files)"
        raise DicomSeriesError(msg)
    chosen = _select(list_dicom_series(path), path, series)
    folder = path if path.is_dir() else path.parent
    if chosen.multiframe:
        msg = (f"{chosen.files[0]} is a multi-frame DICOM image ({chosen.n_slices} frames in "
               "one file); napari-medseg writes DICOM-SEG only on series of one slice per "
               "file so far: save the labels as .nii.gz, .nrrd or .mha")
        raise DicomSeriesError(msg)
    slices, slice_geometry = _sorted_geometry(chosen._slices, chosen.description or chosen.uid,
                                              folder)
    return _reference(folder, slices, chosen, slice_geometry)
