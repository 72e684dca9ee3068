"""Reading a DICOM Segmentation back as a label map on its series' grid.

Frames go back onto the series' grid, placed by their ReferencedSOPInstanceUID when the series
is given (and checked against its positions), by their positions on the grid our sidecar
recorded otherwise, or onto the grid the frames themselves span (highdicom's volume geometry)
for a file of another tool without the series.  Label values are the ones napari-medseg wrote
(its SegmentDescription says them), segment numbers for files of other tools.  BINARY,
FRACTIONAL (thresholded at half the maximum) and LABELMAP segmentations are read one frame at a
time (pydicom decodes them).
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt

from napari_medseg.errors import GeometryMismatchError, ScanReadError
from napari_medseg.io.dicom_reference import (
    LABEL_MAP_SEGMENTATION_STORAGE,
    SEGMENTATION_STORAGE,
    DicomSeriesReference,
)
from napari_medseg.io.dicom_seg import (
    MANUFACTURER,
    POSITION_TOLERANCE_MM,
    VALUE_MARK,
    SeriesGrid,
    resolve_reference,
)
from napari_medseg.io.dicom_structure import check_dicom_file, read_file_meta
from napari_medseg.io.formats import is_dicom_file, suffix_of
from napari_medseg.io.limits import MAX_SCAN_BYTES
from napari_medseg.scan import Geometry, LabelMap, Scan
from napari_medseg.terminology import Code, SegmentTerm

#: Tolerance (voxels) of a frame's position on a regular grid: files often round positions
#: to 0.1 mm, so a slice of an oblique series sits up to ~0.1 voxel off the mean grid.
GRID_TOLERANCE_VOXELS = 0.25
#: Relative spread of slice steps still taken as one regular grid (as the series reader).
STEP_SPREAD = 0.1
_DICOM_SUFFIXES = (".dcm", ".dicom", ".ima")


class DicomSegReadError(ScanReadError):
    """A DICOM-SEG file could not be read back as a label map."""


def is_dicom_seg(path: Path | str) -> bool:
    """True for a DICOM file whose SOP class is (label map) Segmentation Storage."""
    path = Path(path)
    if not path.is_file() or not (is_dicom_file(path) or suffix_of(path) in _DICOM_SUFFIXES):
        return False
    meta = read_file_meta(path)  # a damaged SEG is still a SEG: read_dicom_seg says so
    if meta.sop_class_uid:
        return meta.sop_class_uid in (SEGMENTATION_STORAGE, LABEL_MAP_SEGMENTATION_STORAGE)
    return _sop_class_of_raw_dataset(path) in (SEGMENTATION_STORAGE,
                                               LABEL_MAP_SEGMENTATION_STORAGE)


def _sop_class_of_raw_dataset(path: Path) -> str:
    """SOP Class UID of a DICOM dataset without file meta information ('' if unreadable)."""
    import pydicom

    try:
        ds = pydicom.dcmread(path, stop_before_pixels=True, force=True,
                             specific_tags=["SOPClassUID"])
        return str(ds.get("SOPClassUID", ""))
    except Exception:  # pydicom raises many kinds on files that are not DICOM
        return ""


@dataclass
class DicomSegRead:
    """A DICOM-SEG read back: the label map, its terms, where its grid came from, and how
    many voxels two segments claimed (the later segment won)."""

    labels: LabelMap
    terms: dict[int, SegmentTerm]
    grid_from: str  # "reference", "sidecar" or "frames"
    referenced_series_uid: str
    overlapping_voxels: int = 0


def _code_of(item: Any) -> Code:
    return Code(value=str(item.CodeValue), scheme=str(item.CodingSchemeDesignator),
                meaning=str(item.CodeMeaning))


def _segments(ds: Any) -> tuple[dict[int, int], dict[int, str], dict[int, SegmentTerm]]:
    """Segment number -> label value, and names and terms by label value."""
    import highdicom as hd

    ours = str(ds.get("Manufacturer", "")) == MANUFACTURER
    value_of, names, terms = {}, {}, {}
    for item in ds.SegmentSequence:
        number = int(item.SegmentNumber)
        value = number
        text = str(item.get("SegmentDescription", ""))
        if ours and VALUE_MARK in text:
            tail = text.rsplit(VALUE_MARK, 1)[1]
            if tail.isdigit() and int(tail) > 0:
                value = int(tail)
        value_of[number] = value
        names[value] = str(item.get("SegmentLabel", "")) or f"class {value}"
        try:
            type_item = item.SegmentedPropertyTypeCodeSequence[0]
            modifiers = type_item.get("SegmentedPropertyTypeModifierCodeSequence") or []
            colour: tuple[int, int, int] = (128, 174, 128)
            if "RecommendedDisplayCIELabValue" in item:
                lab = [int(v) for v in item.RecommendedDisplayCIELabValue]
                rgb = hd.color.CIELabColor.from_dicom_value(lab).to_rgb()
                colour = (int(rgb[0]), int(rgb[1]), int(rgb[2]))
            terms[value] = SegmentTerm(
                category=_code_of(item.SegmentedPropertyCategoryCodeSequence[0]),
                type=_code_of(type_item),
                modifier=_code_of(modifiers[0]) if modifiers else None, colour=colour)
        except (AttributeError, IndexError, KeyError, ValueError, TypeError):
            continue  # a segment without readable codes keeps its name
    if len(set(value_of.values())) != len(value_of):
        value_of = {n: n for n in value_of}  # clashing label values: fall back to numbers
        names = {n: str(item.get("SegmentLabel", "")) or f"class {n}"
                 for n, item in zip(value_of, ds.SegmentSequence, strict=True)}
    return value_of, names, terms


@dataclass(frozen=True)
class _Frame:
    number: int  # segment number
    source_uid: str
    position: npt.NDArray[np.float64] | None


def _frames(ds: Any) -> list[_Frame]:
    shared = ds.get("SharedFunctionalGroupsSequence", [None])[0]
    labelmap = str(ds.get("SegmentationType", "")) == "LABELMAP"
    frames = []
    groups = ds.get("PerFrameFunctionalGroupsSequence") or []
    if len(groups) != int(ds.get("NumberOfFrames", 1)):
        msg = (f"the file declares {ds.get('NumberOfFrames', 1)} frames but describes "
               f"{len(groups)}; it is damaged")
        raise DicomSegReadError(msg)
    for item in groups:
        number = 0
        ident = item.get("SegmentIdentificationSequence") or (
            shared.get("SegmentIdentificationSequence") if shared is not None else None)
        if ident and not labelmap:
            number = int(ident[0].ReferencedSegmentNumber)
        uid = ""
        for derivation in item.get("DerivationImageSequence") or []:
            for source in derivation.get("SourceImageSequence") or []:
                uid = uid or str(source.get("ReferencedSOPInstanceUID", ""))
        plane = item.get("PlanePositionSequence") or (
            shared.get("PlanePositionSequence") if shared is not None else None)
        position = (np.asarray([float(v) for v in plane[0].ImagePositionPatient])
                    if plane and "ImagePositionPatient" in plane[0] else None)
        frames.append(_Frame(number=number, source_uid=uid, position=position))
    return frames


def _frame_masks(ds: Any) -> Any:
    """Each frame's pixels as a bool mask (BINARY / FRACTIONAL) or segment numbers
    (LABELMAP), one frame at a time."""
    from pydicom.pixels import iter_pixels

    kind = str(ds.get("SegmentationType", "BINARY"))
    limit = int(ds.get("MaximumFractionalValue", 255))
    for frame in iter_pixels(ds):
        if kind == "FRACTIONAL":
            yield frame.astype(np.float32) >= 0.5 * limit
        elif kind == "LABELMAP":
            yield frame
        else:
            yield frame != 0


def read_dicom_seg(path: Path | str, *,
                   reference: Scan | DicomSeriesReference | Path | str | None = None,
                   series: str | int | None = None) -> DicomSegRead:
    """Read a DICOM-SEG as a label map on its series' grid.

    With ``reference`` (the Scan of the series, its recorded reference or its folder) every
    frame is placed on the slice its ReferencedSOPInstanceUID names and checked against that
    slice's position; without it, on the grid our sidecar recorded, or else on the grid the
    frames span.  Label values are the ones napari-medseg wrote (segment numbers for files of
    other tools).  Overlapping segments: the later frame wins (a warning counts the voxels).
    """
    import pydicom
    from pydicom.errors import InvalidDicomError

    path = Path(path)
    check_dicom_file(path)  # element lengths fit the file (before pydicom trusts them)
    try:
        ds = pydicom.dcmread(path)
    except (OSError, InvalidDicomError, ValueError) as error:
        msg = f"{path.name} could not be read as DICOM ({error})"
        raise DicomSegReadError(msg) from None
    if str(ds.get("SOPClassUID", "")) not in (SEGMENTATION_STORAGE,
                                               LABEL_MAP_SEGMENTATION_STORAGE):
        msg = f"{path.name} is not a DICOM Segmentation (SOP class {ds.get('SOPClassUID', '?')})"
        raise DicomSegReadError(msg)
    try:
        value_of, names, terms = _segments(ds)
        frames = _frames(ds)
    except (AttributeError, KeyError, IndexError, ValueError, TypeError) as error:
        msg = (f"{path.name}: its segments or frames are not described as DICOM-SEG requires "
               f"({error})")
        raise DicomSegReadError(msg) from None
    referenced = ""
    for item in ds.get("ReferencedSeriesSequence") or []:
        referenced = referenced or str(item.get("SeriesInstanceUID", ""))
    if reference is not None:
        grid = resolve_reference(reference, series=series, labels_name=f"DICOM-SEG {path.name}")
        placement = _by_reference(frames, grid, path)
        grid_from = "reference"
        geometry, shape = grid.geometry, grid.shape
    else:
        found = _sidecar_grid(path, frames)
        if found is not None:
            geometry, shape, placement = found
            grid_from = "sidecar"
        else:
            geometry, shape, placement = _frames_grid(ds, frames, path)
            grid_from = "frames"
    top = max(value_of.values(), default=0)
    dtype = np.uint8 if top <= 255 else np.uint16 if top <= 65535 else np.uint32
    nbytes = float(np.prod(np.asarray(shape, dtype=np.float64))) * np.dtype(dtype).itemsize
    if nbytes > MAX_SCAN_BYTES:
        msg = (f"{path.name} would place its frames on a grid of {shape} voxels "
               f"({nbytes / 1024**3:.1f} GiB), more than napari-medseg reads at once; the file "
               "is probably damaged")
        raise DicomSegReadError(msg)
    array = np.zeros(shape, dtype=dtype)
    overlap = 0
    for i, mask in enumerate(_frame_masks(ds)):  # one frame at a time: later frames win
        k, frame = placement[i], frames[i]
        if frame.number == 0:  # LABELMAP: the pixels are segment numbers
            plane = array[k]
            for number, value in value_of.items():
                plane[mask == number] = value
            continue
        overlap += int(np.count_nonzero(array[k][mask]))
        array[k][mask] = value_of.get(frame.number, frame.number)
    if overlap:
        warnings.warn(f"{path.name}: segments overlap in {overlap} voxel(s); a label map holds "
                      "one class per voxel, the later segment was kept", stacklevel=2)
    labels = LabelMap(array=array, geometry=geometry, class_names={0: "background", **names},
                      source=path)
    return DicomSegRead(labels=labels, terms=terms, grid_from=grid_from,
                        referenced_series_uid=referenced, overlapping_voxels=overlap)


def _by_reference(frames: list[_Frame], grid: SeriesGrid, path: Path) -> list[int]:
    """The slice of each frame, from its ReferencedSOPInstanceUID (checked by position)."""
    index = {s.sop_instance_uid: k for k, s in enumerate(grid.reference.slices)}
    placement = []
    for frame in frames:
        k = index.get(frame.source_uid)
        if k is None:
            if frame.source_uid:
                msg = (f"{path.name} has frames made on images that are not in the series "
                       f"{grid.reference.folder} (e.g. {frame.source_uid}); give the series "
                       "it was made on")
            else:
                msg = (f"{path.name} does not say which source slice each frame lies on; read "
                       "it without a reference series (its frames' positions place them)")
            raise GeometryMismatchError(msg)
        source = grid.reference.slices[k].position
        if frame.position is not None and source is not None and not np.allclose(
                frame.position, source, atol=POSITION_TOLERANCE_MM * 10):
            msg = (f"{path.name}: a frame on slice {k} lies at {frame.position.tolist()} but the "
                   f"slice at {list(source)} mm; the file is inconsistent with the series")
            raise GeometryMismatchError(msg)
        placement.append(k)
    return placement


def _on_grid(frames: list[_Frame], geometry: Geometry, shape: tuple[int, ...]
             ) -> list[int] | None:
    """The slice of each frame by position on a grid, or ``None`` when one is off it."""
    placement = []
    for frame in frames:
        if frame.position is None:
            return None
        index = geometry.world_to_index(frame.position[::-1])
        k = round(float(index[0]))
        if not (0 <= k < shape[0] and np.allclose(index, [k, 0, 0],
                                                  atol=GRID_TOLERANCE_VOXELS)):
            return None
        placement.append(k)
    return placement


def _sidecar_grid(path: Path, frames: list[_Frame]
                  ) -> tuple[Geometry, tuple[int, ...], list[int]] | None:
    from napari_medseg.io.sidecar import read_sidecar
    from napari_medseg.provenance import ProvenanceError

    try:
        sidecar = read_sidecar(path)
    except ProvenanceError:
        return None
    if sidecar is None or sidecar.grid_geometry is None or sidecar.grid_shape is None:
        return None
    placement = _on_grid(frames, sidecar.grid_geometry, sidecar.grid_shape)
    if placement is None:
        return None
    return sidecar.grid_geometry, sidecar.grid_shape, placement


def _frames_grid(ds: Any, frames: list[_Frame], path: Path
                 ) -> tuple[Geometry, tuple[int, ...], list[int]]:
    """The regular grid the frames span (highdicom's volume geometry of the file)."""
    import highdicom as hd

    try:
        seg = hd.seg.Segmentation.from_dataset(ds, copy=False)
        volume = seg.get_volume_geometry(rtol=STEP_SPREAD)
    except (ValueError, AttributeError, KeyError, TypeError, RuntimeError):
        volume = None
    if volume is None:
        msg = (f"{path.name}: its frames do not form a regular stack of slices, so the grid "
               "of its series cannot be rebuilt from them; give the series it was made on "
               "(reference=, CLI --reference SERIES_DIR)")
        raise DicomSegReadError(msg)
    affine = np.asarray(volume.affine, dtype=np.float64)  # (slice, row, col) -> LPS x, y, z
    ours = np.eye(4)
    ours[:3, :3] = affine[2::-1, :3]
    ours[:3, 3] = affine[2::-1, 3]
    geometry = Geometry.from_affine(ours)
    shape = tuple(int(s) for s in volume.spatial_shape)
    orientation = ds.SharedFunctionalGroupsSequence[0].PlaneOrientationSequence[0]
    cosines = [float(v) for v in orientation.ImageOrientationPatient]
    normal = np.cross(cosines[:3], cosines[3:])[::-1]  # (z, y, x) like our world order
    if float(np.dot(geometry.direction[:, 0], normal)) < 0:  # slices along +normal, as read
        last = geometry.index_to_world([shape[0] - 1, 0, 0])
        direction = geometry.direction.copy()
        direction[:, 0] *= -1
        geometry = Geometry(spacing=geometry.spacing, origin=tuple(last), direction=direction)
    placement = _on_grid(frames, geometry, shape)
    if placement is None:
        msg = f"{path.name}: its frames do not lie on the grid they span; the file is damaged"
        raise DicomSegReadError(msg)
    return geometry, shape, placement
