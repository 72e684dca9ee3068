"""npe2 writer contributions: Labels and Image layers back to files with their geometry.

An existing file is replaced (atomically) only when napari's save dialog asked about it;
saving from Python (``viewer.layers.save``, ``napari.save_layers``) refuses to replace one
(:mod:`napari_medseg._napari.overwrite`); the rule holds for every writer here, DICOM-SEG
included.  The Python API and CLI never replace without ``overwrite=True``.  Labels keep
their class names and coded terms, and get their provenance record beside them
(``<file>.provenance.json``; see :mod:`napari_medseg._napari.label_records`).  A Labels layer
made on a scan read from a DICOM series also saves as DICOM-SEG (``.dcm``), referencing that
series.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from napari_medseg._napari.label_records import record_for_saving, reference_of, terms_of
from napari_medseg._napari.layers import (
    PROMPT_KEY,
    labels_from_layer_data,
    scan_from_layer_data,
)
from napari_medseg._napari.overwrite import may_replace
from napari_medseg.errors import MedsegError
from napari_medseg.io import write_label_map, write_scan
from napari_medseg.io.dicom_seg import MissingReferenceError


def write_labels(path: str, data: Any, meta: dict[str, Any]) -> list[str]:
    """Write one Labels layer (its geometry from the layer) as NIfTI / NRRD / MetaImage, with
    its terms and provenance record."""
    metadata = meta.get("metadata") or {}
    refuse_prompt_layer(metadata, str(meta.get("name", "labels")))
    labels = labels_from_layer_data(data, meta)
    record = record_for_saving(metadata, labels, str(meta.get("name", "labels")))
    return [str(write_label_map(labels, Path(path), overwrite=may_replace(Path(path)),
                                terms=terms_of(metadata), provenance=record))]


def write_dicom_seg(path: str, data: Any, meta: dict[str, Any]) -> list[str]:
    """Write one Labels layer as a DICOM-SEG on the DICOM series its scan was read from."""
    metadata = meta.get("metadata") or {}
    name = str(meta.get("name", "labels"))
    refuse_prompt_layer(metadata, name)
    labels = labels_from_layer_data(data, meta)
    reference = reference_of(metadata)
    if reference is None:
        msg = (f"layer {name!r} was not made on a scan read from a DICOM series, and a DICOM-SEG "
               "must reference the DICOM images it segments: segment the series opened with "
               "File > Open Folder, or save as .nii.gz and run napari-medseg convert "
               "labels.nii.gz seg.dcm --reference SERIES_DIR")
        raise MissingReferenceError(msg)
    record = record_for_saving(metadata, labels, name)
    return [str(write_label_map(labels, Path(path), overwrite=may_replace(Path(path)),
                                reference=reference, terms=terms_of(metadata),
                                provenance=record))]


def refuse_prompt_layer(metadata: dict[str, Any], name: str) -> None:
    """The Interactive tab's preview and scribbles are not labels: saving one is a mistake."""
    if metadata.get(PROMPT_KEY):
        msg = (f"layer {name!r} is the Interactive tab's {metadata[PROMPT_KEY]}, not your "
               "labels: accept the object (Enter) into a labels layer and save that one")
        raise MedsegError(msg)


def write_image(path: str, data: Any, meta: dict[str, Any]) -> list[str]:
    """Write one Image layer as a scan with its geometry."""
    scan = scan_from_layer_data(data, meta)
    return [str(write_scan(scan, Path(path), overwrite=may_replace(Path(path))))]
