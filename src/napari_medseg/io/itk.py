"""SimpleITK <-> :class:`Scan` / :class:`LabelMap`, and the readers/writers built on SimpleITK.

SimpleITK (ITK) reads and writes NIfTI, NRRD and MetaImage with their geometry; we convert its
(x, y, z) geometry to our array-axis order (see :mod:`napari_medseg.scan`) and back.
"""

from __future__ import annotations

import contextlib
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt
import SimpleITK as sitk

from napari_medseg.errors import ScanReadError, UnsupportedScanError
from napari_medseg.io.formats import suffix_of
from napari_medseg.io.limits import MAX_SCAN_BYTES, check_declared_size
from napari_medseg.io.text_headers import check_metaimage_header, check_nrrd_header
from napari_medseg.scan import Geometry, LabelMap, Scan

#: ITK's reader for each suffix whose header we check first (so that no other IO, chosen by
#: content, reads the file instead) and the check.
_CHECKED_IO = {
    ".nrrd": ("NrrdImageIO", check_nrrd_header),
    ".nhdr": ("NrrdImageIO", check_nrrd_header),
    ".mha": ("MetaImageIO", check_metaimage_header),
    ".mhd": ("MetaImageIO", check_metaimage_header),
}

#: Metadata key under which we store label class names in NRRD / MetaImage headers.
CLASS_NAMES_KEY = "medseg_class_names"


def geometry_of(image: sitk.Image) -> Geometry:
    """Geometry of a SimpleITK image, in array-axis order."""
    return Geometry.from_itk(image.GetSpacing(), image.GetOrigin(), image.GetDirection())


def scan_to_sitk(scan: Scan | LabelMap) -> sitk.Image:
    """A SimpleITK image with the scan's voxels and geometry (the array is copied)."""
    image = sitk.GetImageFromArray(np.ascontiguousarray(scan.array))
    apply_geometry(image, scan.geometry)
    return image


def apply_geometry(image: sitk.Image, geometry: Geometry) -> None:
    """Set spacing, origin and direction of ``image`` in place from ``geometry``."""
    spacing, origin, direction = geometry.to_itk()
    image.SetSpacing(spacing)
    image.SetOrigin(origin)
    image.SetDirection(direction)


def sitk_to_scan(
    image: sitk.Image,
    *,
    modality: str = "unknown",
    metadata: dict[str, str] | None = None,
    source: Path | None = None,
) -> Scan:
    """A :class:`Scan` from a single-component SimpleITK image (2D or 3D)."""
    geometry = geometry_of(image)
    array = sitk.GetArrayFromImage(image)
    return Scan(
        array=array,
        geometry=geometry,
        modality=modality,
        metadata=dict(metadata or {}),
        source=source,
    )


def header_metadata(reader: sitk.ImageFileReader) -> dict[str, str]:
    """All header key/value pairs a reader saw (after ``ReadImageInformation``)."""
    out: dict[str, str] = {}
    for key in reader.GetMetaDataKeys():
        # keys that are not UTF-8 come back as strings SimpleITK cannot take back (TypeError)
        with contextlib.suppress(RuntimeError, UnicodeDecodeError, TypeError):
            out[key] = reader.GetMetaData(key)
    return out


def check_header(path: Path, size: tuple[int, ...], components: int, pixel_bytes: int) -> None:
    """Refuse 4D, 1D, empty and absurdly large images before their pixels are read."""
    ndim = len(size)
    if ndim > 3:
        msg = (
            f"{path.name} is a {ndim}D image of size {size}; napari-medseg works on one 2D or "
            "3D volume at a time: extract a single volume (e.g. one time point) first"
        )
        raise UnsupportedScanError(msg)
    if ndim < 2:
        msg = f"{path.name} has {ndim} dimension(s); a scan has 2 or 3"
        raise UnsupportedScanError(msg)
    if any(s <= 0 for s in size):
        msg = f"{path.name} claims an empty grid of size {size}"
        raise ScanReadError(msg)
    nbytes = int(np.prod(np.asarray(size, dtype=np.float64))) * components * pixel_bytes
    if nbytes > MAX_SCAN_BYTES:
        msg = (
            f"{path.name} claims {size} voxels x {components} component(s) "
            f"({nbytes / 1024**3:.1f} GiB), more than the {MAX_SCAN_BYTES / 1024**3:.0f} GiB "
            "napari-medseg reads at once; the header is probably corrupt, or crop the scan first"
        )
        raise UnsupportedScanError(msg)


def read_image_file(
    path: Path, *, max_components: int = 1
) -> tuple[sitk.Image, dict[str, str]]:
    """Read one file with SimpleITK, checking its header first; errors become ScanReadError.

    Images with more than ``max_components`` values per voxel (vector or colour volumes) are
    refused before their pixels are read.  NRRD and MetaImage headers are parsed and checked
    by us before ITK sees them (:mod:`napari_medseg.io.text_headers`); for other formats the
    size ITK reports is checked against the file size (:mod:`napari_medseg.io.limits`).
    """
    reader = sitk.ImageFileReader()
    reader.SetFileName(str(path))
    checked = _CHECKED_IO.get(suffix_of(path))
    if checked is not None:
        io_name, check = checked
        check(path)
        reader.SetImageIO(io_name)
    try:
        reader.ReadImageInformation()
    except RuntimeError as exc:
        msg = f"{path.name} could not be read as an image: {_itk_reason(exc)}"
        raise ScanReadError(msg) from exc
    size = tuple(int(s) for s in reader.GetSize())
    components = int(reader.GetNumberOfComponents())
    try:
        pixel_bytes = sitk.Image([1, 1], reader.GetPixelID()).GetSizeOfPixelComponent()
    except RuntimeError as exc:
        msg = f"{path.name} has a pixel type napari-medseg cannot hold: {_itk_reason(exc)}"
        raise UnsupportedScanError(msg) from exc
    check_header(path, size, components, pixel_bytes)
    if checked is None:
        declared = int(np.prod(np.asarray(size, dtype=np.float64))) * components * pixel_bytes
        check_declared_size(path.name, declared, path.stat().st_size, encoding="codec")
    if components > max_components:
        msg = (
            f"{path.name} has {components} values per voxel (a vector, colour or multi-channel "
            "image); napari-medseg reads single-channel scans: split the channels first"
        )
        raise UnsupportedScanError(msg)
    metadata = header_metadata(reader)
    try:
        image = reader.Execute()
    except RuntimeError as exc:
        msg = (
            f"{path.name} has a readable header but its voxel data could not be read "
            f"(truncated or corrupt file?): {_itk_reason(exc)}"
        )
        raise ScanReadError(msg) from exc
    return image, metadata


def _itk_reason(exc: BaseException) -> str:
    """The informative last line of an ITK exception message."""
    lines = [ln.strip() for ln in str(exc).splitlines() if ln.strip()]
    for line in reversed(lines):
        if not line.startswith(("itk::", "Location", "File:", "Line:", "Description: ")):
            return line[:300]
    return lines[-1][:300] if lines else type(exc).__name__


def to_label_array(array: npt.NDArray[Any], name: str = "the file"
                   ) -> npt.NDArray[np.integer[Any]]:
    """Integer array for a label map: integer dtypes kept, whole-number floats converted;
    ``name`` (the file's) goes into the error message."""
    if np.issubdtype(array.dtype, np.integer):
        return array
    if array.dtype == np.bool_:
        return array.astype(np.uint8)
    if not np.all(np.isfinite(array)) or not np.all(np.equal(np.mod(array, 1), 0)):
        msg = f"{name} holds non-integer values, so it is not a label map; open it as a scan"
        raise UnsupportedScanError(msg)
    lo, hi = (float(array.min()), float(array.max())) if array.size else (0.0, 0.0)
    for dtype in (np.uint8, np.uint16, np.int16, np.int32):
        info = np.iinfo(dtype)
        if info.min <= lo and hi <= info.max:
            return array.astype(dtype)
    return array.astype(np.int64)
