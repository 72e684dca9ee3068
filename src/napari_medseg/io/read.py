"""``read_scan`` and ``read_label_map``: any supported file or DICOM folder to a Scan / LabelMap.

:func:`read_label_file` also returns what came with the labels: coded terms (from a
DICOM-SEG, a NRRD/MetaImage header or the sidecar, else the terminology table) and the
provenance record of the sidecar ``<file name>.provenance.json``.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt
import SimpleITK as sitk

from napari_medseg.errors import UnsupportedScanError
from napari_medseg.io.content import check_finite
from napari_medseg.io.dicom import read_dicom_series
from napari_medseg.io.dicom_reference import DicomSeriesReference, dicom_reference
from napari_medseg.io.formats import Format, detect_format
from napari_medseg.io.itk import CLASS_NAMES_KEY, read_image_file, to_label_array
from napari_medseg.io.modality import read_modality
from napari_medseg.io.nifti import read_nifti
from napari_medseg.io.sidecar import LabelSidecar, read_sidecar
from napari_medseg.io.write import TERMS_KEY
from napari_medseg.provenance import ProvenanceError, ProvenanceRecord
from napari_medseg.scan import MODALITIES, Geometry, LabelMap, Scan, default_class_names
from napari_medseg.terminology import SegmentTerm, terms_for, terms_from_json


def _to_grey(image: sitk.Image, path: Path) -> tuple[npt.NDArray[Any], Geometry]:
    """Array and geometry of a 2D image; colour is reduced to grey (Rec. 601 luma)."""
    from napari_medseg.io.itk import geometry_of

    array = sitk.GetArrayFromImage(image)
    geometry = geometry_of(image)
    if image.GetNumberOfComponentsPerPixel() > 1:
        if image.GetDimension() != 2:
            msg = f"{path.name} is a colour volume; napari-medseg reads single-channel scans"
            raise UnsupportedScanError(msg)
        rgb = array[..., :3].astype(np.float32)
        if np.array_equal(rgb[..., 0], rgb[..., 1]) and np.array_equal(rgb[..., 0], rgb[..., 2]):
            array = array[..., 0]
        else:
            luma = rgb @ np.array([0.299, 0.587, 0.114], dtype=np.float32)
            array = np.rint(luma).astype(array.dtype)
    return array, geometry


def read_scan(
    path: str | Path,
    *,
    series: str | int | None = None,
    modality: str | None = None,
    nan_policy: str = "raise",
) -> Scan:
    """Read a scan with its geometry.

    Parameters
    ----------
    path
        A NIfTI, NRRD, MetaImage, PNG/JPEG/TIFF file, a DICOM file or a folder of DICOM files.
    series
        For a DICOM folder holding several series: the index or UID to read (see
        :func:`napari_medseg.io.list_dicom_series`).  Without it such a folder raises
        :class:`~napari_medseg.errors.AmbiguousDicomSeriesError` listing the series.
    modality
        Override the modality read from the header or guessed from intensities.  Otherwise
        :func:`~napari_medseg.io.modality.read_modality` decides (headers, then the file
        name, then intensities) and ``scan.modality_reason`` says how.
    nan_policy
        ``"raise"`` (default) refuses NaN/inf voxels; ``"fill"`` replaces them with the minimum.
    """
    path = Path(path)
    fmt = detect_format(path)
    if fmt is Format.DICOM and path.is_file() and _is_seg(path):
        msg = (f"{path.name} is a DICOM Segmentation, not a scan: read it with read_label_map "
               "(napari: File > Open gives a Labels layer), or open its image series")
        raise UnsupportedScanError(msg)
    if fmt is Format.DICOM:
        scan = read_dicom_series(path, series=series)
        scan.array = check_finite(scan.array, path.name, nan_policy=nan_policy)
    else:
        if fmt is Format.NIFTI:
            array, geometry, metadata = read_nifti(path)
        else:
            max_components = 4 if fmt in (Format.IMAGE2D, Format.TIFF) else 1
            image, metadata = read_image_file(path, max_components=max_components)
            array, geometry = _to_grey(image, path)
            del image
        array = check_finite(array, path.name, nan_policy=nan_policy)
        scan = Scan(array=array, geometry=geometry, metadata=metadata, source=path)
    guess = read_modality(scan.array, scan.metadata, name=path.name, spacing=scan.spacing)
    scan.modality, scan.modality_reason = guess.modality, guess.reason
    scan.mr_contrast, scan.skull_stripped = guess.mr_contrast, guess.skull_stripped
    if modality is not None:
        if modality not in MODALITIES:
            msg = f"modality must be one of {', '.join(MODALITIES)}, got {modality!r}"
            raise ValueError(msg)
        if modality != scan.modality:
            scan.modality, scan.modality_reason = modality, "given by the caller"
            scan.mr_contrast = scan.mr_contrast if modality == "MR" else None
            scan.skull_stripped = scan.skull_stripped if modality == "MR" else None
    return scan


def class_names_from_metadata(metadata: dict[str, str]) -> dict[int, str]:
    """Class names stored by :func:`write_label_map` in a header (NRRD / MetaImage)."""
    text = metadata.get(CLASS_NAMES_KEY, "")
    if not text:
        return {}
    try:
        raw = json.loads(text)
        return {int(k): str(v) for k, v in raw.items()}
    except (ValueError, AttributeError):
        return {}


def label_values(array: npt.NDArray[Any]) -> list[int]:
    """The label values present in an integer array, ascending (``[0]`` when empty).

    Counts with ``bincount`` for small non-negative integers (one pass, no sort)."""
    if not array.size:
        return [0]
    if array.dtype in (np.uint8, np.uint16, np.bool_):
        counts = np.bincount(array.ravel().astype(np.intp, copy=False))
        return [int(v) for v in np.flatnonzero(counts)]
    return [int(v) for v in np.unique(array)]


def _is_seg(path: Path) -> bool:
    from napari_medseg.io.dicom_seg_read import is_dicom_seg

    return is_dicom_seg(path)


@dataclass
class LabelFile:
    """A label map with what came with it (see :func:`read_label_file`).

    ``sidecar_problem`` says why a sidecar next to the file could not be used (damaged).
    """

    labels: LabelMap
    terms: dict[int, SegmentTerm] = field(default_factory=dict)
    provenance: ProvenanceRecord | None = None
    sidecar: LabelSidecar | None = None
    sidecar_problem: str = ""
    is_dicom_seg: bool = False


def read_label_file(
    path: str | Path,
    *,
    like: Scan | None = None,
    series: str | int | None = None,
    reference: Scan | DicomSeriesReference | Path | str | None = None,
) -> LabelFile:
    """Read a label file with its names, coded terms and provenance.

    A DICOM-SEG is placed on ``reference`` (the Scan of its series, its recorded reference
    or its folder; ``like`` serves when it was read from DICOM), else on the grid our
    sidecar recorded, else on the grid its frames span.  Names: the file's own (DICOM-SEG,
    NRRD/MetaImage header), else the sidecar's (NIfTI), else ``class k``.  Terms: the file's
    or sidecar's, else the terminology table's for the names.
    """
    path = Path(path)
    try:
        sidecar = read_sidecar(path)
        problem = ""
    except ProvenanceError as error:
        sidecar, problem = None, f"{path.name}'s sidecar was not used: {error}"
    if path.is_file() and detect_format(path) is Format.DICOM and _is_seg(path):
        from napari_medseg.io.dicom_seg_read import read_dicom_seg

        if reference is None and like is not None and dicom_reference(like.metadata):
            reference = like
        seg = read_dicom_seg(path, reference=reference, series=series)
        labels, own_terms, is_seg = seg.labels, seg.terms, True
    else:
        found = label_file_from_scan(read_scan(path, series=series), sidecar=sidecar)
        labels, own_terms, is_seg = found.labels, found.terms, False
    if like is not None:
        labels.check_matches(like)
    return LabelFile(labels=labels, terms=terms_for(labels.class_names, own_terms),
                     provenance=sidecar.provenance if sidecar is not None else None,
                     sidecar=sidecar, sidecar_problem=problem, is_dicom_seg=is_seg)


def label_map_from_scan(scan: Scan) -> LabelMap:
    """A scan read from a label file, as the :class:`LabelMap` it holds.

    Float voxels holding whole numbers (a common export) become integers, any other float
    content is refused (:class:`~napari_medseg.errors.UnsupportedScanError`); class names
    come from the header (NRRD / MetaImage, see :func:`write_label_map`), else from the
    sidecar beside ``scan.source`` (NIfTI), else ``class k`` for every value present.
    :func:`label_file_from_scan` also returns the coded terms and the provenance record.
    """
    return label_file_from_scan(scan).labels


def label_file_from_scan(scan: Scan, *, sidecar: LabelSidecar | None = None) -> LabelFile:
    """A label file already read as a scan (by :func:`read_scan`), with the names and terms
    of its header or of ``sidecar`` (looked up beside ``scan.source`` when not given); the
    labels as :func:`label_map_from_scan` describes."""
    problem = ""
    if sidecar is None and scan.source is not None and scan.source.is_file():
        try:
            sidecar = read_sidecar(scan.source)
        except ProvenanceError as error:
            problem = f"{scan.source.name}'s sidecar was not used: {error}"
    array = to_label_array(scan.array, scan.source.name if scan.source else scan.name)
    names = class_names_from_metadata(scan.metadata)
    if not names and sidecar is not None:
        names = dict(sidecar.class_names)
    if not names:
        names = default_class_names(label_values(array))
    own_terms = terms_from_json(scan.metadata.get(TERMS_KEY, ""))
    if sidecar is not None:
        own_terms = {**sidecar.terms, **own_terms}
    labels = LabelMap(array=array, geometry=scan.geometry, class_names=names, source=scan.source,
                      display_name=scan.display_name)
    return LabelFile(labels=labels, terms=terms_for(names, own_terms),
                     provenance=sidecar.provenance if sidecar is not None else None,
                     sidecar=sidecar, sidecar_problem=problem)


def read_label_map(
    path: str | Path,
    *,
    like: Scan | None = None,
    series: str | int | None = None,
    reference: Scan | DicomSeriesReference | Path | str | None = None,
) -> LabelMap:
    """Read an integer label image; with ``like``, check it lies on that scan's grid.

    Float files holding whole numbers (a common export) are converted to integers; any other
    float content is refused.  A grid that does not match ``like`` raises
    :class:`~napari_medseg.errors.GeometryMismatchError` naming what differs.  A DICOM-SEG
    is read onto its series (``reference``, or ``like`` when it was read from DICOM); see
    :func:`read_label_file` for names, terms and provenance.
    """
    return read_label_file(path, like=like, series=series, reference=reference).labels
