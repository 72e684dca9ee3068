"""Scan / LabelMap <-> napari layer data, keeping the physical geometry.

A layer shows voxel ``i`` at world ``affine @ (scale * i + translate)``.  We pass
``scale = spacing``, ``affine = direction`` (linear part only) and
``translate = direction^-1 @ origin``, so that world = ``origin + direction @ (spacing * i)``:
the world coordinates are the LPS millimetres of :mod:`napari_medseg.scan`, and an
axis-aligned scan has ``translate == origin`` and an identity affine.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from napari_medseg.display import default_contrast_limits
from napari_medseg.errors import GeometryMismatchError
from napari_medseg.io.dicom_reference import REFERENCE_KEY
from napari_medseg.scan import Geometry, LabelMap, Scan

GEOMETRY_KEY = "medseg_geometry"
MODALITY_KEY = "medseg_modality"
SOURCE_KEY = "medseg_source"
CLASS_NAMES_KEY = "medseg_class_names"
#: Image and Labels layers: the DICOM series the scan was read from (a DicomSeriesReference as
#: JSON), so that labels made on it can be saved as DICOM-SEG referencing it.
DICOM_REFERENCE_KEY = "medseg_dicom_reference"
#: Labels layers: the scan they were made on (its file or folder), the provenance record
#: (a dict, see napari_medseg.provenance) and the coded terms by label value (dicts).
SCAN_KEY = "medseg_scan"
PROVENANCE_KEY = "medseg_provenance"
TERMS_KEY = "medseg_segment_terms"


def geometry_kwargs(geometry: Geometry) -> dict[str, Any]:
    """``scale``, ``translate``, ``affine`` (and ``units``) that place a layer in world mm."""
    ndim = geometry.ndim
    affine = np.eye(ndim + 1)
    affine[:ndim, :ndim] = geometry.direction
    translate = np.linalg.solve(geometry.direction, np.asarray(geometry.origin))
    return {
        "scale": tuple(geometry.spacing),
        "translate": tuple(float(t) for t in translate),
        "affine": affine,
        "units": ("mm",) * ndim,
    }


def scan_layer_data(scan: Scan) -> tuple[Any, dict[str, Any], str]:
    """A napari ``LayerDataTuple`` for an Image layer of ``scan``."""
    kwargs = geometry_kwargs(scan.geometry)
    kwargs.update(
        name=scan.name,
        contrast_limits=default_contrast_limits(scan.array, scan.modality),
        colormap="gray",
        metadata={
            GEOMETRY_KEY: scan.geometry.to_dict(),
            MODALITY_KEY: scan.modality,
            SOURCE_KEY: str(scan.source) if scan.source else None,
            DICOM_REFERENCE_KEY: scan.metadata.get(REFERENCE_KEY),
        },
    )
    return (scan.array, kwargs, "image")


def label_layer_data(labels: LabelMap) -> tuple[Any, dict[str, Any], str]:
    """A napari ``LayerDataTuple`` for a Labels layer, class names as features."""
    kwargs = geometry_kwargs(labels.geometry)
    values = sorted(labels.class_names)
    kwargs.update(
        name=labels.name,
        features={"index": values, "class": [labels.class_names[v] for v in values]},
        metadata={
            GEOMETRY_KEY: labels.geometry.to_dict(),
            CLASS_NAMES_KEY: {str(k): v for k, v in labels.class_names.items()},
            SOURCE_KEY: str(labels.source) if labels.source else None,
        },
    )
    array = labels.array
    if array.dtype == np.bool_:
        array = array.astype(np.uint8)
    return (array, kwargs, "labels")


def geometry_from_layer_meta(meta: dict[str, Any], ndim: int) -> Geometry:
    """The geometry a layer was opened with, or the one its scale/translate/affine give.

    Stored geometry (set by our reader) wins while the layer's transform still agrees with
    it; a layer moved or created by hand is described by its current transform.
    """
    scale = np.asarray(meta.get("scale", np.ones(ndim)), dtype=float)[-ndim:]
    translate = np.asarray(meta.get("translate", np.zeros(ndim)), dtype=float)[-ndim:]
    affine = meta.get("affine")
    if affine is None:
        direction = np.eye(ndim)
        shift = np.zeros(ndim)
    else:
        matrix = np.asarray(getattr(affine, "affine_matrix", affine), dtype=float)
        direction = matrix[-ndim - 1 : -1, -ndim - 1 : -1]
        shift = matrix[-ndim - 1 : -1, -1]
    current = Geometry(
        spacing=tuple(scale), origin=tuple(direction @ translate + shift), direction=direction
    )
    stored = (meta.get("metadata") or {}).get(GEOMETRY_KEY)
    if stored is not None:
        geometry = Geometry.from_dict(stored)
        if geometry.ndim == ndim and geometry.is_close(current, atol_mm=1e-3, atol_dir=1e-5):
            return geometry
    return current


def layer_meta(layer: Any) -> dict[str, Any]:
    """The parts of a layer's state :func:`geometry_from_layer_meta` reads."""
    return {
        "scale": layer.scale,
        "translate": layer.translate,
        "affine": layer.affine.affine_matrix,
        "metadata": layer.metadata,
    }


def class_names_from_meta(meta: dict[str, Any]) -> dict[int, str]:
    """Class names a Labels layer carries (metadata first, then its features table)."""
    stored = (meta.get("metadata") or {}).get(CLASS_NAMES_KEY)
    if stored:
        return {int(k): str(v) for k, v in stored.items()}
    features = meta.get("features")
    if features is not None and "class" in features and "index" in features:
        return {int(i): str(c) for i, c in zip(features["index"], features["class"], strict=True)}
    return {}


def scan_from_layer(layer: Any) -> Scan:
    """A :class:`Scan` of an Image layer's data, placed where the layer shows it."""
    array = np.asarray(layer.data)
    if getattr(layer, "rgb", False) or array.ndim not in (2, 3):
        msg = (
            f"layer {layer.name!r} has shape {array.shape}; napari-medseg segments single-channel "
            "2D or 3D images"
        )
        raise GeometryMismatchError(msg)
    geometry = geometry_from_layer_meta(layer_meta(layer), array.ndim)
    modality = layer.metadata.get(MODALITY_KEY, "unknown")
    reference = layer.metadata.get(DICOM_REFERENCE_KEY)
    source = layer.metadata.get(SOURCE_KEY)
    return Scan(array=array, geometry=geometry, modality=modality,
                metadata={REFERENCE_KEY: reference} if reference else {},
                source=Path(source) if source else None)


def unique_layer_name(viewer: Any, name: str) -> str:
    """``name``, or ``name [2]``, ``name [3]``... so that no existing layer is replaced."""
    existing = {layer.name for layer in viewer.layers}
    if name not in existing:
        return name
    k = 2
    while f"{name} [{k}]" in existing:
        k += 1
    return f"{name} [{k}]"
