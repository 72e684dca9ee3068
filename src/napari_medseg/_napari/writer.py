"""npe2 writer contributions: Labels and Image layers back to files with their geometry.

napari's save dialog asks before replacing an existing file, so these writers replace
(atomically) what the person confirmed; the Python API and CLI never replace without
``overwrite=True``.  Labels keep their class names and coded terms, and get their provenance
record beside them (``<file>.provenance.json``; see :mod:`napari_medseg._napari.label_records`).
A Labels layer made on a scan read from a DICOM series also saves as DICOM-SEG (``.dcm``),
referencing that series.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from napari_medseg._napari.label_records import record_for_saving, reference_of, terms_of
from napari_medseg._napari.layers import (
    MODALITY_KEY,
    class_names_from_meta,
    geometry_from_layer_meta,
)
from napari_medseg.io import write_label_map, write_scan
from napari_medseg.io.dicom_seg import MissingReferenceError
from napari_medseg.io.itk import to_label_array
from napari_medseg.scan import LabelMap, Scan


def _labels_of(data: Any, meta: dict[str, Any]) -> LabelMap:
    array = to_label_array(np.asarray(data))
    geometry = geometry_from_layer_meta(meta, array.ndim)
    return LabelMap(array=array, geometry=geometry, class_names=class_names_from_meta(meta))


def write_labels(path: str, data: Any, meta: dict[str, Any]) -> list[str]:
    """Write one Labels layer (its geometry from the layer) as NIfTI / NRRD / MetaImage."""
    labels = _labels_of(data, meta)
    metadata = meta.get("metadata") or {}
    record = record_for_saving(metadata, labels, str(meta.get("name", "labels")))
    return [str(write_label_map(labels, Path(path), overwrite=True, terms=terms_of(metadata),
                                provenance=record))]


def write_dicom_seg(path: str, data: Any, meta: dict[str, Any]) -> list[str]:
    """Write one Labels layer as a DICOM-SEG on the DICOM series its scan was read from."""
    labels = _labels_of(data, meta)
    metadata = meta.get("metadata") or {}
    name = str(meta.get("name", "labels"))
    reference = reference_of(metadata)
    if reference is None:
        msg = (f"layer {name!r} was not made on a scan read from a DICOM series, and a DICOM-SEG "
               "must reference the DICOM images it segments: segment the series opened with "
               "File > Open Folder, or save as .nii.gz and run napari-medseg convert "
               "labels.nii.gz seg.dcm --reference SERIES_DIR")
        raise MissingReferenceError(msg)
    record = record_for_saving(metadata, labels, name)
    return [str(write_label_map(labels, Path(path), overwrite=True, reference=reference,
                                terms=terms_of(metadata), provenance=record))]


def write_image(path: str, data: Any, meta: dict[str, Any]) -> list[str]:
    """Write one Image layer as a scan with its geometry."""
    array = np.asarray(data)
    geometry = geometry_from_layer_meta(meta, array.ndim)
    modality = (meta.get("metadata") or {}).get(MODALITY_KEY, "unknown")
    scan = Scan(array=array, geometry=geometry, modality=modality)
    return [str(write_scan(scan, Path(path), overwrite=True))]
