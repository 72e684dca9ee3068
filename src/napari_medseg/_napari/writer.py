"""npe2 writer contributions: Labels and Image layers back to files with their geometry.

An existing file is replaced (atomically) only when napari's save dialog asked about it;
saving from Python (``viewer.layers.save``, ``napari.save_layers``) refuses to replace one
(:mod:`napari_medseg._napari.overwrite`).  The Python API and CLI never replace without
``overwrite=True``.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from napari_medseg._napari.layers import (
    MODALITY_KEY,
    class_names_from_meta,
    geometry_from_layer_meta,
)
from napari_medseg._napari.overwrite import may_replace
from napari_medseg.io import write_label_map, write_scan
from napari_medseg.io.itk import to_label_array
from napari_medseg.scan import LabelMap, Scan


def write_labels(path: str, data: Any, meta: dict[str, Any]) -> list[str]:
    """Write one Labels layer (its geometry from the layer) as NIfTI / NRRD / MetaImage."""
    array = to_label_array(np.asarray(data))
    geometry = geometry_from_layer_meta(meta, array.ndim)
    labels = LabelMap(array=array, geometry=geometry, class_names=class_names_from_meta(meta))
    return [str(write_label_map(labels, Path(path), overwrite=may_replace(Path(path))))]


def write_image(path: str, data: Any, meta: dict[str, Any]) -> list[str]:
    """Write one Image layer as a scan with its geometry."""
    array = np.asarray(data)
    geometry = geometry_from_layer_meta(meta, array.ndim)
    modality = (meta.get("metadata") or {}).get(MODALITY_KEY, "unknown")
    scan = Scan(array=array, geometry=geometry, modality=modality)
    return [str(write_scan(scan, Path(path), overwrite=may_replace(Path(path))))]
