"""``write_scan``, ``write_label_map`` and ``write_probabilities``: atomic, non-clobbering,
geometry kept.

A label map keeps its class names and coded terms in every format: NRRD and MetaImage in
header keys (``medseg_class_names``, ``medseg_segment_terms``), DICOM-SEG natively, NIfTI,
which has no place for them, in the JSON sidecar ``<file name>.provenance.json``
(:mod:`napari_medseg.io.sidecar`).  The sidecar also holds the provenance record when one is
given (the CLI and the napari writer always give one), and is written for every DICOM-SEG.
Per-class probabilities are one multi-component NRRD / MetaImage (:func:`write_probabilities`).
"""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt
import SimpleITK as sitk

from napari_medseg.errors import ScanWriteError
from napari_medseg.io.atomic import check_can_write, write_atomically
from napari_medseg.io.dicom_reference import DicomSeriesReference
from napari_medseg.io.formats import check_writable_suffix
from napari_medseg.io.itk import CLASS_NAMES_KEY, apply_geometry, scan_to_sitk
from napari_medseg.io.sidecar import LabelSidecar, sidecar_path
from napari_medseg.provenance import ProvenanceError, ProvenanceRecord, content_hash
from napari_medseg.scan import Geometry, LabelMap, Scan
from napari_medseg.terminology import SegmentTerm, term_for, terms_for, terms_to_json

#: Formats that hold one component per class in one file.
PROBABILITY_SUFFIXES = (".nrrd", ".mha")

_METADATA_SUFFIXES = (".nrrd", ".nhdr", ".mha", ".mhd")  # formats that keep custom header keys
#: Header key of the coded terms that differ from the table's (NRRD / MetaImage).
TERMS_KEY = "medseg_segment_terms"


def _write_image(image: sitk.Image, path: Path, *, overwrite: bool) -> Path:
    def write(tmp: Path) -> None:
        sitk.WriteImage(image, str(tmp), useCompression=True)

    return write_atomically(path, write, overwrite=overwrite)


def write_scan(scan: Scan, path: str | Path, *, overwrite: bool = False) -> Path:
    """Write a scan as NIfTI, NRRD or MetaImage with its spacing, origin and direction.

    Refuses to replace an existing file unless ``overwrite`` is true; the file appears only
    once completely written.  The modality is kept in NRRD/MetaImage headers.
    """
    path = Path(path)
    suffix = check_writable_suffix(path)
    image = scan_to_sitk(scan)
    if suffix in _METADATA_SUFFIXES and scan.modality != "unknown":
        image.SetMetaData("medseg_modality", scan.modality)
    return _write_image(image, path, overwrite=overwrite)


def _label_dtype(labels: LabelMap) -> type[np.integer]:
    lo = int(labels.array.min()) if labels.array.size else 0
    hi = int(labels.array.max()) if labels.array.size else 0
    if lo >= 0:
        return np.uint8 if hi <= 255 else np.uint16 if hi <= 65535 else np.uint32
    return np.int16 if lo >= -32768 and hi <= 32767 else np.int32


def _has_own_names(class_names: Mapping[int, str]) -> bool:
    """True unless every name is the default (``background``, ``class k``)."""
    return any(name != ("background" if value == 0 else f"class {value}")
               for value, name in class_names.items())


def custom_terms(class_names: Mapping[int, str], terms: Mapping[int, SegmentTerm] | None
                 ) -> dict[int, SegmentTerm]:
    """The given terms that differ from the table's for their class name."""
    return {v: t for v, t in (terms or {}).items()
            if v != 0 and t != term_for(class_names.get(v, f"class {v}"), v)}


def write_label_map(
    labels: LabelMap,
    path: str | Path,
    *,
    overwrite: bool = False,
    reference: Scan | DicomSeriesReference | Path | str | None = None,
    series: str | int | None = None,
    terms: Mapping[int, SegmentTerm] | None = None,
    provenance: ProvenanceRecord | None = None,
    seg_options: object | None = None,
) -> Path:
    """Write a label map on its scan's grid, in the smallest integer type that holds it.

    ``path`` ending in ``.dcm`` writes a DICOM-SEG on the DICOM series ``reference`` (the
    Scan the labels were made on, read from the series; its recorded
    :class:`~napari_medseg.io.dicom_reference.DicomSeriesReference`; or the series folder,
    ``series`` choosing among several), with ``seg_options`` a
    :class:`~napari_medseg.io.dicom_seg.DicomSegOptions`.  Labels stored in another axis
    order over the same voxels are reoriented onto the series; any other grid is refused.
    Other formats need no reference and ignore ``reference``, ``series`` and
    ``seg_options`` (so that a front end can pass them whatever the suffix).

    Class names and ``terms`` (coded terms by label value; the terminology table's for the
    others) are kept in every format (see the module docstring); ``provenance`` goes into the
    sidecar ``<file name>.provenance.json`` (and a DICOM-SEG's header).  The label file and
    its sidecar are each written atomically; neither replaces an existing file unless
    ``overwrite`` is true (an orphan sidecar of ours, whose label file is gone, excepted), and
    both are checked before either is written.
    """
    path = Path(path)
    suffix = check_writable_suffix(path, labels=True)
    write: Callable[[Path], None]
    if suffix == ".dcm":
        from napari_medseg.io.dicom_seg import DicomSegOptions, prepare_dicom_seg

        if seg_options is not None and not isinstance(seg_options, DicomSegOptions):
            msg = f"seg_options must be a DicomSegOptions, got {type(seg_options).__name__}"
            raise TypeError(msg)
        prepared = prepare_dicom_seg(labels, reference=reference, terms=terms,
                                     provenance=provenance, options=seg_options, series=series)
        written = prepared.labels
        write = prepared.save
        with_sidecar = True
    else:
        written = labels
        array = labels.array.astype(_label_dtype(labels), copy=False)
        image = scan_to_sitk(LabelMap(array=array, geometry=labels.geometry,
                                      class_names=labels.class_names))
        own_terms = custom_terms(labels.class_names, terms)
        if suffix in _METADATA_SUFFIXES:
            image.SetMetaData(CLASS_NAMES_KEY, json.dumps({str(k): v for k, v in
                                                           labels.class_names.items()}))
            if own_terms:
                image.SetMetaData(TERMS_KEY, terms_to_json(own_terms))

        def write(tmp: Path) -> None:
            sitk.WriteImage(image, str(tmp), useCompression=True)

        with_sidecar = provenance is not None or (
            suffix not in _METADATA_SUFFIXES and (_has_own_names(labels.class_names)
                                                  or bool(own_terms)))
    sidecar = None
    if with_sidecar:
        sidecar = LabelSidecar(
            labels_file=path.name, labels_hash=content_hash(written.array),
            class_names=dict(written.class_names),
            terms=terms_for(written.class_names, terms), provenance=provenance,
            grid_shape=tuple(written.array.shape), grid_geometry=written.geometry).to_json()
    return _write_with_sidecar(path, write, sidecar, overwrite=overwrite)


def check_label_target(path: str | Path, *, overwrite: bool = False,
                       reference: Scan | DicomSeriesReference | Path | str | None = None,
                       series: str | int | None = None) -> None:
    """Fail early, before a long job: the suffix is one labels are written as, neither the
    file nor its sidecar would be replaced unasked, and a DICOM-SEG has a series it can
    reference (:class:`~napari_medseg.io.dicom_seg.MissingReferenceError` otherwise)."""
    path = Path(path)
    suffix = check_writable_suffix(path, labels=True)
    check_can_write(path, overwrite=overwrite)
    _check_sidecar_free(path, overwrite=overwrite)
    if suffix == ".dcm":
        from napari_medseg.io.dicom_seg import resolve_reference

        resolve_reference(reference, series=series, labels_name=f"the labels for {path.name}")


def _check_sidecar_free(path: Path, *, overwrite: bool) -> None:
    """Check that the sidecar of ``path`` may be (re)written: it is absent, ``overwrite`` is
    true, or it is an orphan - one of ours whose label file is gone (a deleted output, or
    a write interrupted between the two renames).  Anything else under its name is kept:
    :class:`~napari_medseg.errors.OutputExistsError`."""
    side = sidecar_path(path)
    if overwrite or not side.exists():
        return
    if not path.exists():
        try:
            LabelSidecar.from_json(side.read_text(encoding="utf-8"))
            return
        except (ProvenanceError, OSError, UnicodeDecodeError):
            pass
    check_can_write(side, overwrite=False)  # raises, naming the file


def _write_with_sidecar(path: Path, write: Callable[[Path], None], sidecar: str | None, *,
                        overwrite: bool) -> Path:
    """The sidecar first, then the label file, each atomically; a failed label write puts
    the previous sidecar back (or removes the new one)."""
    side = sidecar_path(path)
    check_can_write(path, overwrite=overwrite)
    if sidecar is None:
        out = write_atomically(path, write, overwrite=overwrite)
        if overwrite and side.is_file():  # it described the file just replaced
            side.unlink(missing_ok=True)
        return out
    _check_sidecar_free(path, overwrite=overwrite)
    previous = side.read_bytes() if side.is_file() else None
    text = sidecar

    def write_sidecar(tmp: Path) -> None:
        tmp.write_text(text, encoding="utf-8")

    write_atomically(side, write_sidecar, overwrite=True)  # free: checked just above
    try:
        return write_atomically(path, write, overwrite=overwrite)
    except BaseException:
        if previous is None:
            side.unlink(missing_ok=True)
        else:
            old = previous

            def restore(tmp: Path) -> None:
                tmp.write_bytes(old)

            write_atomically(side, restore, overwrite=True)
        raise


def write_probabilities(probabilities: npt.NDArray[Any], geometry: Geometry, path: str | Path,
                        *, overwrite: bool = False) -> Path:
    """Per-class probabilities ``(K, Z, Y, X)`` (or ``(K, Y, X)``) as one multi-component
    float32 image on ``geometry`` (NRRD or MetaImage: one component per class)."""
    path = Path(path)
    if not path.name.lower().endswith(PROBABILITY_SUFFIXES):
        msg = (f"probabilities are written as {' or '.join(PROBABILITY_SUFFIXES)} (one "
               f"component per class); {path.name} is neither")
        raise ScanWriteError(msg)
    if probabilities.ndim != geometry.ndim + 1:
        msg = (f"probabilities of shape {probabilities.shape} do not fit a {geometry.ndim}D "
               "grid: give (classes, *spatial)")
        raise ValueError(msg)
    image = sitk.GetImageFromArray(np.moveaxis(probabilities.astype(np.float32), 0, -1),
                                   isVector=True)
    apply_geometry(image, geometry)
    return _write_image(image, path, overwrite=overwrite)
