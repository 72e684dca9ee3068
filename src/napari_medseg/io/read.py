"""``read_scan`` and ``read_label_map``: any supported file or DICOM folder to a Scan / LabelMap."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt
import SimpleITK as sitk

from napari_medseg.errors import UnsupportedScanError
from napari_medseg.io.content import check_finite
from napari_medseg.io.dicom import read_dicom_series
from napari_medseg.io.formats import Format, detect_format
from napari_medseg.io.itk import CLASS_NAMES_KEY, read_image_file, to_label_array
from napari_medseg.io.modality import read_modality
from napari_medseg.io.nifti import read_nifti
from napari_medseg.scan import MODALITIES, Geometry, LabelMap, Scan, default_class_names


def _to_grey(image: sitk.Image, path: Path) -> tuple[npt.NDArray[Any], Geometry]:
    """Array and geometry of a 2D image; colour is reduced to grey (Rec. 601 luma)."""
    from napari_medseg.io.itk import geometry_of

    array = sitk.GetArrayFromImage(image)
    geometry = geometry_of(image)
    if image.GetNumberOfComponentsPerPixel() > 1:
        if image.GetDimension() != 2:
            msg = f"{path.name} is a colour volume; napari-medseg reads single-channel scans"
            raise UnsupportedScanError(msg)
        rgb = array[..., :3].astype(np.float32)
        if np.array_equal(rgb[..., 0], rgb[..., 1]) and np.array_equal(rgb[..., 0], rgb[..., 2]):
            array = array[..., 0]
        else:
            luma = rgb @ np.array([0.299, 0.587, 0.114], dtype=np.float32)
            array = np.rint(luma).astype(array.dtype)
    return array, geometry


def read_scan(
    path: str | Path,
    *,
    series: str | int | None = None,
    modality: str | None = None,
    nan_policy: str = "raise",
) -> Scan:
    """Read a scan with its geometry.

    Parameters
    ----------
    path
        A NIfTI, NRRD, MetaImage, PNG/JPEG/TIFF file, a DICOM file or a folder of DICOM files.
    series
        For a DICOM folder holding several series: the index or UID to read (see
        :func:`napari_medseg.io.list_dicom_series`).  Without it such a folder raises
        :class:`~napari_medseg.errors.AmbiguousDicomSeriesError` listing the series.
    modality
        Override the modality read from the header or guessed from intensities.  Otherwise
        :func:`~napari_medseg.io.modality.read_modality` decides (headers, then the file
        name, then intensities) and ``scan.modality_reason`` says how.
    nan_policy
        ``"raise"`` (default) refuses NaN/inf voxels; ``"fill"`` replaces them with the minimum.
    """
    path = Path(path)
    fmt = detect_format(path)
    if fmt is Format.DICOM:
        scan = read_dicom_series(path, series=series)
        scan.array = check_finite(scan.array, path.name, nan_policy=nan_policy)
    else:
        if fmt is Format.NIFTI:
            array, geometry, metadata = read_nifti(path)
        else:
            max_components = 4 if fmt in (Format.IMAGE2D, Format.TIFF) else 1
            image, metadata = read_image_file(path, max_components=max_components)
            array, geometry = _to_grey(image, path)
            del image
        array = check_finite(array, path.name, nan_policy=nan_policy)
        scan = Scan(array=array, geometry=geometry, metadata=metadata, source=path)
    guess = read_modality(scan.array, scan.metadata, name=path.name, spacing=scan.spacing)
    scan.modality, scan.modality_reason = guess.modality, guess.reason
    scan.mr_contrast, scan.skull_stripped = guess.mr_contrast, guess.skull_stripped
    if modality is not None:
        if modality not in MODALITIES:
            msg = f"modality must be one of {', '.join(MODALITIES)}, got {modality!r}"
            raise ValueError(msg)
        if modality != scan.modality:
            scan.modality, scan.modality_reason = modality, "given by the caller"
            scan.mr_contrast = scan.mr_contrast if modality == "MR" else None
            scan.skull_stripped = scan.skull_stripped if modality == "MR" else None
    return scan


def class_names_from_metadata(metadata: dict[str, str]) -> dict[int, str]:
    """Class names stored by :func:`write_label_map` in a header (NRRD / MetaImage)."""
    text = metadata.get(CLASS_NAMES_KEY, "")
    if not text:
        return {}
    try:
        raw = json.loads(text)
        return {int(k): str(v) for k, v in raw.items()}
    except (ValueError, AttributeError):
        return {}


def label_values(array: npt.NDArray[Any]) -> list[int]:
    """The label values present in an integer array, ascending (``[0]`` when empty).

    Counts with ``bincount`` for small non-negative integers (one pass, no sort)."""
    if not array.size:
        return [0]
    if array.dtype in (np.uint8, np.uint16, np.bool_):
        counts = np.bincount(array.ravel().astype(np.intp, copy=False))
        return [int(v) for v in np.flatnonzero(counts)]
    return [int(v) for v in np.unique(array)]


def label_map_from_scan(scan: Scan) -> LabelMap:
    """A scan read from a label file, as the :class:`LabelMap` it holds.

    Float voxels holding whole numbers (a common export) become integers, any other float
    content is refused (:class:`~napari_medseg.errors.UnsupportedScanError`); class names
    come from the header (NRRD / MetaImage, see :func:`write_label_map`), else ``class k``
    for every value present.
    """
    array = to_label_array(scan.array, scan.source.name if scan.source else scan.name)
    names = class_names_from_metadata(scan.metadata) or default_class_names(
        label_values(array))
    return LabelMap(array=array, geometry=scan.geometry, class_names=names, source=scan.source,
                    display_name=scan.display_name)


def read_label_map(
    path: str | Path, *, like: Scan | None = None, series: str | int | None = None
) -> LabelMap:
    """Read an integer label image; with ``like``, check it lies on that scan's grid.

    Float files holding whole numbers (a common export) are converted to integers; any other
    float content is refused.  A grid that does not match ``like`` raises
    :class:`~napari_medseg.errors.GeometryMismatchError` naming what differs.
    """
    labels = label_map_from_scan(read_scan(path, series=series))
    if like is not None:
        labels.check_matches(like)
    return labels
