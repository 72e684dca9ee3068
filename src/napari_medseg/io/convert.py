"""The convert verb as one core job: any readable scan or label file to NIfTI / NRRD /
MetaImage, geometry kept, read once.

``napari-medseg convert`` turns its arguments into :class:`ConvertOptions` and prints the
:class:`ConvertResult`; a script calls :func:`convert` the same way.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from napari_medseg.events import Job, Progress, run_to_end
from napari_medseg.io.atomic import check_can_write
from napari_medseg.io.content import looks_like_label_map
from napari_medseg.io.formats import check_writable_suffix
from napari_medseg.io.read import label_map_from_scan, read_scan
from napari_medseg.io.write import write_label_map, write_scan
from napari_medseg.options import option


@dataclass(kw_only=True)
class ConvertOptions:
    """How to read the input and whether the output may replace a file.

    ``labels``: ``True`` treats the input as a label map, ``None`` decides from its content
    (integers with few values, or a label-like name); ``nan_policy``: ``"raise"`` refuses
    NaN/inf voxels, ``"fill"`` replaces them with the minimum.
    """

    series: str | None = option(None, help="DICOM series (index or UID) when a folder has "
                                "several")
    labels: bool | None = option(None, help="treat the input as a label map")
    nan_policy: str = option("raise", flag="--nan", choices=("raise", "fill"),
                             help="NaN/inf voxels: refuse them, or fill with the minimum")
    overwrite: bool = option(False, help="replace the output if it exists")


@dataclass(frozen=True)
class ConvertResult:
    """What was written: ``kind`` is ``"scan"`` or ``"label map"``; shape ``(Z, Y, X)`` and
    spacing (mm) of what was read."""

    path: Path
    kind: str
    shape: tuple[int, ...]
    spacing: tuple[float, ...]


def convert_job(source: str | Path, target: str | Path, options: ConvertOptions | None = None
                ) -> Job[ConvertResult]:
    """Read ``source`` once and write it to ``target`` as a scan or a label map.

    The output is checked (suffix, an existing file) before the input is read, so a refused
    conversion reads and writes nothing; the file appears only once completely written.
    """
    options = options or ConvertOptions()
    target = Path(target)
    check_writable_suffix(target)
    check_can_write(target, overwrite=options.overwrite)
    yield Progress(stage="convert", done=0, total=2, message=f"reading {Path(source).name}")
    scan = read_scan(source, series=options.series, nan_policy=options.nan_policy)
    as_labels = options.labels if options.labels is not None else looks_like_label_map(
        scan.array, scan.name)
    yield Progress(stage="convert", done=1, total=2, message=f"writing {target.name}")
    if as_labels:
        path = write_label_map(label_map_from_scan(scan), target, overwrite=options.overwrite)
    else:
        path = write_scan(scan, target, overwrite=options.overwrite)
    yield Progress(stage="convert", done=2, total=2, message=f"wrote {path.name}")
    return ConvertResult(path=path, kind="label map" if as_labels else "scan",
                         shape=scan.shape, spacing=scan.spacing)


def convert(source: str | Path, target: str | Path, options: ConvertOptions | None = None
            ) -> ConvertResult:
    """Run :func:`convert_job` to the end."""
    return run_to_end(convert_job(source, target, options))
