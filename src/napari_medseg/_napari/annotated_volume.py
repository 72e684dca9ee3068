"""What a person annotated on a Labels layer, as the core's
:class:`~napari_medseg.training.LabeledVolume` (the Train tab's input), and the line that
says it.

Which voxels are annotated (:data:`ANNOTATED`):

* **slices holding labels** (the default): every slice across the viewer's slicing axis on
  which something is painted is annotated whole (its unpainted voxels are background);
* **reviewed / edited** (the Correct tab's tracking): the slices marked reviewed and the
  voxels edited on this layer;
* **every voxel**: a dense label map.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

import napari
from napari_medseg._napari.corrections import tracker_for
from napari_medseg._napari.layers import labels_from_layer, scan_from_layer
from napari_medseg.errors import MedsegError
from napari_medseg.training.annotation import describe_annotation, slices_holding_labels

#: How the annotated voxels are known (text, value).
ANNOTATED = (("slices holding labels", "slices"), ("reviewed / edited (Correct tab)", "tracked"),
             ("every voxel", "all"))


def slice_axis(viewer: napari.viewer.Viewer, layer: Any) -> int:
    """The array axis of ``layer`` the viewer slices across (where a person paints slices)."""
    hidden = list(viewer.dims.not_displayed)
    if layer is None or layer.ndim != 3 or not hidden:
        return 0
    return int(hidden[0] - (viewer.dims.ndim - layer.ndim))


def labeled_mask(layer: Any, mode: str, *, axis: int) -> np.ndarray:
    """The annotated voxels of ``layer`` as ``mode`` (an :data:`ANNOTATED` value) says."""
    data = np.asarray(layer.data)
    if mode == "all":
        return np.ones(data.shape, dtype=bool)
    if mode == "tracked":
        tracker = tracker_for(layer)
        if tracker is None:
            msg = (f"{layer.name!r} is not tracked: switch Track corrections on in the Correct "
                   "tab first, or choose 'slices holding labels'")
            raise MedsegError(msg)
        return tracker.labeled()
    return slices_holding_labels(data, axis)


def describe(layer: Any, mode: str, *, axis: int) -> str:
    """One line on what is annotated on ``layer`` (``None``: what to do first)."""
    if layer is None:
        return ("No Labels layer yet: add one (the layer list's Labels button) and paint the "
                "structure on a few slices")
    try:
        mask = labeled_mask(layer, mode, axis=axis)
    except MedsegError as exc:
        return str(exc)
    layout = describe_annotation(mask, np.asarray(layer.data))
    return layout.summary() if layout.labeled_voxels else f"nothing painted on {layer.name!r} yet"


def name_the_one_class(labels: Any, mask: np.ndarray, name: str) -> None:
    """A freshly painted layer has no class names: its one painted value is called after the
    layer ("liver"), so that the model, its results and the status line say "liver", not
    "class 1"."""
    values = [int(v) for v in np.unique(np.asarray(labels.array)[mask]) if v > 0]
    current = str(labels.class_names.get(values[0], "")) if len(values) == 1 else "x"
    if not current or current.startswith("class "):
        labels.class_names = {0: labels.class_names.get(0, "background"),
                              **labels.class_names, values[0]: name}


def annotated_volume(images: Sequence[Any], layer: Any, mode: str, *, axis: int) -> Any:
    """The scans of ``images`` (channels), the labels of ``layer`` and its annotated voxels
    as a :class:`~napari_medseg.training.LabeledVolume`; nothing annotated is an error."""
    from napari_medseg.training import LabeledVolume

    scans = [scan_from_layer(image) for image in images]
    labels = labels_from_layer(layer)
    mask = labeled_mask(layer, mode, axis=axis)
    name_the_one_class(labels, mask, layer.name)
    tracker = tracker_for(layer)
    if tracker is not None:
        tracker.record_provenance()
    edited = tracker.edited.copy() if tracker is not None else None
    volume = LabeledVolume(scans=scans, labels=labels, labeled=mask, edited=edited)
    if not volume.labeled_mask().any():
        msg = (f"nothing annotated on {layer.name!r}: paint the structure on a few slices "
               "(or mark slices reviewed in the Correct tab)")
        raise MedsegError(msg)
    return volume
