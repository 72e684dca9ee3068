"""DICOM Segmentation (DICOM-SEG): label maps written on the DICOM series they were made on.

Writing (:func:`prepare_dicom_seg`, used by :func:`napari_medseg.io.write_label_map` for a
``.dcm`` path): a label map that lies on a scan read from a DICOM series becomes one BINARY
Segmentation instance (highdicom builds it, pydicom writes it) that

* belongs to the series' patient and study and references it: Study, Series and SOP
  Instance UIDs, Frame of Reference; every frame names its source slice
  (ReferencedSOPInstanceUID) and carries that slice's ImagePositionPatient, so oblique
  series stay oblique and gapped or overlapping ones (slice thickness unlike the step)
  keep their positions; the pixel measures state the step derived from the positions,
  not a SpacingBetweenSlices tag that may be wrong;
* has one segment per class present, numbered 1..N in label order (the standard asks
  for consecutive numbers), with its name (SegmentLabel), coded terminology
  (:mod:`napari_medseg.terminology`), colour, algorithm (the model, or MANUAL) and its
  label value in SegmentDescription (``"label value 52"``), so our reader returns the
  label values written, not 1..N;
* carries a summary of the provenance record in ContentDescription (64 characters) and
  the whole readable record in ImageComments.

Empty frames are not stored (as dcmqi and highdicom do).  Classes named but absent from the
labels are dropped (``empty_segments="drop"``, the default: they are listed in the result)
or refused (``"raise"``); labels with no segment at all, more than 65535 classes, negative
values, labels that do not lie on the series' voxels, or a series without the positions and
UIDs a reference needs are refused before anything is written.

Empty UIDs: see :mod:`napari_medseg.io.dicom_reference`; an empty Study or Series Instance
UID of the source is replaced by a name-based UUID UID (``2.25.<uuid5>``) derived from the
series' SOP Instance UIDs, the same on every export of that series, and the image comments
say so.

Reading back: :mod:`napari_medseg.io.dicom_seg_read`.
"""

from __future__ import annotations

import dataclasses
import uuid
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt

from napari_medseg import __version__
from napari_medseg.errors import ScanReadError, ScanWriteError
from napari_medseg.io.dicom_reference import DicomSeriesReference, dicom_reference
from napari_medseg.io.reorient import onto_grid
from napari_medseg.provenance import ProvenanceRecord
from napari_medseg.scan import Geometry, LabelMap, Scan, default_class_names
from napari_medseg.terminology import Code, SegmentTerm, terms_for

#: Segment numbers are 16-bit (US): one DICOM-SEG holds at most this many segments.
MAX_SEGMENTS = 65535
MANUFACTURER = "napari-medseg"
#: Our segment descriptions end with this, followed by the label value.
VALUE_MARK = "label value "
#: Tolerance (mm) between a frame's position and its source slice's.
POSITION_TOLERANCE_MM = 0.01
EMPTY_SEGMENT_POLICIES = ("drop", "raise")
ALGORITHM_TYPES = ("AUTOMATIC", "SEMIAUTOMATIC", "MANUAL")


class DicomSegError(ScanWriteError):
    """A label map cannot be written as a DICOM-SEG as asked (nothing was written)."""


class MissingReferenceError(DicomSegError):
    """The labels do not come with the DICOM series a DICOM-SEG must reference."""


@dataclass(frozen=True, kw_only=True)
class DicomSegOptions:
    """How a DICOM-SEG is written.

    ``series_number``/``series_description``: of the new segmentation series;
    ``content_label``: a code string (16 characters: capitals, digits, ``_``);
    ``empty_segments``: ``"drop"`` classes without voxels (listed in the result) or
    ``"raise"``; ``algorithm_type``: ``AUTOMATIC``/``SEMIAUTOMATIC``/``MANUAL``, or ``None``
    to take it from the provenance (a model: AUTOMATIC, SEMIAUTOMATIC once a person edited or
    reviewed slices; no model: MANUAL); ``content_creator``: a person's name (DICOM
    ``Family^Given``), if a person made or checked the mask.
    """

    series_number: int = 300
    series_description: str = "Segmentation (napari-medseg)"
    content_label: str = "SEGMENTATION"
    empty_segments: str = "drop"
    algorithm_type: str | None = None
    content_creator: str = ""

    def __post_init__(self) -> None:
        if self.empty_segments not in EMPTY_SEGMENT_POLICIES:
            msg = f"empty_segments must be 'drop' or 'raise', got {self.empty_segments!r}"
            raise ValueError(msg)
        if self.algorithm_type is not None and self.algorithm_type not in ALGORITHM_TYPES:
            msg = f"algorithm_type must be one of {ALGORITHM_TYPES}, got {self.algorithm_type!r}"
            raise ValueError(msg)
        label = self.content_label
        if not (0 < len(label) <= 16 and all(c.isupper() or c.isdigit() or c in "_ "
                                             for c in label)):
            msg = (f"content_label must be 1-16 capitals, digits, '_' or spaces, got "
                   f"{label!r}")
            raise ValueError(msg)
        if not 0 <= self.series_number <= 2**31 - 1:
            msg = f"series_number must be a non-negative 32-bit integer, got {self.series_number}"
            raise ValueError(msg)


# ---------------------------------------------------------------------------- reference
def derived_uid(kind: str, reference: DicomSeriesReference) -> str:
    """A UID for a series' missing Study or Series Instance UID: ``2.25.`` and a
    name-based (version 5) UUID of the kind and the series' SOP Instance UIDs, so every
    export of one series derives the same one (PS3.5 B.2)."""
    name = f"napari-medseg {kind} of " + "\\".join(sorted(s.sop_instance_uid
                                                          for s in reference.slices))
    return f"2.25.{uuid.uuid5(uuid.NAMESPACE_OID, name).int}"


@dataclass(frozen=True)
class SeriesGrid:
    """A referenced series and its voxel grid."""

    reference: DicomSeriesReference
    geometry: Geometry
    shape: tuple[int, ...]


def resolve_reference(reference: Scan | DicomSeriesReference | Path | str | None, *,
                      series: str | int | None = None, labels_name: str = "the labels"
                      ) -> SeriesGrid:
    """The series (and grid) of a Scan read from DICOM, a recorded reference, or a series
    folder / one of its files (headers only).  Raises :class:`MissingReferenceError`."""
    from napari_medseg.io.dicom import read_dicom_reference

    if reference is None:
        msg = (f"a DICOM-SEG references the DICOM series it was made on, and {labels_name} "
               "come without one: give the series (Python: reference=<scan read from the "
               "series, or its folder>; CLI: --reference SERIES_DIR), or save as .nii.gz, "
               ".nrrd or .mha")
        raise MissingReferenceError(msg)
    if isinstance(reference, Scan):
        ref = dicom_reference(reference.metadata)
        if ref is None:
            where = reference.source if reference.source else "memory"
            if reference.metadata.get("dicom_n_frames"):
                msg = (f"{labels_name} lie on scan {reference.name!r} ({where}), read from a "
                       "multi-frame DICOM file; napari-medseg writes DICOM-SEG only on series "
                       "of one slice per file so far: save as .nii.gz, .nrrd or .mha")
                raise MissingReferenceError(msg)
            msg = (f"{labels_name} lie on scan {reference.name!r} ({where}), which was not read "
                   "from a DICOM series; a DICOM-SEG must reference the DICOM images: give the "
                   "series folder the labels were made on (--reference SERIES_DIR), or save as "
                   ".nii.gz, .nrrd or .mha")
            raise MissingReferenceError(msg)
        _check_referencable(ref)
        geometry, shape = ref.grid()
        if tuple(shape) != reference.shape or not geometry.is_close(
                reference.geometry, atol_mm=0.05, atol_dir=1e-4):
            msg = (f"scan {reference.name!r} carries the reference of the DICOM series in "
                   f"{ref.folder} but no longer lies on its grid (resampled or cropped?); "
                   "give labels on the series itself, or save as .nii.gz, .nrrd or .mha")
            raise MissingReferenceError(msg)
        return SeriesGrid(ref, reference.geometry, reference.shape)
    if isinstance(reference, DicomSeriesReference):
        ref = reference
    else:
        try:
            ref = read_dicom_reference(Path(reference), series=series)
        except ScanReadError as error:
            msg = f"the reference series could not be read: {error}"
            raise MissingReferenceError(msg) from None
    _check_referencable(ref)
    geometry, shape = ref.grid()
    return SeriesGrid(ref, geometry, shape)


def _check_referencable(ref: DicomSeriesReference) -> None:
    problems = ref.missing()
    if problems:
        msg = (f"the DICOM series in {ref.folder} cannot be referenced by a DICOM-SEG: "
               f"{'; '.join(problems)}; export the series again with complete headers, or "
               "save the labels as .nii.gz, .nrrd or .mha")
        raise DicomSegError(msg)


def _source_datasets(grid: SeriesGrid) -> tuple[list[Any], dict[str, str]]:
    """The source slices' headers (no pixel data), in array order, with empty SOP/Study/
    Series UIDs filled in memory; also which UIDs were derived."""
    import pydicom
    from pydicom.errors import InvalidDicomError

    ref = grid.reference
    derived: dict[str, str] = {}
    if not ref.study_instance_uid:
        derived["StudyInstanceUID"] = derived_uid("study", ref)
    if not ref.series_instance_uid:
        derived["SeriesInstanceUID"] = derived_uid("series", ref)
    datasets = []
    for item, path in zip(ref.slices, ref.files(), strict=True):
        try:
            ds = pydicom.dcmread(path, stop_before_pixels=True)
        except (OSError, InvalidDicomError) as error:
            msg = (f"source slice {path} of the referenced series could not be read ({error}); "
                   "the series moved or changed since the scan was read: read it again")
            raise DicomSegError(msg) from None
        meta = getattr(ds, "file_meta", None)
        instance = str(ds.get("SOPInstanceUID", "") or getattr(meta, "MediaStorageSOPInstanceUID",
                                                                ""))
        position = [float(v) for v in ds.get("ImagePositionPatient", []) or []]
        if instance != item.sop_instance_uid or item.position is None or len(position) != 3 or (
                not np.allclose(position, item.position, atol=POSITION_TOLERANCE_MM)):
            msg = (f"{path.name} is no longer the slice the scan was read from (SOP Instance UID "
                   f"or position changed); read the series {ref.folder} again")
            raise DicomSegError(msg)
        ds.SOPInstanceUID = instance
        if not ds.get("SOPClassUID"):
            ds.SOPClassUID = ref.sop_class_uid
        for keyword, value in derived.items():
            setattr(ds, keyword, value)
        datasets.append(ds)
    return datasets, derived


# ---------------------------------------------------------------------------- writing
@dataclass
class PreparedSeg:
    """A DICOM-SEG built in memory, every check passed; :meth:`save` writes it."""

    dataset: Any
    labels: LabelMap  # on the series' grid, as written
    grid: SeriesGrid
    segments: dict[int, int]  # label value -> segment number
    dropped: tuple[int, ...]  # named classes without voxels, not written
    derived_uids: dict[str, str]

    @property
    def n_frames(self) -> int:
        return int(self.dataset.NumberOfFrames)

    def save(self, path: Path) -> None:
        self.dataset.save_as(str(path), enforce_file_format=True)


def _segment_values(array: npt.NDArray[Any]) -> npt.NDArray[np.int64]:
    """The non-zero label values present, sorted; refuses negative values."""
    if array.size == 0:
        return np.zeros(0, dtype=np.int64)
    low = int(array.min())
    if low < 0:
        msg = (f"the labels hold negative values (down to {low}); DICOM-SEG segments are "
               "numbered from 1: map them to positive values first")
        raise DicomSegError(msg)
    high = int(array.max())
    if high <= 65535:  # counted slice by slice: no full-size temporary
        counts = np.zeros(high + 1, dtype=np.int64)
        for slab in array if array.ndim > 1 else array[None]:
            counts += np.bincount(slab.ravel(), minlength=high + 1)
        values = np.flatnonzero(counts)
    else:
        values = np.unique(array)
    return values[values != 0].astype(np.int64)


def _text(value: str, limit: int) -> str:
    """A DICOM text value: no backslash (the value separator) or control characters, at
    most ``limit`` characters."""
    clean = "".join(" " if ord(c) < 32 else "/" if c == "\\" else c for c in value)
    return clean[:limit]


def absent_classes(labels: LabelMap) -> list[int]:
    """Named classes (not 0) without a voxel: a DICOM-SEG drops them (or refuses)."""
    present = set(_segment_values(labels.array).tolist())
    return sorted(v for v in labels.class_names if v != 0 and v not in present)


def _algorithm(provenance: ProvenanceRecord | None, options: DicomSegOptions
               ) -> tuple[str, Any]:
    import highdicom as hd
    from pydicom.sr.codedict import codes

    kind = options.algorithm_type
    models = provenance.models if provenance is not None else ()
    if kind is None:
        if not models:
            kind = "MANUAL"
        elif provenance is not None and provenance.edits is not None and provenance.edits.touched:
            kind = "SEMIAUTOMATIC"
        else:
            kind = "AUTOMATIC"
    if kind == "MANUAL" and not models:
        return kind, None
    name = "+".join(Path(m.name).name.removesuffix(".safetensors") for m in models)
    version = ", ".join((m.file_hash or "unknown").removeprefix("sha256:")[:16] for m in models)
    parameters = {str(k): str(v) for k, v in (provenance.options if provenance else {}).items()}
    identification = hd.AlgorithmIdentificationSequence(
        name=(name or "unknown")[:64], family=codes.cid7162.ArtificialIntelligence,
        version=(version or "unknown")[:64], parameters=parameters or None)
    return kind, identification


def _coded(code: Code) -> Any:
    from highdicom.sr import CodedConcept

    return CodedConcept(value=code.value, scheme_designator=code.scheme, meaning=code.meaning)


def _descriptions(values: npt.NDArray[np.int64], names: Mapping[int, str],
                  terms: Mapping[int, SegmentTerm], algorithm: tuple[str, Any]) -> list[Any]:
    import highdicom as hd
    from pydicom.dataset import Dataset

    kind, identification = algorithm
    descriptions = []
    for number, value in enumerate(values.tolist(), start=1):
        term = terms[value]
        name = _text(names.get(value) or f"class {value}", 64)
        description = hd.seg.SegmentDescription(
            segment_number=number, segment_label=name,
            segmented_property_category=_coded(term.category),
            segmented_property_type=_coded(term.type), algorithm_type=kind,
            algorithm_identification=identification,
            display_color=hd.color.CIELabColor.from_rgb(*term.colour))
        if term.modifier is not None:
            modifier = Dataset()
            modifier.CodeValue = term.modifier.value
            modifier.CodingSchemeDesignator = term.modifier.scheme
            modifier.CodeMeaning = term.modifier.meaning
            type_item = description.SegmentedPropertyTypeCodeSequence[0]
            type_item.SegmentedPropertyTypeModifierCodeSequence = [modifier]
        description.SegmentDescription = f"{name}; {VALUE_MARK}{value}"
        descriptions.append(description)
    return descriptions


def prepare_dicom_seg(labels: LabelMap, *,
                      reference: Scan | DicomSeriesReference | Path | str | None,
                      terms: Mapping[int, SegmentTerm] | None = None,
                      provenance: ProvenanceRecord | None = None,
                      options: DicomSegOptions | None = None,
                      series: str | int | None = None) -> PreparedSeg:
    """Check everything and build the DICOM-SEG of ``labels`` on ``reference`` in memory.

    ``reference``: the Scan the labels were made on (read from a DICOM series), its recorded
    :class:`DicomSeriesReference`, or the series folder (``series`` picks one of several).
    ``terms``: coded terms by label value (the table's for names it knows otherwise).
    Raises :class:`DicomSegError` (or :class:`GeometryMismatchError`) saying what to change;
    nothing is written either way.
    """
    import highdicom as hd
    from pydicom.valuerep import format_number_as_ds

    options = options or DicomSegOptions()
    grid = resolve_reference(reference, series=series, labels_name=f"labels {labels.name!r}")
    array = labels.array
    if array.ndim == 2 and len(grid.shape) == 3 and grid.shape[0] == 1:
        array = array[None]
        labels = dataclasses.replace(labels, array=array, geometry=grid.geometry)
    on_grid = onto_grid(labels, grid.geometry, grid.shape,
                        what=f"the DICOM series in {grid.reference.folder}")
    values = _segment_values(on_grid)
    if values.size > MAX_SEGMENTS:
        msg = (f"the labels hold {values.size} classes; one DICOM-SEG holds at most "
               f"{MAX_SEGMENTS} segments: split the classes over several files")
        raise DicomSegError(msg)
    names = dict(labels.class_names) or default_class_names(values.tolist())
    named = sorted(v for v in names if v != 0)
    empty = tuple(v for v in named if v not in set(values.tolist()))
    if empty and options.empty_segments == "raise":
        shown = ", ".join(f"{v} ({names[v]})" for v in empty[:10])
        msg = (f"{len(empty)} named class(es) have no voxel: {shown}; DICOM-SEG segments must "
               "hold voxels: remove those classes or write with empty_segments='drop'")
        raise DicomSegError(msg)
    if values.size == 0:
        msg = ("the labels hold no labelled voxel (all background); a DICOM-SEG needs at least "
               "one segment with voxels: nothing was written")
        raise DicomSegError(msg)
    all_terms = terms_for({int(v): names.get(int(v), f"class {v}") for v in values}, terms)
    sources, derived = _source_datasets(grid)
    kind = np.uint8 if values.size <= 255 else np.uint16  # segment numbers, label-map style
    if values.max() <= 2**20:
        numbers = np.zeros(int(values.max()) + 1, dtype=kind)
        numbers[values] = np.arange(1, values.size + 1)
        pixel_array = numbers[on_grid]
    else:
        pixel_array = (np.searchsorted(values, on_grid) + 1).astype(kind)
        pixel_array[on_grid == 0] = 0
    ref = grid.reference
    step = float(grid.geometry.spacing[0])
    try:
        seg = hd.seg.Segmentation(
            source_images=sources, pixel_array=pixel_array, segmentation_type="BINARY",
            segment_descriptions=_descriptions(values, names, all_terms,
                                               _algorithm(provenance, options)),
            series_instance_uid=hd.UID(), series_number=options.series_number,
            sop_instance_uid=hd.UID(), instance_number=1, manufacturer=MANUFACTURER,
            manufacturer_model_name=MANUFACTURER, software_versions=__version__,
            device_serial_number="none",
            content_description=_text(provenance.summary(64) if provenance else
                                      "origin not recorded", 64),
            content_creator_name=options.content_creator or None,
            content_label=options.content_label, omit_empty_frames=True)
    except (ValueError, TypeError, AttributeError, KeyError) as error:
        msg = f"highdicom could not build the DICOM-SEG: {error}"
        raise DicomSegError(msg) from None
    comments = _comments(provenance, derived, ref)
    texts = [*map(str, names.values()), options.series_description, options.content_creator,
             comments]
    if not all(t.isascii() for t in texts):
        seg.SpecificCharacterSet = "ISO_IR 192"  # UTF-8: names beyond ASCII stay as they are
    # highdicom copies the source's pixel measures when the pixel spacing agrees, and with
    # them a SpacingBetweenSlices tag that may be wrong (the MR of the tests says 2 mm for a
    # 7 mm step): state the step the positions give, and the source's thickness
    shared = seg.SharedFunctionalGroupsSequence[0].PixelMeasuresSequence[0]
    shared.SpacingBetweenSlices = format_number_as_ds(step)
    shared.SliceThickness = format_number_as_ds(float(ref.slice_thickness or step))
    seg.SeriesDescription = _text(options.series_description, 64)
    if comments:
        seg.ImageComments = comments[:10240]
    written = LabelMap(array=on_grid, geometry=grid.geometry,
                       class_names={0: names.get(0, "background"),
                                    **{int(v): names.get(int(v), f"class {v}") for v in values}},
                       source=labels.source)
    return PreparedSeg(dataset=seg, labels=written, grid=grid,
                       segments={int(v): i for i, v in enumerate(values.tolist(), start=1)},
                       dropped=empty, derived_uids=derived)


def _comments(provenance: ProvenanceRecord | None, derived: Mapping[str, str],
              ref: DicomSeriesReference) -> str:
    lines = []
    for keyword, value in derived.items():
        lines.append(f"The source series has no {keyword}; {value} was derived from its SOP "
                     "Instance UIDs by napari-medseg (the same on every export).")
    if ref.uids_from_file_meta:
        lines.append("Some source slices have an empty SOP Class/Instance UID in their dataset; "
                     "the UIDs of their file meta information are referenced.")
    if provenance is not None:
        lines.append("napari-medseg provenance:")
        lines.extend(provenance.describe())
    return "\n".join(lines)


