"""``write_scan``, ``write_label_map`` and ``write_probabilities``: atomic, non-clobbering,
geometry kept."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt
import SimpleITK as sitk

from napari_medseg.errors import ScanWriteError
from napari_medseg.io.atomic import write_atomically
from napari_medseg.io.formats import check_writable_suffix
from napari_medseg.io.itk import CLASS_NAMES_KEY, apply_geometry, scan_to_sitk
from napari_medseg.scan import Geometry, LabelMap, Scan

#: Formats that hold one component per class in one file.
PROBABILITY_SUFFIXES = (".nrrd", ".mha")

_METADATA_SUFFIXES = (".nrrd", ".nhdr", ".mha", ".mhd")  # formats that keep custom header keys


def _write_image(image: sitk.Image, path: Path, *, overwrite: bool) -> Path:
    def write(tmp: Path) -> None:
        sitk.WriteImage(image, str(tmp), useCompression=True)

    return write_atomically(path, write, overwrite=overwrite)


def write_scan(scan: Scan, path: str | Path, *, overwrite: bool = False) -> Path:
    """Write a scan as NIfTI, NRRD or MetaImage with its spacing, origin and direction.

    Refuses to replace an existing file unless ``overwrite`` is true; the file appears only
    once completely written.  The modality is kept in NRRD/MetaImage headers.
    """
    path = Path(path)
    suffix = check_writable_suffix(path)
    image = scan_to_sitk(scan)
    if suffix in _METADATA_SUFFIXES and scan.modality != "unknown":
        image.SetMetaData("medseg_modality", scan.modality)
    return _write_image(image, path, overwrite=overwrite)


def _label_dtype(labels: LabelMap) -> type[np.integer]:
    lo = int(labels.array.min()) if labels.array.size else 0
    hi = int(labels.array.max()) if labels.array.size else 0
    if lo >= 0:
        return np.uint8 if hi <= 255 else np.uint16 if hi <= 65535 else np.uint32
    return np.int16 if lo >= -32768 and hi <= 32767 else np.int32


def write_label_map(labels: LabelMap, path: str | Path, *, overwrite: bool = False) -> Path:
    """Write a label map on its scan's grid, in the smallest integer type that holds it.

    Class names are stored in the header of NRRD and MetaImage files (key
    ``medseg_class_names``); NIfTI has no place for them.
    """
    path = Path(path)
    suffix = check_writable_suffix(path)
    array = labels.array.astype(_label_dtype(labels), copy=False)
    image = scan_to_sitk(LabelMap(array=array, geometry=labels.geometry,
                                  class_names=labels.class_names))
    if suffix in _METADATA_SUFFIXES:
        image.SetMetaData(CLASS_NAMES_KEY, json.dumps({str(k): v for k, v in
                                                       labels.class_names.items()}))
    return _write_image(image, path, overwrite=overwrite)


def write_probabilities(probabilities: npt.NDArray[Any], geometry: Geometry, path: str | Path,
                        *, overwrite: bool = False) -> Path:
    """Per-class probabilities ``(K, Z, Y, X)`` (or ``(K, Y, X)``) as one multi-component
    float32 image on ``geometry`` (NRRD or MetaImage: one component per class)."""
    path = Path(path)
    if not path.name.lower().endswith(PROBABILITY_SUFFIXES):
        msg = (f"probabilities are written as {' or '.join(PROBABILITY_SUFFIXES)} (one "
               f"component per class); {path.name} is neither")
        raise ScanWriteError(msg)
    if probabilities.ndim != geometry.ndim + 1:
        msg = (f"probabilities of shape {probabilities.shape} do not fit a {geometry.ndim}D "
               "grid: give (classes, *spatial)")
        raise ValueError(msg)
    image = sitk.GetImageFromArray(np.moveaxis(probabilities.astype(np.float32), 0, -1),
                                   isVector=True)
    apply_geometry(image, geometry)
    return _write_image(image, path, overwrite=overwrite)
