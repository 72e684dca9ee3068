"""The convert verb as one core job: any readable scan or label file to NIfTI / NRRD /
MetaImage, geometry kept, read once; label maps also to and from DICOM-SEG.

``napari-medseg convert`` turns its arguments into :class:`ConvertOptions` and prints the
:class:`ConvertResult`; a script calls :func:`convert` the same way::

    convert("labels.nii.gz", "seg.dcm", ConvertOptions(reference="ct_series/"))
    convert("seg.dcm", "labels.nrrd")  # and back

A label map keeps its class names and coded terms, and gets a provenance record that keeps
the source's record (its sidecar) and names the source (``derived_from``).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from napari_medseg.errors import MedsegError
from napari_medseg.events import Job, Progress, run_to_end
from napari_medseg.io.atomic import check_can_write
from napari_medseg.io.content import looks_like_label_map
from napari_medseg.io.dicom_seg_read import is_dicom_seg
from napari_medseg.io.formats import check_writable_suffix, suffix_of
from napari_medseg.io.read import LabelFile, label_file_from_scan, read_label_file, read_scan
from napari_medseg.io.write import check_label_target, write_label_map, write_scan
from napari_medseg.options import option
from napari_medseg.provenance import conversion_record
from napari_medseg.scan import Scan

#: Who a converted label file's provenance record says made it.
MADE_BY = "napari-medseg convert"


@dataclass(kw_only=True)
class ConvertOptions:
    """How to read the input and whether the output may replace a file.

    ``labels``: ``True`` treats the input as a label map, ``None`` decides from its content
    (integers with few values, or a label-like name; a DICOM-SEG, or a ``.dcm`` output, is a
    label map); ``nan_policy``: ``"raise"`` refuses NaN/inf voxels, ``"fill"`` replaces them
    with the minimum.  ``reference``: the DICOM series folder the labels lie on (needed to
    write DICOM-SEG; places a DICOM-SEG input on its series' whole grid), ``reference_series``
    the series in it when it holds several.
    """

    series: str | None = option(None, help="DICOM series (index or UID) when a folder has "
                                "several")
    labels: bool | None = option(None, help="treat the input as a label map")
    nan_policy: str = option("raise", flag="--nan", choices=("raise", "fill"),
                             help="NaN/inf voxels: refuse them, or fill with the minimum")
    overwrite: bool = option(False, help="replace the output if it exists")
    reference: str | None = option(None, metavar="SERIES_DIR",
                                   help="the DICOM series the labels lie on (needed to write "
                                        "DICOM-SEG; places a DICOM-SEG input on its series' "
                                        "grid)")
    reference_series: str | None = option(None, metavar="INDEX_OR_UID",
                                          help="the series in --reference when that folder "
                                               "holds several")


@dataclass(frozen=True)
class ConvertResult:
    """What was written: ``kind`` is ``"scan"`` or ``"label map"``; shape ``(Z, Y, X)`` and
    spacing (mm) of what was written; for a label map the classes named (background not
    counted) and ``notes`` worth telling (a sidecar that could not be used, classes a
    DICOM-SEG left out because they have no voxel)."""

    path: Path
    kind: str
    shape: tuple[int, ...]
    spacing: tuple[float, ...]
    n_classes: int = 0
    notes: tuple[str, ...] = ()


def convert_job(source: str | Path, target: str | Path, options: ConvertOptions | None = None
                ) -> Job[ConvertResult]:
    """Read ``source`` once and write it to ``target`` as a scan or a label map.

    The output is checked (suffix, an existing file or sidecar, a DICOM-SEG's reference
    series) before the input is read, so a refused conversion reads and writes nothing; the
    file appears only once completely written.
    """
    options = options or ConvertOptions()
    source, target = Path(source), Path(target)
    to_seg = suffix_of(target) == ".dcm"
    from_seg = is_dicom_seg(source)
    if options.reference and not (to_seg or from_seg):
        msg = ("a reference series (CLI: --reference) is for DICOM-SEG input or output (.dcm); "
               "drop it for other formats")
        raise MedsegError(msg)
    if options.labels is False and (to_seg or from_seg):
        msg = (f"a DICOM-SEG holds a label map, so {source.name} -> {target.name} converts "
               "labels: drop labels=False")
        raise MedsegError(msg)
    known_labels = to_seg or from_seg or bool(options.labels)
    if known_labels:
        check_label_target(target, overwrite=options.overwrite,
                           reference=options.reference if to_seg else None,
                           series=options.reference_series)
    else:
        check_writable_suffix(target)
        check_can_write(target, overwrite=options.overwrite)
    yield Progress(stage="convert", done=0, total=2, message=f"reading {source.name}")
    scan: Scan | None = None
    found: LabelFile | None = None
    if from_seg:  # placed on its reference series, else on the grid recorded or spanned
        found = read_label_file(source, reference=options.reference,
                                series=options.reference_series or options.series)
    else:
        scan = read_scan(source, series=options.series, nan_policy=options.nan_policy)
        if known_labels or (options.labels is None
                            and looks_like_label_map(scan.array, scan.name)):
            found = label_file_from_scan(scan)
    yield Progress(stage="convert", done=1, total=2, message=f"writing {target.name}")
    if found is not None:
        result = _write_labels(found, source, target, options, to_seg=to_seg)
    else:
        assert scan is not None  # read above: only a DICOM-SEG input is read as labels only
        path = write_scan(scan, target, overwrite=options.overwrite)
        result = ConvertResult(path=path, kind="scan", shape=scan.shape, spacing=scan.spacing)
    yield Progress(stage="convert", done=2, total=2, message=f"wrote {result.path.name}")
    return result


def _write_labels(found: LabelFile, source: Path, target: Path, options: ConvertOptions, *,
                  to_seg: bool) -> ConvertResult:
    """Write a label file that was read, names, terms and a provenance record kept."""
    from napari_medseg.io.dicom_seg import absent_classes

    labels = found.labels
    record = conversion_record(source, labels, found.provenance, made_by=MADE_BY)
    path = write_label_map(labels, target, overwrite=options.overwrite,
                           reference=options.reference if to_seg else None,
                           series=options.reference_series, terms=found.terms,
                           provenance=record)
    notes = [found.sidecar_problem] if found.sidecar_problem else []
    absent = absent_classes(labels) if to_seg else []
    if absent:
        notes.append("not written, no voxel: " + ", ".join(
            f"{v} ({labels.class_names[v]})" for v in absent))
    return ConvertResult(path=path, kind="label map", shape=labels.shape,
                         spacing=labels.geometry.spacing,
                         n_classes=sum(1 for value in labels.class_names if value),
                         notes=tuple(notes))


def convert(source: str | Path, target: str | Path, options: ConvertOptions | None = None
            ) -> ConvertResult:
    """Run :func:`convert_job` to the end."""
    return run_to_end(convert_job(source, target, options))
