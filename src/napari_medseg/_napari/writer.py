"""npe2 writer contributions: Labels and Image layers back to files with their geometry.

An existing file is replaced (atomically) only when napari's save dialog asked about it;
saving from Python (``viewer.layers.save``, ``napari.save_layers``) refuses to replace one
(:mod:`napari_medseg._napari.overwrite`).  The Python API and CLI never replace without
``overwrite=True``.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from napari_medseg._napari.layers import labels_from_layer_data, scan_from_layer_data
from napari_medseg._napari.overwrite import may_replace
from napari_medseg.io import write_label_map, write_scan


def write_labels(path: str, data: Any, meta: dict[str, Any]) -> list[str]:
    """Write one Labels layer (its geometry from the layer) as NIfTI / NRRD / MetaImage."""
    labels = labels_from_layer_data(data, meta)
    return [str(write_label_map(labels, Path(path), overwrite=may_replace(Path(path))))]


def write_image(path: str, data: Any, meta: dict[str, Any]) -> list[str]:
    """Write one Image layer as a scan with its geometry."""
    scan = scan_from_layer_data(data, meta)
    return [str(write_scan(scan, Path(path), overwrite=may_replace(Path(path))))]
