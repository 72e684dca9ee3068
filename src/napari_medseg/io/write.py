"""``write_scan`` and ``write_label_map``: atomic, non-clobbering, geometry kept."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import SimpleITK as sitk

from napari_medseg.io.atomic import write_atomically
from napari_medseg.io.formats import check_writable_suffix
from napari_medseg.io.itk import CLASS_NAMES_KEY, scan_to_sitk
from napari_medseg.scan import LabelMap, Scan

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
