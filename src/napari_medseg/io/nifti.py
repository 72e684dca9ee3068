"""NIfTI reading: nibabel parses the header and affine, we stream the voxels.

ITK's NIfTI reader silently zero-fills truncated files, and nibabel's gzip path is slower than
ITK's; so nibabel gives the header (shape, dtype, sform/qform affine, scaling) and we read the
voxels ourselves: ``.nii`` with one ``numpy.fromfile``, ``.nii.gz`` by streaming the inflater
(ISA-L's when installed, else zlib) straight into the output array (peak memory one array; a
truncated stream or a bad CRC is an error).
Writing goes through SimpleITK like every other format (round-trip tests reopen in nibabel).
"""

from __future__ import annotations

from io import BufferedReader
from pathlib import Path
from typing import Any

import nibabel as nib
import numpy as np
import numpy.typing as npt

from napari_medseg.errors import ScanReadError, UnsupportedScanError
from napari_medseg.io.content import checked_geometry
from napari_medseg.io.itk import check_header
from napari_medseg.io.limits import check_declared_size
from napari_medseg.scan import Geometry

try:  # ISA-L inflates about twice as fast as zlib, with the same API
    from isal import isal_zlib as zlib
except ImportError:  # pragma: no cover - platforms without an isal wheel
    import zlib  # type: ignore[no-redef]

_INFLATE_ERROR: type[Exception] = zlib.error  # type: ignore[assignment]

#: (z, y, x) <-> (x, y, z) on both sides of a homogeneous matrix
_REVERSE = np.eye(4)[[2, 1, 0, 3]]
_RAS_TO_LPS = np.diag([-1.0, -1.0, 1.0, 1.0])


def geometry_from_nifti_affine(affine: npt.ArrayLike, ndim: int) -> Geometry:
    """Our geometry from nibabel's RAS voxel-to-world affine (index order x, y, z)."""
    lps = _RAS_TO_LPS @ np.asarray(affine, dtype=np.float64)
    geometry = Geometry.from_affine(_REVERSE @ lps @ _REVERSE)
    if ndim == 2:  # (x, y) image stored as a 3D header with one slice
        return Geometry(
            spacing=geometry.spacing[1:],
            origin=geometry.origin[1:],
            direction=geometry.direction[1:, 1:],
        )
    return geometry


def read_nifti(path: Path) -> tuple[npt.NDArray[Any], Geometry, dict[str, str]]:
    """Voxels ``(Z, Y, X)`` (or ``(Y, X)``), geometry and a few header fields of a NIfTI file."""
    try:
        image = nib.load(str(path))
    except Exception as exc:  # nibabel raises many types for a bad header
        msg = f"{path.name} could not be read as NIfTI: {exc}"
        raise ScanReadError(msg) from exc
    if not isinstance(image, nib.Nifti1Image | nib.Nifti2Image):
        msg = f"{path.name} is not a NIfTI-1/2 image (nibabel read it as {type(image).__name__})"
        raise ScanReadError(msg)
    header = image.header
    shape = tuple(int(s) for s in image.shape)
    while len(shape) > 3 and shape[-1] == 1:  # (x, y, z, 1): a 3D volume in a 4D header
        shape = shape[:-1]
    dtype = header.get_data_dtype()
    if dtype.fields is not None:
        msg = f"{path.name} holds RGB/compound voxels; napari-medseg reads single-channel scans"
        raise UnsupportedScanError(msg)
    check_header(path, shape[::-1], 1, dtype.itemsize)
    n_voxels = int(np.prod(shape))
    # some writers (ITK among them) leave vox_offset at 0 in single files: voxels then start
    # right after the header and its extensions
    first_free = int(header.sizeof_hdr) + 4 + int(header.extensions.get_sizeondisk())
    offset = max(int(header.get_data_offset()), first_free)
    raw = _read_voxels(path, offset, dtype, n_voxels).reshape(shape, order="F")
    slope, inter = header.get_slope_inter()
    if (slope is not None and slope != 1.0) or (inter is not None and inter != 0.0):
        raw = raw.astype(np.float32) * np.float32(slope if slope is not None else 1.0)
        raw += np.float32(inter or 0.0)
    array = raw.T  # (x, y, z) Fortran order -> (z, y, x) C order, no copy
    if not array.flags.c_contiguous:
        array = np.ascontiguousarray(array)
    geometry = checked_geometry(path.name,
                                lambda: geometry_from_nifti_affine(image.affine, array.ndim))
    metadata = {key: _text_field(header, key) for key in ("descrip", "intent_name", "aux_file")}
    return array, geometry, {k: v for k, v in metadata.items() if v or k == "descrip"}


def _text_field(header: Any, key: str) -> str:
    """A NUL-terminated text field of a NIfTI header (``descrip``, ``intent_name``...)."""
    raw = bytes(np.asarray(header[key]).tobytes()).split(b"\x00", 1)[0]
    return raw.decode("utf-8", errors="replace").strip()


_CHUNK = 1 << 20


def _truncated(path: Path, detail: str) -> ScanReadError:
    msg = (
        f"{path.name} has a readable header but its voxel data could not be read "
        f"(truncated or corrupt file?): {detail}"
    )
    return ScanReadError(msg)


def _read_voxels(path: Path, offset: int, dtype: np.dtype[Any], n: int) -> npt.NDArray[Any]:
    """``n`` voxels of ``dtype`` starting ``offset`` bytes into the (decompressed) file."""
    nbytes = n * dtype.itemsize
    if path.name.lower().endswith(".gz"):
        # a gzip stream expands at most 1032-fold: refuse a header claiming more than that
        # before allocating the buffer
        check_declared_size(path.name, offset + nbytes, path.stat().st_size, encoding="deflate")
        with path.open("rb") as fh:
            buffer = _gunzip_into(fh, offset + nbytes, path)
        array = buffer[offset:].view(dtype)
    else:
        if path.stat().st_size < offset + nbytes:
            raise _truncated(path, f"{path.stat().st_size} bytes, expected {offset + nbytes}")
        array = np.fromfile(path, dtype=dtype, count=n, offset=offset)
    if not array.dtype.isnative:
        array = array.astype(array.dtype.newbyteorder("="))
    return array


def _gunzip_into(fh: BufferedReader, size: int, path: Path) -> npt.NDArray[np.uint8]:
    """Decompress a gzip stream into a new uint8 array of ``size`` bytes (the rest is ignored).

    The buffer starts at the size the gzip trailer records (ISIZE: the uncompressed size
    modulo 4 GiB) and grows only while the stream delivers more, so a damaged header that
    declares more than the stream holds costs no allocation of what it declares."""
    capacity = min(size, max(_gzip_size_hint(fh), _CHUNK))
    out = np.empty(capacity, dtype=np.uint8)
    inflater = zlib.decompressobj(wbits=31)
    pos = 0
    try:
        while pos < size:
            chunk = fh.read(_CHUNK)
            if not chunk:
                break
            if inflater.eof and inflater.unused_data:  # a multi-member gzip file
                chunk = inflater.unused_data + chunk
                inflater = zlib.decompressobj(wbits=31)
            piece = inflater.decompress(chunk, min(size - pos, _CHUNK))
            while True:
                if pos + len(piece) > out.size:  # more than the trailer said: grow
                    grown = np.empty(min(size, max(2 * out.size, pos + len(piece))),
                                     dtype=np.uint8)
                    grown[:pos] = out[:pos]
                    out = grown
                out[pos : pos + len(piece)] = np.frombuffer(piece, dtype=np.uint8)
                pos += len(piece)
                if not inflater.unconsumed_tail or pos >= size:
                    break
                piece = inflater.decompress(inflater.unconsumed_tail, min(size - pos, _CHUNK))
    except _INFLATE_ERROR as exc:
        raise _truncated(path, f"gzip stream is corrupt ({exc})") from exc
    if pos < size:
        raise _truncated(path, f"{pos} bytes after decompression, expected {size}")
    return out


def _gzip_size_hint(fh: BufferedReader) -> int:
    """The uncompressed size a gzip file's trailer records (modulo 4 GiB; 0 when unreadable);
    ``fh`` is left at the start."""
    try:
        fh.seek(-4, 2)
        tail = fh.read(4)
    except OSError:
        tail = b""
    fh.seek(0)
    return int.from_bytes(tail, "little") if len(tail) == 4 else 0
