"""What a Labels layer carries about its making, in its metadata, for the writer to save.

* :func:`segment_result_metadata` - the Segment widget calls it for the layer it adds: the
  scan's file or folder, its DICOM reference (so the layer can be saved as DICOM-SEG), and the
  provenance record the run's job built.
* :func:`record_corrections` - the Correct widget calls it with the tracker's masks: the
  edited and reviewed slices go into the layer's record.
* :func:`record_for_saving` - the writer: the layer's record (noting changes nobody
  recorded), or one that says only that the labels were saved from napari.

Records live in the metadata as plain dicts (``ProvenanceRecord.to_dict()``), so they survive
anything that copies layer metadata.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import numpy.typing as npt

from napari_medseg._napari.layers import (
    DICOM_REFERENCE_KEY,
    PROVENANCE_KEY,
    SCAN_KEY,
    TERMS_KEY,
)
from napari_medseg.io.dicom_reference import REFERENCE_KEY, DicomSeriesReference
from napari_medseg.provenance import (
    ProvenanceError,
    ProvenanceRecord,
    note_untracked_changes,
    unknown_record,
    with_edits,
)
from napari_medseg.scan import LabelMap, Scan
from napari_medseg.terminology import SegmentTerm

SEGMENT_WIDGET = "napari-medseg Segment widget"
SAVED_FROM_NAPARI = "napari-medseg (saved from napari)"


def segment_result_metadata(scan: Scan, record: ProvenanceRecord | None) -> dict[str, Any]:
    """Metadata for the Labels layer of a segmentation of ``scan`` (as read from its layer
    when the run started, :func:`~napari_medseg._napari.layers.scan_from_layer`): the scan's
    file or folder, its DICOM reference (so that the layer can be saved as DICOM-SEG) and the
    run's ``record`` (built in the job, see
    :func:`~napari_medseg.inference.segment.segment_job`; ``None``: one that says the run was
    not recorded).

    Touches no voxel: nothing here hashes or reads the scan.
    """
    meta: dict[str, Any] = {SCAN_KEY: str(scan.source) if scan.source else None}
    reference = scan.metadata.get(REFERENCE_KEY)
    if reference:
        meta[DICOM_REFERENCE_KEY] = reference
    if record is None:
        record = unknown_record(made_by=SEGMENT_WIDGET,
                                note=f"segmentation of {scan.name!r}: the run was not recorded")
    meta[PROVENANCE_KEY] = record.to_dict()
    return meta


def _record_of(metadata: dict[str, Any]) -> ProvenanceRecord | None:
    data = metadata.get(PROVENANCE_KEY)
    if not data:
        return None
    try:
        return ProvenanceRecord.from_dict(data)
    except ProvenanceError:
        return None


def record_corrections(layer: Any, *, edited: npt.NDArray[Any] | None = None,
                       reviewed: npt.NDArray[Any] | None = None, axis: int = 0,
                       whole_volume_reviewed: bool = False) -> ProvenanceRecord:
    """Add the slices a person edited or reviewed (bool masks on the layer's grid, e.g. a
    ``CorrectionTracker``'s ``edited`` and ``reviewed``) to ``layer``'s record, and return it.

    A layer without a record (drawn by hand, opened from a file without one) gets one that
    says it was corrected in napari.  Calling it again with the grown masks adds each slice
    once.
    """
    record = _record_of(layer.metadata) or unknown_record(
        made_by=SAVED_FROM_NAPARI, note=f"layer {layer.name!r}: its origin was not recorded")
    record = with_edits(record, edited=edited, reviewed=reviewed, axis=axis,
                        whole_volume_reviewed=whole_volume_reviewed,
                        labels=np.asarray(layer.data))
    layer.metadata[PROVENANCE_KEY] = record.to_dict()
    return record


def record_for_saving(metadata: dict[str, Any], labels: LabelMap, name: str
                      ) -> ProvenanceRecord:
    """The record to write beside ``labels`` saved from a layer with ``metadata``."""
    record = _record_of(metadata)
    if record is None:
        return unknown_record(made_by=SAVED_FROM_NAPARI,
                              note=f"layer {name!r}: its origin was not recorded")
    return note_untracked_changes(record, labels)


def reference_of(metadata: dict[str, Any]) -> DicomSeriesReference | None:
    """The DICOM series a layer's scan came from, if it did."""
    text = metadata.get(DICOM_REFERENCE_KEY)
    if not text:
        return None
    try:
        return DicomSeriesReference.from_json(str(text))
    except (ValueError, KeyError, TypeError):
        return None


def terms_of(metadata: dict[str, Any]) -> dict[int, SegmentTerm]:
    """Coded terms a layer carries (from a DICOM-SEG or a label file's header/sidecar)."""
    out = {}
    for key, value in (metadata.get(TERMS_KEY) or {}).items():
        try:
            out[int(key)] = SegmentTerm.from_dict(value)
        except (ValueError, KeyError, TypeError):
            continue
    return out
