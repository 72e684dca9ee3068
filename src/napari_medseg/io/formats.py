"""Which file formats napari-medseg reads and writes, decided from a path."""

from __future__ import annotations

from enum import Enum
from pathlib import Path

from napari_medseg.errors import ScanReadError, UnsupportedFormatError


class Format(str, Enum):
    NIFTI = "nifti"
    NRRD = "nrrd"
    META = "metaimage"
    DICOM = "dicom"
    IMAGE2D = "image2d"  # PNG / JPEG / BMP (always 2D)
    TIFF = "tiff"  # 2D or 3D (multi-page)


_SUFFIXES: dict[str, Format] = {
    ".nii.gz": Format.NIFTI,
    ".nii": Format.NIFTI,
    ".nrrd": Format.NRRD,
    ".nhdr": Format.NRRD,
    ".mha": Format.META,
    ".mhd": Format.META,
    ".dcm": Format.DICOM,
    ".dicom": Format.DICOM,
    ".ima": Format.DICOM,
    ".png": Format.IMAGE2D,
    ".jpg": Format.IMAGE2D,
    ".jpeg": Format.IMAGE2D,
    ".bmp": Format.IMAGE2D,
    ".tif": Format.TIFF,
    ".tiff": Format.TIFF,
}

#: Suffixes that :func:`napari_medseg.io.read_scan` opens (plus folders of DICOM files).
READ_SUFFIXES = tuple(_SUFFIXES)
#: Suffixes that the writers produce; all keep spacing, origin and direction.
WRITE_SUFFIXES = (".nii.gz", ".nii", ".nrrd", ".nhdr", ".mha", ".mhd")
#: Label maps can also be written as DICOM-SEG (on the DICOM series they were made on).
LABEL_WRITE_SUFFIXES = (*WRITE_SUFFIXES, ".dcm")


def suffix_of(path: Path) -> str:
    """The image suffix of ``path`` in lower case (``".nii.gz"`` counts as one)."""
    name = path.name.lower()
    for suffix in _SUFFIXES:
        if name.endswith(suffix):
            return suffix
    return path.suffix.lower()


def is_dicom_file(path: Path) -> bool:
    """True when the file carries the DICOM Part 10 preamble (``DICM`` at byte 128)."""
    try:
        with path.open("rb") as fh:
            fh.seek(128)
            return fh.read(4) == b"DICM"
    except OSError:
        return False


def detect_format(path: Path) -> Format:
    """The format of a file or folder; raises a clear error when it is none we read."""
    if not path.exists():
        msg = f"{path} does not exist; check the path"
        raise ScanReadError(msg)
    if path.is_dir():
        return Format.DICOM
    if path.stat().st_size == 0:
        msg = f"{path.name} is an empty file (0 bytes); it holds no image"
        raise ScanReadError(msg)
    fmt = _SUFFIXES.get(suffix_of(path))
    if fmt is not None:
        return fmt
    if is_dicom_file(path):
        return Format.DICOM
    msg = (
        f"{path.name}: napari-medseg does not read '{path.suffix or path.name}' files; "
        f"supported are {', '.join(READ_SUFFIXES)} and folders of DICOM files"
    )
    raise UnsupportedFormatError(msg)


def check_writable_suffix(path: Path, *, labels: bool = False) -> str:
    """The suffix of an output path, or a clear error when we cannot write that format.

    ``labels``: the output is a label map, which may also be a DICOM-SEG (``.dcm``).
    """
    suffix = suffix_of(path)
    allowed = LABEL_WRITE_SUFFIXES if labels else WRITE_SUFFIXES
    if suffix not in allowed:
        msg = (
            f"cannot write {path.name}: output formats that keep the scan geometry are "
            f"{', '.join(allowed)}"
        )
        raise UnsupportedFormatError(msg)
    return suffix
