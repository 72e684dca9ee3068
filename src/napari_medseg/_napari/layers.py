"""Where napari layers and the core meet: one pair of functions per kind, geometry in one form.

=========  ==========================================  =========================================
kind       core -> layer (a ``LayerDataTuple``)         layer -> core
=========  ==========================================  =========================================
scan       :func:`scan_layer_data`                      :func:`scan_from_layer` (a layer),
                                                        :func:`scan_from_layer_data` (a writer's
                                                        ``data, meta``)
labels     :func:`label_layer_data`                     :func:`labels_from_layer`,
                                                        :func:`labels_from_layer_data`
=========  ==========================================  =========================================

The reader, the writer, the sample data and every widget go through these; nothing else
builds a :class:`Scan` or :class:`LabelMap` from layer state.

Geometry travels in one form: the layer's own transform.  A layer shows voxel ``i`` at world
``affine @ (scale * i + translate)``; we pass ``scale = spacing``, ``affine = direction``
(linear part only) and ``translate = direction^-1 @ origin``, so that world =
``origin + direction @ (spacing * i)``: the world coordinates are the LPS millimetres of
:mod:`napari_medseg.scan`, an axis-aligned scan has ``translate == origin`` and an identity
affine, and a layer a person moves (or a script creates) is read back where it is shown.
Class names travel in the Labels layer's features table (columns ``index`` and ``class``).
Layer metadata holds what a transform cannot: the modality (and how it was decided), the
source file, the DICOM series a scan was read from, the model that made a prediction, its fit
check, whether a layer is an overlay, and for label maps the scan they were made on, their
provenance record and coded terms (the keys below).
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np

from napari_medseg.display import default_contrast_limits
from napari_medseg.errors import GeometryMismatchError
from napari_medseg.io.dicom_reference import REFERENCE_KEY
from napari_medseg.io.itk import to_label_array
from napari_medseg.scan import MODALITIES, Geometry, LabelMap, Scan

#: Layer metadata: the scan's DICOM modality code (``"CT"``, ``"MR"``...).
MODALITY_KEY = "medseg_modality"
#: Layer metadata: how the modality was decided (``Scan.modality_reason``), the MR contrast
#: and whether the scan is skull-stripped (``None``: not known).
MODALITY_REASON_KEY = "medseg_modality_reason"
MR_CONTRAST_KEY = "medseg_mr_contrast"
SKULL_STRIPPED_KEY = "medseg_skull_stripped"
#: Layer metadata: the file or folder the layer was read from (``None`` when made here).
SOURCE_KEY = "medseg_source"
#: Image and Labels layers: the DICOM series the scan was read from (a DicomSeriesReference as
#: JSON), so that labels made on it can be saved as DICOM-SEG referencing it.
DICOM_REFERENCE_KEY = "medseg_dicom_reference"
#: Labels layers: the scan they were made on (its file or folder), the provenance record
#: (a dict, see napari_medseg.provenance) and the coded terms by label value (dicts).
SCAN_KEY = "medseg_scan"
PROVENANCE_KEY = "medseg_provenance"
TERMS_KEY = "medseg_segment_terms"
#: Labels layer metadata: the checkpoint that made them (Fine-tune starts from it).
MODEL_KEY = "medseg_model"
#: Layer metadata: ``True`` on overlays (the labeled region...), never offered as an input.
OVERLAY_KEY = "medseg_overlay"
#: Layer metadata: a prompt or preview layer of the Interactive tab (never saved as labels).
PROMPT_KEY = "medseg_prompt"
#: Layer metadata: what a result image is ("probability", "registered", "fused",
#: "checkerboard", "difference"); such layers are offered as inputs but never chosen first.
DERIVED_KEY = "medseg_derived"
#: Overlays made before :data:`OVERLAY_KEY` existed are known by this end of their name.
OVERLAY_SUFFIX = " labeled region"
#: Labels layer metadata: the fit check of the model on the scan (``FitReport.to_dict()``).
FIT_KEY = "medseg_fit"

LayerData = tuple[Any, dict[str, Any], str]


# ---------------------------------------------------------------- geometry (the one form)
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


def geometry_from_layer_meta(meta: Mapping[str, Any], ndim: int) -> Geometry:
    """The geometry a layer's ``scale``/``translate``/``affine`` give (the inverse of
    :func:`geometry_kwargs`; the last ``ndim`` axes of a layer with more)."""
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
    try:
        return Geometry(spacing=tuple(scale), origin=tuple(direction @ translate + shift),
                        direction=direction)
    except ValueError as exc:  # a zero scale, a singular affine
        name = meta.get("name", "the layer")
        msg = (f"layer {name!r} is not placed in physical space ({exc}); reopen its file, or "
               "give it a positive scale and an invertible affine")
        raise GeometryMismatchError(msg) from exc


def layer_meta(layer: Any) -> dict[str, Any]:
    """The parts of a layer's state the ``*_from_layer_data`` functions read; the same keys
    napari gives a writer as ``meta``."""
    meta = {
        "name": layer.name,
        "scale": layer.scale,
        "translate": layer.translate,
        "affine": layer.affine.affine_matrix,
        "metadata": layer.metadata,
        "rgb": getattr(layer, "rgb", False),
    }
    if hasattr(layer, "features"):
        meta["features"] = layer.features
    return meta


def _metadata(meta: Mapping[str, Any]) -> dict[str, Any]:
    return dict(meta.get("metadata") or {})


def _source(metadata: Mapping[str, Any]) -> Path | None:
    source = metadata.get(SOURCE_KEY)
    return Path(source) if source else None


# ---------------------------------------------------------------- scans
def scan_layer_data(scan: Scan, *, name: str | None = None, derived: str | None = None,
                    **display: Any) -> LayerData:
    """An Image ``LayerDataTuple`` of ``scan``: placed in world mm, grey, windowed for its
    modality, with the DICOM series it was read from (if it was); ``derived`` marks a result
    image (:data:`DERIVED_KEY`); ``display`` (colormap, blending, opacity, visible,
    contrast_limits...) overrides those defaults."""
    kwargs = geometry_kwargs(scan.geometry)
    metadata: dict[str, Any] = {
        MODALITY_KEY: scan.modality,
        MODALITY_REASON_KEY: scan.modality_reason,
        MR_CONTRAST_KEY: scan.mr_contrast,
        SKULL_STRIPPED_KEY: scan.skull_stripped,
        SOURCE_KEY: str(scan.source) if scan.source else None,
    }
    if scan.metadata.get(REFERENCE_KEY):  # read from a DICOM series
        metadata[DICOM_REFERENCE_KEY] = scan.metadata[REFERENCE_KEY]
    kwargs.update(
        name=name or scan.name,
        contrast_limits=default_contrast_limits(scan.array, scan.modality),
        colormap="gray",
        metadata=metadata,
    )
    kwargs.update(display)
    if derived is not None:  # a result image (a probability, a fused image...), not a scan
        kwargs["metadata"] = {**kwargs["metadata"], DERIVED_KEY: derived}
    return (scan.array, kwargs, "image")


def scan_from_layer_data(data: Any, meta: Mapping[str, Any]) -> Scan:
    """A :class:`Scan` of an Image layer's ``data`` (``(Z, Y, X)`` or ``(Y, X)``), placed where
    the layer shows it; ``meta`` as :func:`layer_meta` (or napari, to a writer) gives it.  The
    DICOM series the layer was read from, if it was, goes along (``scan.metadata``), so that
    labels made on the scan can be saved as DICOM-SEG referencing it."""
    array = np.asarray(data)
    name = str(meta.get("name") or "") or None
    if meta.get("rgb") or array.ndim not in (2, 3):
        msg = (f"layer {name or 'scan'!r} has shape {array.shape}; napari-medseg segments "
               "single-channel 2D or 3D images")
        raise GeometryMismatchError(msg)
    metadata = _metadata(meta)
    reference = metadata.get(DICOM_REFERENCE_KEY)
    return Scan(array=array, geometry=geometry_from_layer_meta(meta, array.ndim),
                modality=str(metadata.get(MODALITY_KEY, "unknown")),
                metadata={REFERENCE_KEY: str(reference)} if reference else {},
                source=_source(metadata), display_name=name,
                modality_reason=str(metadata.get(MODALITY_REASON_KEY) or ""),
                mr_contrast=metadata.get(MR_CONTRAST_KEY),
                skull_stripped=metadata.get(SKULL_STRIPPED_KEY))


def scan_from_layer(layer: Any) -> Scan:
    """A :class:`Scan` of an Image layer (its data, not a copy), named as the layer."""
    return scan_from_layer_data(layer.data, layer_meta(layer))


def set_layer_modality(layer: Any, modality: str, *, reason: str) -> None:
    """Change an Image layer's modality (metadata), saying how it was decided.

    The MR contrast and skull stripping stay only while the modality stays MR.
    """
    if modality not in MODALITIES:
        msg = f"modality must be one of {', '.join(MODALITIES)}, got {modality!r}"
        raise ValueError(msg)
    meta = layer.metadata
    meta[MODALITY_KEY], meta[MODALITY_REASON_KEY] = modality, reason
    if modality != "MR":
        meta[MR_CONTRAST_KEY] = meta[SKULL_STRIPPED_KEY] = None


# ---------------------------------------------------------------- label maps
def label_layer_data(labels: LabelMap, *, name: str | None = None,
                     metadata: Mapping[str, Any] | None = None) -> LayerData:
    """A Labels ``LayerDataTuple`` of ``labels``: placed in world mm, class names in its
    features; ``metadata`` adds keys (e.g. :data:`MODEL_KEY`)."""
    kwargs = geometry_kwargs(labels.geometry)
    values = sorted(labels.class_names)
    kwargs.update(
        name=name or labels.name,
        features={"index": values, "class": [labels.class_names[v] for v in values]},
        metadata={SOURCE_KEY: str(labels.source) if labels.source else None,
                  **dict(metadata or {})},
    )
    array = labels.array
    if array.dtype == np.bool_:
        array = array.astype(np.uint8)
    return (array, kwargs, "labels")


def class_names_from_meta(meta: Mapping[str, Any]) -> dict[int, str]:
    """Class names of a Labels layer: its features table (``index`` and ``class``)."""
    features = meta.get("features")
    if features is not None and "class" in features and "index" in features:
        return {int(i): str(c) for i, c in zip(features["index"], features["class"], strict=True)}
    return {}


def labels_from_layer_data(data: Any, meta: Mapping[str, Any]) -> LabelMap:
    """A :class:`LabelMap` of a Labels layer's ``data``, a copy (later painting does not reach
    it), placed where the layer shows it, with its class names."""
    array = to_label_array(np.array(data, copy=True), repr(meta.get("name") or "the layer"))
    metadata = _metadata(meta)
    name = str(meta.get("name") or "") or None
    return LabelMap(array=array, geometry=geometry_from_layer_meta(meta, array.ndim),
                    class_names=class_names_from_meta(meta), source=_source(metadata),
                    display_name=name)


def labels_from_layer(layer: Any) -> LabelMap:
    """A :class:`LabelMap` of a Labels layer (a snapshot of its data), named as the layer."""
    return labels_from_layer_data(layer.data, layer_meta(layer))


# ---------------------------------------------------------------- the viewer
def add_layer_data(viewer: Any, layer_data: LayerData) -> Any:
    """Add the layer a ``LayerDataTuple`` describes to ``viewer``; returns the layer."""
    from napari.layers import Layer

    return viewer.add_layer(Layer.create(*layer_data))


def is_overlay(layer: Any) -> bool:
    """An overlay (the labeled region of a correction, an interactive prompt or preview),
    never an input of a job."""
    return (bool(layer.metadata.get(OVERLAY_KEY)) or bool(layer.metadata.get(PROMPT_KEY))
            or str(layer.name).endswith(OVERLAY_SUFFIX))


def is_derived(layer: Any) -> bool:
    """A result image (probability, registered scan, fused image, view), not a scan."""
    return bool(layer.metadata.get(DERIVED_KEY))


def unique_layer_name(viewer: Any, name: str) -> str:
    """``name``, or ``name [2]``, ``name [3]``... so that no existing layer is replaced."""
    existing = {layer.name for layer in viewer.layers}
    if name not in existing:
        return name
    k = 2
    while f"{name} [{k}]" in existing:
        k += 1
    return f"{name} [{k}]"
