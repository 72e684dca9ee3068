"""Provenance records of what the inference layer knows: a scan (its voxels hashed and its
DICOM identity), a checkpoint (file hash, training record, fine-tune parents found through the
model catalog) and a whole segmentation run.  The record types and everything that needs no
catalog live in :mod:`napari_medseg.provenance`, at the bottom of the house."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from napari_medseg.errors import MedsegError
from napari_medseg.inference.catalog import find_checkpoint
from napari_medseg.io.dicom_reference import dicom_reference
from napari_medseg.models.checkpoint import read_header
from napari_medseg.provenance import (
    ModelRecord,
    ProvenanceRecord,
    ScanRecord,
    content_hash,
    file_hash,
    jsonable,
    now,
    options_record,
    software_versions,
)
from napari_medseg.scan import LabelMap, Scan

#: Fine-tune parents followed at most (a chain longer than this is cut and says so).
MAX_LINEAGE = 16


def scan_record(scan: Scan) -> ScanRecord:
    """A record of ``scan``: its voxels and grid hashed, its DICOM identity if it has one."""
    reference = dicom_reference(scan.metadata)
    dicom = None
    if reference is not None:
        dicom = {"folder": str(reference.folder),
                 "study_instance_uid": reference.study_instance_uid,
                 "series_instance_uid": reference.series_instance_uid,
                 "frame_of_reference_uid": reference.frame_of_reference_uid,
                 "n_slices": reference.n_slices,
                 "uids_from_file_meta": reference.uids_from_file_meta}
    return ScanRecord(
        name=scan.name, source=str(scan.source) if scan.source else None,
        content_hash=content_hash(scan.array, geometry=scan.geometry),
        shape=scan.shape, spacing_mm=scan.geometry.spacing, modality=scan.modality,
        dicom=dicom)


def model_record(source: str | Path) -> ModelRecord:
    """A record of a checkpoint (starter name or file): file hash, spec, training record
    and its fine-tune parents (followed while they can be found)."""
    path = find_checkpoint(source)
    _, spec = read_header(path)
    return ModelRecord(
        name=str(source), file=str(path.resolve()), file_hash=file_hash(path),
        architecture=spec.architecture, class_names=dict(spec.class_names),
        training=jsonable(spec.provenance), lineage=tuple(_lineage(spec.provenance)))


def _lineage(training: Mapping[str, Any]) -> list[dict[str, Any]]:
    """The fine-tune parents of a checkpoint, nearest first (``found: False`` where a parent
    named in the record is not on this machine)."""
    chain: list[dict[str, Any]] = []
    seen: set[str] = set()
    parent = training.get("parent")
    while parent and len(chain) < MAX_LINEAGE:
        entry: dict[str, Any] = {"name": str(parent),
                                 "date": str(training.get("parent_provenance_date", ""))}
        try:
            path = find_checkpoint(str(parent))
            _, spec = read_header(path)
        except MedsegError:
            entry["found"] = False
            chain.append(entry)
            break
        digest = file_hash(path)
        if digest in seen:
            entry.update(found=True, file_hash=digest, note="cycle: stopped here")
            chain.append(entry)
            break
        seen.add(digest)
        training = spec.provenance
        entry.update(found=True, file=str(path.resolve()), file_hash=digest,
                     mode=str(training.get("mode", "")), steps=training.get("steps"),
                     date=str(training.get("date", entry["date"])))
        chain.append(entry)
        parent = training.get("parent")
    else:
        if parent:
            chain.append({"name": str(parent), "note": f"chain cut after {MAX_LINEAGE} parents"})
    return chain


def prediction_record(scans: Sequence[Scan], models: Sequence[str | Path], options: Any, *,
                      made_by: str, labels: LabelMap | None = None) -> ProvenanceRecord:
    """The record of a segmentation run: the first scan (whose grid the labels take), the
    models, the options, the software; ``labels``: the result, whose hash is kept."""
    return ProvenanceRecord(
        made_by=made_by, created=now(),
        result_hash=None if labels is None else content_hash(labels.array),
        scan=scan_record(scans[0]) if scans else None,
        models=tuple(model_record(m) for m in models),
        options=options_record(options), software=software_versions(),
        notes=tuple(f"input channel {i}: {s.name}, {content_hash(s.array, geometry=s.geometry)}"
                    for i, s in enumerate(scans) if i),
    )
