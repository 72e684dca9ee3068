"""npe2 reader contribution: scans open as Image layers, label files as Labels layers.

A DICOM-SEG file opens as a Labels layer on its series' geometry (the grid recorded beside
it, else the one its frames span), with its segments' names, colours and coded terms.  Label
files bring their provenance record along (layer metadata), which the writer saves again.

Errors of the project's family become a napari notification that says what was wrong and
what to do, and no layer is added (napari's own reader dialog would only say "failed").
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

from napari_medseg._napari.layers import (
    DICOM_REFERENCE_KEY,
    PROVENANCE_KEY,
    TERMS_KEY,
    label_layer_data,
    scan_layer_data,
)
from napari_medseg._napari.notify import report
from napari_medseg._napari.warm_up import warm_up
from napari_medseg.errors import MedsegError
from napari_medseg.io import (
    list_dicom_series,
    looks_like_label_map,
    read_dicom_reference,
    read_label_file,
    read_label_map,
    read_scan,
)
from napari_medseg.io.dicom_seg_read import is_dicom_seg
from napari_medseg.io.formats import Format, detect_format, is_dicom_file
from napari_medseg.io.read import LabelFile, label_file_from_scan
from napari_medseg.io.sidecar import sidecar_path

LayerData = tuple[Any, ...]
_EMPTY: list[LayerData] = [(None,)]  # napari's sentinel for "read fine, nothing to add"


def get_reader(path: str | list[str]) -> Callable[[str | list[str]], list[LayerData]] | None:
    """The reader function for ``path`` when napari-medseg can read it, else ``None``."""
    paths = [path] if isinstance(path, str) else list(path)
    if not paths:
        return None
    for p in map(Path, paths):
        try:
            fmt = detect_format(p)
        except MedsegError:
            return None
        if fmt is Format.DICOM and p.is_dir() and not any(
            is_dicom_file(f) or f.suffix.lower() == ".dcm" for f in p.iterdir() if f.is_file()
        ):
            return None
    return read_layers


def choose_series(path: Path) -> str | int | None:
    """Ask which series to open when a DICOM folder has several; ``None`` if cancelled."""
    series = list_dicom_series(path)
    if len(series) <= 1:
        return None if not series else 0
    from napari_medseg._napari.dicom_choice import ask_series

    return ask_series(path, series)


def read_layers(path: str | list[str]) -> list[LayerData]:
    """Layer data for every path; DICOM files of one folder open as one series.

    A path that cannot be read is reported as a notification and skipped.  The tabs' heavy
    libraries start loading in the background (:mod:`~napari_medseg._napari.warm_up`).
    """
    warm_up()
    try:
        return _read_layers(path)
    except MedsegError as exc:
        report(exc)
        return _EMPTY


def _read_layers(path: str | list[str]) -> list[LayerData]:
    paths = [Path(path)] if isinstance(path, str) else [Path(p) for p in path]
    layers: list[LayerData] = []
    seen_dicom_folders: set[Path] = set()
    for p in paths:
        if p.is_file() and is_dicom_seg(p):
            layers.append(seg_layer_data(p))
            continue
        if detect_format(p) is Format.DICOM:
            folder = p if p.is_dir() else p.parent
            if folder in seen_dicom_folders:
                continue
            seen_dicom_folders.add(folder)
            series = choose_series(p) if p.is_dir() else None
            if p.is_dir() and series is None:
                continue  # the person cancelled the choice
            layers.append(scan_layer_data(read_scan(p, series=series)))
            continue
        layers.append(layer_data_for_file(p))
    return layers or _EMPTY


def layer_data_for_file(path: Path) -> LayerData:
    """An Image layer for a scan, a Labels layer for a label file (by its name, its content,
    or a label sidecar beside it)."""
    scan = read_scan(path)
    if sidecar_path(path).is_file() or looks_like_label_map(scan.array, scan.name):
        return labels_layer_data(label_file_from_scan(scan))
    return scan_layer_data(scan)


def labels_layer_data(found: LabelFile, metadata: Mapping[str, Any] | None = None
                      ) -> LayerData:
    """A Labels layer of a label file, its terms and provenance record (and ``metadata``) in
    the layer's metadata."""
    meta: dict[str, Any] = {TERMS_KEY: {str(k): t.to_dict() for k, t in found.terms.items()}}
    if found.provenance is not None:
        meta[PROVENANCE_KEY] = found.provenance.to_dict()
    return label_layer_data(found.labels, metadata={**meta, **dict(metadata or {})})


def seg_layer_data(path: Path) -> LayerData:
    """A Labels layer of a DICOM-SEG, coloured as its segments recommend; when the series it
    was written on is still where the record says, the layer carries its reference (and can be
    saved as DICOM-SEG again)."""
    from napari.utils.colormaps import DirectLabelColormap

    found = read_label_file(path)
    reference = _series_of(found)
    data, kwargs, kind = labels_layer_data(
        found, {DICOM_REFERENCE_KEY: reference} if reference is not None else None)
    colours: dict[int | None, tuple[float, ...]] = {None: (0.0, 0.0, 0.0, 0.0),
                                                     0: (0.0, 0.0, 0.0, 0.0)}
    for value, term in found.terms.items():
        colours[value] = (*(c / 255 for c in term.colour), 1.0)
    kwargs["colormap"] = DirectLabelColormap(color_dict=colours)
    return data, kwargs, kind


def _series_of(found: LabelFile) -> str | None:
    """The recorded series of a DICOM-SEG as reference JSON, if it is still there and its
    grid is the layer's."""
    record = found.provenance
    folder = (record.scan.dicom or {}).get("folder") if record and record.scan else None
    if not folder or not Path(folder).is_dir():
        return None
    try:
        reference = read_dicom_reference(Path(folder))
        geometry, shape = reference.grid()
    except (MedsegError, ValueError):
        return None
    labels = found.labels
    if tuple(shape) != labels.shape or not geometry.is_close(labels.geometry, atol_mm=0.05):
        return None
    return reference.to_json()


__all__ = ["get_reader", "read_label_map", "read_layers"]
