"""Fuzzing the scan readers: seeds cut from real scans, mutations, and a sandboxed worker pool.

Used by ``tests/io/test_fuzz_readers.py`` (a short run in CI) and
``benchmarks/fuzz_readers.py`` (the long run, ``--cases 5000``).

* **Seeds** are small crops of the real scans in ``../shared/data`` and ``sample_volumes/``,
  written in every format we read: NIfTI-1 (``.nii``, ``.nii.gz``, big-endian), NIfTI-2,
  NRRD (raw, gzip, detached ``.nhdr``), MetaImage (``.mha`` raw and zlib, ``.mhd`` + ``.raw``)
  and DICOM (a 3-slice series cut from the real MR series, one real JPEG 2000 CT slice).
* **Mutations** are plain tuples (JSON-able, so a failing case can be rebuilt and reported):
  generic byte damage (truncation, bit flips, overwrites, deletions, appended junk), header
  fields set to hostile values (NIfTI dims/datatype/vox_offset/pixdim/scaling, NRRD and
  MetaImage header keys, DICOM elements and element lengths), absurd dimensions (10^9 voxels
  and more) and gzip/zlib stream damage.  Hypothesis strategies draw them
  (:func:`case_strategy`).
* **The pool** runs each reader on each case in a separate worker process under
  ``RLIMIT_AS`` (an absurd allocation becomes ``MemoryError``, never swapping), with a
  per-call deadline (a hang is killed and counted) and a fresh worker after any death (a
  segfault is counted as a crash, not lost).

Outcomes per (case, reader): ``scan`` (a valid Scan / LabelMap / layer list), ``clear_error``
(a :class:`~napari_medseg.errors.MedsegError` naming the file), and the failures
``unclear_error`` (our error, but the message does not name the file), ``memory`` (a
MemoryError or a failed allocation reached the caller), ``other_exception`` (any other type),
``invalid_result``, ``crash`` (the worker died) and ``hang`` (past the deadline).
"""

from __future__ import annotations

import contextlib
import gzip
import json
import math
import os
import selectors
import shutil
import struct
import subprocess
import sys
import tempfile
import time
import warnings
from collections import Counter
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from tests.data_root import SHARED_DATA

REPO = Path(__file__).resolve().parents[2]
SAMPLE_VOLUMES = REPO / "sample_volumes"

READERS = ("read_scan", "read_label_map", "napari")
OK_OUTCOMES = ("scan", "clear_error")
FAIL_OUTCOMES = ("unclear_error", "memory", "other_exception", "invalid_result", "crash", "hang")
OUTCOMES = OK_OUTCOMES + FAIL_OUTCOMES

Mutation = tuple[Any, ...]


# ====================================================================== seeds
@dataclass(frozen=True)
class Seed:
    """One small real-derived input: a folder template holding ``files`` (name -> bytes)."""

    name: str
    fmt: str  # "nifti", "nifti2", "nrrd", "nhdr", "mha", "mhd", "dicom"
    files: dict[str, bytes]
    main: str  # the file a person opens (the folder for a DICOM series)
    gz: bool = False  # NIfTI stored gzip-compressed

    @property
    def family(self) -> str:
        """The format family results are counted under."""
        return {"nifti2": "nifti", "nhdr": "nrrd", "mhd": "mha"}.get(self.fmt, self.fmt)


def _nifti_bytes(image: Any, *, gz: bool) -> bytes:
    raw = image.to_bytes()
    return gzip.compress(raw, compresslevel=6, mtime=0) if gz else raw


def _sitk_files(image: Any, name: str, *, compress: bool) -> dict[str, bytes]:
    import SimpleITK as sitk

    with tempfile.TemporaryDirectory() as tmp:
        sitk.WriteImage(image, str(Path(tmp) / name), useCompression=compress)
        return {p.name: p.read_bytes() for p in sorted(Path(tmp).iterdir())}


def _dicom_elements(data: bytes) -> list[tuple[int, int, bytes, int, int]]:
    """Top-level elements of an explicit-VR little-endian DICOM file:
    ``(position, tag, VR, header length, value length)``; stops at an undefined length."""
    long_vrs = {b"OB", b"OW", b"OF", b"SQ", b"UT", b"UN", b"OD", b"OL", b"OV", b"UC", b"UR"}
    out = []
    pos = 132
    while pos + 8 <= len(data):
        group, element = struct.unpack_from("<HH", data, pos)
        vr = data[pos + 4 : pos + 6]
        if vr in long_vrs:
            if pos + 12 > len(data):
                break
            length, head = struct.unpack_from("<I", data, pos + 8)[0], 12
        else:
            length, head = struct.unpack_from("<H", data, pos + 6)[0], 8
        out.append((pos, (group << 16) | element, vr, head, length))
        if length == 0xFFFFFFFF:
            break
        pos += head + length
    return out


def _set_dicom_value(data: bytes, tag: int, value: bytes) -> bytes:
    """``data`` with element ``tag`` holding ``value`` (padded to even length); unchanged if
    the element is absent or its VR has a 4-byte length we do not resize."""
    for pos, t, vr, head, length in _dicom_elements(data):
        if t != tag or length == 0xFFFFFFFF:
            continue
        if len(value) % 2:
            value += b"\x00" if vr == b"UI" else b" "
        if head == 8:
            header = data[pos : pos + 6] + struct.pack("<H", min(len(value), 0xFFFF))
        else:
            header = data[pos : pos + 8] + struct.pack("<I", len(value))
        return data[:pos] + header + value + data[pos + head + length :]
    return data


def _set_dicom_length(data: bytes, tag: int, length: int) -> bytes:
    """``data`` with the length field of element ``tag`` overwritten (value left as is)."""
    for pos, t, _vr, head, _length in _dicom_elements(data):
        if t == tag:
            if head == 8:
                return data[: pos + 6] + struct.pack("<H", length & 0xFFFF) + data[pos + 8 :]
            return data[: pos + 8] + struct.pack("<I", length & 0xFFFFFFFF) + data[pos + 12 :]
    return data


def _small_mr_dicom(path: Path, crop: int) -> bytes:
    """A real MR slice with its pixel matrix cut to ``crop`` x ``crop`` (header kept)."""
    import numpy as np

    data = path.read_bytes()
    rows = cols = 256
    for pos, tag, _vr, head, length in _dicom_elements(data):
        if tag == 0x7FE00010:
            pixels = np.frombuffer(data[pos + head : pos + head + length], "<i2")
            pixels = pixels.reshape(rows, cols)
            y0, x0 = rows // 2 - crop // 2, cols // 2 - crop // 2
            cut = np.ascontiguousarray(pixels[y0 : y0 + crop, x0 : x0 + crop]).tobytes()
            data = data[:pos] + data[pos : pos + 8] + struct.pack("<I", len(cut)) + cut
            break
    data = _set_dicom_value(data, 0x00280010, struct.pack("<H", crop))
    return _set_dicom_value(data, 0x00280011, struct.pack("<H", crop))


def build_seeds() -> list[Seed]:
    """The seed inputs, cut from real scans (a few KB each, so every read takes milliseconds)."""
    import nibabel as nib
    import numpy as np
    import SimpleITK as sitk

    seeds: list[Seed] = []
    ct = nib.load(str(SAMPLE_VOLUMES / "ct_abdomen.nii.gz"))
    ct_crop = ct.slicer[50:74, 40:60, 10:16]  # (x, y, z) 24 x 20 x 6, header and affine kept
    labels = nib.load(str(SAMPLE_VOLUMES / "ct_abdomen_organs.nii.gz")).slicer[50:74, 40:60, 10:16]
    mr = nib.load(str(SAMPLE_VOLUMES / "mr_abdomen.nii.gz")).slicer[40:60, 30:50, 8:12]
    for name, image in (("ct", ct_crop), ("organs", labels)):
        seeds.append(Seed(f"nifti-{name}", "nifti", {f"{name}.nii": _nifti_bytes(image, gz=False)},
                          f"{name}.nii"))
        seeds.append(Seed(f"nifti-{name}-gz", "nifti",
                          {f"{name}.nii.gz": _nifti_bytes(image, gz=True)}, f"{name}.nii.gz",
                          gz=True))
    # MR with intensity scaling, big-endian header and data
    scaled = nib.Nifti1Image(np.asarray(mr.dataobj).astype(">i2"), mr.affine)
    scaled.header.set_data_dtype(">i2")
    scaled.header.set_slope_inter(0.5, 10.0)
    seeds.append(Seed("nifti-mr-bigendian", "nifti", {"mr.nii": _nifti_bytes(scaled, gz=False)},
                      "mr.nii"))
    two_d = nib.Nifti1Image(np.asarray(ct_crop.dataobj)[:, :, 3:4], ct_crop.affine)
    seeds.append(Seed("nifti-2d", "nifti", {"slice.nii": _nifti_bytes(two_d, gz=False)},
                      "slice.nii"))
    nifti2 = nib.Nifti2Image(np.asarray(ct_crop.dataobj), ct_crop.affine)
    seeds.append(Seed("nifti2-ct-gz", "nifti2", {"ct2.nii.gz": _nifti_bytes(nifti2, gz=True)},
                      "ct2.nii.gz", gz=True))

    brain = sitk.ReadImage(str(SAMPLE_VOLUMES / "mr_brain_lesion.nrrd"))[100:132, 110:134, 10:14]
    lesion = sitk.ReadImage(str(SAMPLE_VOLUMES / "mr_brain_lesion_label.nrrd"))[100:132,
                                                                                 110:134, 10:14]
    seeds.append(Seed("nrrd-mr-raw", "nrrd", _sitk_files(brain, "mr.nrrd", compress=False),
                      "mr.nrrd"))
    seeds.append(Seed("nrrd-mr-gzip", "nrrd", _sitk_files(brain, "mr.nrrd", compress=True),
                      "mr.nrrd"))
    seeds.append(Seed("nrrd-label-gzip", "nrrd", _sitk_files(lesion, "les.nrrd", compress=True),
                      "les.nrrd"))
    seeds.append(Seed("nhdr-mr", "nhdr", _sitk_files(brain, "mr.nhdr", compress=False),
                      "mr.nhdr"))

    head = sitk.ReadImage(str(SHARED_DATA / "ct_head" / "head_ct.nii.gz"))[100:124, 100:124,
                                                                           50:56]
    seeds.append(Seed("mha-ct-raw", "mha", _sitk_files(head, "ct.mha", compress=False),
                      "ct.mha"))
    seeds.append(Seed("mha-ct-zlib", "mha", _sitk_files(head, "ct.mha", compress=True),
                      "ct.mha"))
    seeds.append(Seed("mhd-ct", "mhd", _sitk_files(head, "ct.mhd", compress=False), "ct.mhd"))

    mr_series = SHARED_DATA / "dicom_series_mr"
    files = {f"brain_{i:03d}.dcm": _small_mr_dicom(mr_series / f"brain_{i:03d}.dcm", 24)
             for i in (2, 3, 4)}
    seeds.append(Seed("dicom-mr-series", "dicom", files, "."))
    ct_slice = sorted((SHARED_DATA / "dicom_series_ct").iterdir())[5]
    seeds.append(Seed("dicom-ct-jpeg2000", "dicom", {"ct.dcm": ct_slice.read_bytes()}, "."))
    seeds += pydicom_seeds()
    seeds += multiframe_seeds(mr_series)
    return seeds


#: pydicom's own test files, one per transfer syntax family a reader meets (each a real
#: scan pydicom ships): deflate, JPEG baseline/extended, JPEG-LS, JPEG 2000, RLE, big-endian,
#: implicit VR; and multi-frame grey volumes (RT Dose, RLE and big-endian).
PYDICOM_SEEDS = {
    "dicom-deflate": "image_dfl.dcm",
    "dicom-jpeg-baseline": "JPEG-lossy.dcm",
    "dicom-jpeg-extended": "JPGExtended.dcm",
    "dicom-jpeg-ls": "MR_small_jpeg_ls_lossless.dcm",
    "dicom-jpeg2000": "MR_small_jp2klossless.dcm",
    "dicom-rle": "MR_small_RLE.dcm",
    "dicom-big-endian": "MR_small_bigendian.dcm",
    "dicom-implicit": "MR_small_implicit.dcm",
    "dicom-multiframe-rle": "rtdose_rle.dcm",
    "dicom-multiframe-big-endian": "rtdose_expb.dcm",
}


def pydicom_seeds() -> list[Seed]:
    """:data:`PYDICOM_SEEDS` that the installed pydicom carries (each alone in its folder)."""
    try:
        import pydicom
    except ImportError:
        return []
    folder = Path(pydicom.__file__).parent / "data" / "test_files"
    return [Seed(name, "dicom", {"x.dcm": (folder / file).read_bytes()}, ".")
            for name, file in PYDICOM_SEEDS.items() if (folder / file).is_file()]


def multiframe_seeds(mr_series: Path) -> list[Seed]:
    """Multi-frame grey volumes in Explicit VR Little Endian, whose top-level elements the
    DICOM mutations edit: pydicom's RT Dose (GridFrameOffsetVector) and an Enhanced MR of
    three real MR slices cut to 24 x 24 (functional groups)."""
    try:
        import pydicom
        from pydicom.uid import ExplicitVRLittleEndian
    except ImportError:
        return []
    from tests.io.multiframe_helpers import dataset_bytes, enhanced_dataset, sorted_slices

    dose = pydicom.dcmread(Path(pydicom.__file__).parent / "data" / "test_files"
                           / "rtdose.dcm")
    dose.file_meta.TransferSyntaxUID = ExplicitVRLittleEndian
    with warnings.catch_warnings():  # pydicom warns of the file's UIDs with leading zeros
        warnings.simplefilter("ignore")
        dose_bytes = dataset_bytes(dose)
    slices = sorted_slices(mr_series, [f"brain_{i:03d}.dcm" for i in (2, 3, 4)])
    enhanced = enhanced_dataset(slices, crop=24)
    return [Seed("dicom-multiframe-dose", "dicom", {"dose.dcm": dose_bytes}, "."),
            Seed("dicom-enhanced-mr", "dicom", {"mr.dcm": dataset_bytes(enhanced)}, ".")]


# ====================================================================== mutations
#: NIfTI-1 header fields: name -> (offset, struct format of one item, items)
NIFTI1_FIELDS: dict[str, tuple[int, str, int]] = {
    "sizeof_hdr": (0, "i", 1), "dim": (40, "h", 8), "intent_code": (68, "h", 1),
    "datatype": (70, "h", 1), "bitpix": (72, "h", 1), "pixdim": (76, "f", 8),
    "vox_offset": (108, "f", 1), "scl_slope": (112, "f", 1), "scl_inter": (116, "f", 1),
    "xyzt_units": (123, "B", 1), "qform_code": (252, "h", 1), "sform_code": (254, "h", 1),
    "quatern": (256, "f", 6), "srow": (280, "f", 12), "magic": (344, "4s", 1),
}
NIFTI2_FIELDS: dict[str, tuple[int, str, int]] = {
    "sizeof_hdr": (0, "i", 1), "datatype": (12, "h", 1), "bitpix": (14, "h", 1),
    "dim": (16, "q", 8), "pixdim": (104, "d", 8), "vox_offset": (168, "q", 1),
    "scl_slope": (176, "d", 1), "scl_inter": (184, "d", 1), "qform_code": (344, "i", 1),
    "sform_code": (348, "i", 1), "srow": (400, "d", 12), "magic": (4, "8s", 1),
}
NIFTI_DATATYPES = (0, 1, 2, 3, 4, 8, 16, 32, 64, 128, 256, 512, 768, 1024, 1280, 1536, 1792,
                   2048, 2304, 9999, -1, 32767)
HOSTILE_INTS = (0, 1, -1, 2, 3, 4, 7, 8, 9, 255, 256, 32767, -32768, 65535, 2**31 - 1,
                -(2**31), 10**9)
HOSTILE_FLOATS = (0.0, -0.0, -1.0, 1e-30, 1e-45, 1e30, 3.4e38, math.nan, math.inf, -math.inf,
                  0.5, 1e6)
#: Sizes whose product is at least 10^9 voxels (or overflows 32/64-bit arithmetic).
ABSURD_DIMS = ((1000, 1000, 1000), (32767, 32767, 32767), (65535, 65535, 1),
               (2**31 - 1, 2, 1), (100000, 100000, 2), (1, 1, 10**9), (46341, 46341, 1),
               (2**20, 2**20, 2**20))

NRRD_KEYS = ("dimension", "type", "sizes", "spacings", "space directions", "space origin",
             "encoding", "endian", "data file", "line skip", "byte skip", "kinds", "space",
             "space dimension", "measurement frame", "content")
MHA_KEYS = ("NDims", "DimSize", "ElementType", "ElementSpacing", "Offset", "TransformMatrix",
            "CompressedData", "CompressedDataSize", "ElementNumberOfChannels",
            "BinaryDataByteOrderMSB", "HeaderSize", "ElementDataFile", "ObjectType",
            "AnatomicalOrientation", "ElementSize", "BinaryData")
TEXT_VALUES = ("0", "-1", "1", "2", "3", "4", "1000000000", "99999999999999999999", "nan",
               "inf", "-inf", "1e308", "-1e308", "", "x", "1 2", "0 0 0", "-1 -1 -1",
               "1000 1000 1000", "100000 100000 100000", "4294967296 1 1", "nan nan nan",
               "0.0 0.0 0.0", "(nan,0,0) (0,nan,0) (0,0,nan)", "(0,0,0) (0,0,0) (0,0,0)",
               "(1,0,0) (0,1,0)", "none", "9" * 400, "\t", "1,2,3", "%d")
NRRD_VALUES = {
    "type": ("unknown", "block", "int64", "double", "uchar", "signed char", "float16"),
    "encoding": ("raw", "gzip", "bzip2", "ascii", "hex", "txt", "zip", "jpeg"),
    "endian": ("big", "little", "middle"),
    "data file": ("/dev/zero", "/dev/urandom", "/proc/self/mem", "../../../etc/passwd",
                  "missing.raw", "LIST", "img%03d.raw 1 100000 1", "img%d.raw -5 5 1 2",
                  "mr.raw", "."),
    "kinds": ("domain domain domain", "RGB-color domain domain", "list list list", "vector"),
    "space": ("left-posterior-superior", "scanner-xyz", "3D-right-handed-time", "bogus"),
    "sizes": ABSURD_DIMS,
}
MHA_VALUES = {
    "ElementType": ("MET_UCHAR", "MET_DOUBLE", "MET_LONG_LONG", "MET_OTHER", "MET_NONE",
                    "MET_FLOAT_ARRAY", "MET_STRING", "MET_UCHAR_ARRAY", "BOGUS"),
    "CompressedData": ("True", "False", "yes"),
    "CompressedDataSize": ("0", "1", "100000000000", "-1", "18446744073709551615"),
    "ElementDataFile": ("LOCAL", "/dev/zero", "/dev/urandom", "../../../etc/passwd",
                        "missing.raw", "LIST", "img%03d.raw 1 100000 1", "ct.raw", "."),
    "ElementNumberOfChannels": ("0", "3", "1000000", "-1"),
    "HeaderSize": ("-1", "0", "100000000000", "5"),
    "ObjectType": ("Image", "Mesh", "Tube", "Scene"),
    "DimSize": ABSURD_DIMS,
}
DICOM_TAGS = {
    "rows": 0x00280010, "columns": 0x00280011, "bits_allocated": 0x00280100,
    "bits_stored": 0x00280101, "high_bit": 0x00280102, "pixel_representation": 0x00280103,
    "samples_per_pixel": 0x00280002, "photometric": 0x00280004, "pixel_spacing": 0x00280030,
    "position": 0x00200032, "orientation": 0x00200037, "slice_thickness": 0x00180050,
    "instance_number": 0x00200013, "series_uid": 0x0020000E, "modality": 0x00080060,
    "rescale_slope": 0x00281053, "rescale_intercept": 0x00281052, "pixel_data": 0x7FE00010,
    "transfer_syntax": 0x00020010, "meta_length": 0x00020000, "number_of_frames": 0x00280008,
}
DICOM_US_TAGS = {"rows", "columns", "bits_allocated", "bits_stored", "high_bit",
                 "pixel_representation", "samples_per_pixel"}
DICOM_TEXT_VALUES = (
    "", "0", "-1", "nan", "inf", "1e308", "0\\0", "-1\\-1", "nan\\nan", "0\\0\\0",
    "nan\\nan\\nan", "1\\0\\0\\1\\0\\0", "0\\0\\0\\0\\0\\0", "1\\0\\0\\0\\1\\0",
    "0\\1\\0\\0\\0\\1", "999999999", "1.2.840.10008.1.2", "1.2.840.10008.1.2.2",
    "1.2.840.10008.1.2.4.90", "1.2.840.10008.1.2.5", "MONOCHROME1", "RGB", "PALETTE COLOR",
    "YBR_FULL", "1.2.3", "x" * 300,
)


def _pack_number(fmt: str, value: Any) -> bytes:
    """``value`` packed little-endian as ``fmt``, wrapped/clamped so it always fits."""
    if fmt.endswith("s"):
        return struct.pack("<" + fmt, value if isinstance(value, bytes) else str(value).encode())
    if fmt in "fd":
        return struct.pack("<" + fmt, float(value) if fmt == "d" or not math.isfinite(value)
                           or abs(value) < 3.4e38 else math.copysign(math.inf, value))
    bits = struct.calcsize(fmt) * 8
    signed = fmt.islower()
    v = int(value) & ((1 << bits) - 1) if not (isinstance(value, float) and not
                                             math.isfinite(value)) else 0
    if signed and v >= 1 << (bits - 1):
        v -= 1 << bits
    return struct.pack("<" + fmt, v)


def _nifti_set(raw: bytearray, table: dict[str, tuple[int, str, int]], name: str, index: int,
               value: Any) -> None:
    offset, fmt, count = table[name]
    size = struct.calcsize(fmt)
    at = offset + (index % count) * size
    if at + size <= len(raw):
        # the seeds are little-endian except the big-endian one: write in the file's order
        packed = _pack_number(fmt, value)
        if _nifti_big_endian(raw) and not fmt.endswith("s"):
            packed = packed[::-1]
        raw[at : at + size] = packed


def _nifti_big_endian(raw: bytes | bytearray) -> bool:
    return len(raw) >= 4 and struct.unpack("<i", raw[:4])[0] not in (348, 540)


def _text_header_split(data: bytes, fmt: str) -> tuple[list[bytes], bytes]:
    """(header lines, rest) of an NRRD / MetaImage file (the rest is the attached data)."""
    if fmt in ("nhdr", "mhd"):
        return data.rstrip(b"\n").split(b"\n"), b""
    if fmt == "nrrd":
        end = data.find(b"\n\n")
        if end < 0:
            return data.split(b"\n"), b""
        return data[:end].split(b"\n"), data[end + 2 :]
    lines, pos = [], 0
    while pos < len(data):
        nl = data.find(b"\n", pos)
        if nl < 0:
            break
        line = data[pos:nl]
        lines.append(line)
        pos = nl + 1
        if line.startswith(b"ElementDataFile"):
            break
    return lines, data[pos:]


def _text_header_join(lines: list[bytes], rest: bytes, fmt: str) -> bytes:
    if fmt in ("nhdr", "mhd"):
        return b"\n".join(lines) + b"\n"
    if fmt == "nrrd":
        return b"\n".join(lines) + b"\n\n" + rest
    return b"\n".join(lines) + b"\n" + rest


def _text_value(value: Any) -> bytes:
    if isinstance(value, tuple | list):
        return " ".join(str(v) for v in value).encode()
    return str(value).encode()


def _text_key_of(line: bytes, fmt: str) -> bytes:
    sep = b"=" if fmt in ("mha", "mhd") else b":"
    return line.split(sep, 1)[0].strip()


def _apply_text(data: bytes, fmt: str, mutation: Mutation) -> bytes:
    lines, rest = _text_header_split(data, fmt)
    kind, key = mutation[0], mutation[1].encode()
    sep = b" = " if fmt in ("mha", "mhd") else b": "
    where = [i for i, ln in enumerate(lines) if _text_key_of(ln, fmt) == key]
    if kind == "text_set":
        new = key + sep + _text_value(mutation[2])
        if where:
            lines[where[0]] = new
        else:  # insert before the data-file line (MetaImage needs ElementDataFile last)
            lines.insert(max(1, len(lines) - 1) if fmt in ("mha", "mhd") else len(lines), new)
    elif kind == "text_drop" and where:
        del lines[where[0]]
    elif kind == "text_dup" and where:
        lines.insert(where[0] + 1, key + sep + _text_value(mutation[2]))
    elif kind == "text_swap" and len(lines) > 2:
        i, j = mutation[2] % len(lines), mutation[3] % len(lines)
        lines[i], lines[j] = lines[j], lines[i]
    return _text_header_join(lines, rest, fmt)


def _apply_bytes(data: bytes, mutation: Mutation) -> bytes:
    kind = mutation[0]
    n = len(data)
    if n == 0:
        return data
    if kind == "truncate":
        return data[: int(n * mutation[1])]
    if kind == "bitflip":
        out = bytearray(data)
        for frac, bit, head in mutation[1]:
            span = min(n, 512) if head else n
            pos = min(n - 1, int(span * frac))
            out[pos] ^= 1 << bit
        return bytes(out)
    if kind == "overwrite":
        frac, head, payload = mutation[1], mutation[2], bytes.fromhex(mutation[3])
        span = min(n, 512) if head else n
        pos = min(n - 1, int(span * frac))
        return data[:pos] + payload + data[pos + len(payload) :]
    if kind == "delete":
        pos = int(n * mutation[1])
        return data[:pos] + data[pos + mutation[2] :]
    if kind == "duplicate":
        pos = int(n * mutation[1])
        return data[:pos] + data[pos : pos + mutation[2]] * 2 + data[pos + mutation[2] :]
    if kind == "append":
        return data + bytes.fromhex(mutation[1])
    if kind == "gzip_trailer":  # corrupt the CRC32 (part 0) or the size (part 1)
        out = bytearray(data)
        start = n - 8 + 4 * mutation[1]
        if start >= 0:
            out[start : start + 4] = struct.pack("<I", mutation[2] & 0xFFFFFFFF)
        return bytes(out)
    msg = f"unknown mutation {mutation!r}"
    raise ValueError(msg)


def _apply_dicom(data: bytes, mutation: Mutation) -> bytes:
    kind, name = mutation[0], mutation[1]
    tag = DICOM_TAGS[name]
    if kind == "dicom_set":
        value = mutation[2]
        if name in DICOM_US_TAGS and isinstance(value, int):
            return _set_dicom_value(data, tag, _pack_number("H", value))
        return _set_dicom_value(data, tag, str(value).encode())
    if kind == "dicom_length":
        return _set_dicom_length(data, tag, mutation[2])
    msg = f"unknown mutation {mutation!r}"
    raise ValueError(msg)


BYTE_KINDS = ("truncate", "bitflip", "overwrite", "delete", "duplicate", "append", "gzip_trailer")


def apply_mutations(seed: Seed, mutations: Sequence[Mutation]) -> dict[str, bytes]:
    """The files of the mutated case (name -> bytes)."""
    files = dict(seed.files)
    # header-field edits work on a well-formed file: apply them before any byte damage
    structural = ("nifti_field", "nifti_dims", "inner")
    mutations = sorted(mutations, key=lambda m: m[0] not in structural)
    for mutation in mutations:
        kind = mutation[0]
        if kind == "data":  # byte damage to a detached data file
            names = [n for n in files if n != seed.main]
            if names:
                files[names[0]] = _apply_bytes(files[names[0]], mutation[1])
            continue
        if seed.fmt == "dicom":  # the last item says which file: an index, or -1 for all
            names = sorted(files)
            target = mutation[-1]
            chosen = names if target == -1 else [names[target % len(names)]]
            for name in chosen:
                apply = _apply_dicom if kind.startswith("dicom") else _apply_bytes
                files[name] = apply(files[name], mutation[:-1])
            continue
        data = files[seed.main]
        if kind in ("nifti_field", "nifti_dims", "inner"):
            raw = bytearray(gzip.decompress(data) if seed.gz else data)
            table = NIFTI2_FIELDS if seed.fmt == "nifti2" else NIFTI1_FIELDS
            if kind == "nifti_field":
                _nifti_set(raw, table, mutation[1], mutation[2], mutation[3])
            elif kind == "nifti_dims":
                dims = mutation[1]
                _nifti_set(raw, table, "dim", 0, mutation[2])
                for i, d in enumerate(dims):
                    _nifti_set(raw, table, "dim", i + 1, d)
            else:  # byte damage inside the gzip stream: a valid .gz of a damaged NIfTI
                raw = bytearray(_apply_bytes(bytes(raw), mutation[1]))
            data = bytes(raw)
            if seed.gz:
                data = gzip.compress(data, compresslevel=1, mtime=0)
        elif kind.startswith("text_"):
            data = _apply_text(data, seed.fmt, mutation)
        else:
            data = _apply_bytes(data, mutation)
        files[seed.main] = data
    return files


def write_case(seed: Seed, mutations: Sequence[Mutation], folder: Path) -> Path:
    """Write the mutated case into ``folder`` and return the path to open."""
    folder.mkdir(parents=True, exist_ok=True)
    for name, data in apply_mutations(seed, mutations).items():
        (folder / name).write_bytes(data)
    return folder if seed.main == "." else folder / seed.main


# ---------------------------------------------------------------------- hypothesis strategies
def case_strategy(seeds: Sequence[Seed]) -> Any:
    """Hypothesis strategy of ``(seed index, mutations)``: 1-3 mutations of one seed."""
    from hypothesis import strategies as st

    fraction = st.floats(0.0, 1.0, allow_nan=False)
    hexbytes = st.one_of(
        st.binary(min_size=1, max_size=16),
        st.sampled_from([b"\x00" * 4, b"\xff" * 4, b"\xff\xff\xff\x7f", b"\x00\x00\x00\x80",
                         struct.pack("<d", math.nan), struct.pack("<f", math.inf)]),
    ).map(bytes.hex)
    generic = st.one_of(
        st.tuples(st.just("truncate"), fraction),
        st.tuples(st.just("bitflip"), st.lists(
            st.tuples(fraction, st.integers(0, 7), st.booleans()), min_size=1, max_size=16
        ).map(tuple)),
        st.tuples(st.just("overwrite"), fraction, st.booleans(), hexbytes),
        st.tuples(st.just("delete"), fraction, st.integers(1, 4096)),
        st.tuples(st.just("duplicate"), fraction, st.integers(1, 4096)),
        st.tuples(st.just("append"), st.binary(min_size=1, max_size=64).map(bytes.hex)),
    )
    any_number = st.one_of(st.sampled_from(HOSTILE_INTS), st.sampled_from(HOSTILE_FLOATS),
                           st.integers(-(2**40), 2**40))

    def nifti(seed: Seed) -> Any:
        table = NIFTI2_FIELDS if seed.fmt == "nifti2" else NIFTI1_FIELDS
        field_values = st.one_of(
            st.tuples(st.just("nifti_field"), st.just("datatype"), st.just(0),
                      st.sampled_from(NIFTI_DATATYPES)),
            st.tuples(st.just("nifti_field"), st.just("vox_offset"), st.just(0),
                      st.sampled_from((0, 1, 347, 348, 351, 352, 353, 540, 544, 10**9, -352,
                                       math.nan, 1e20, 2**31))),
            st.tuples(st.just("nifti_field"), st.just("pixdim"), st.integers(0, 7),
                      st.sampled_from(HOSTILE_FLOATS)),
            st.tuples(st.just("nifti_field"), st.just("dim"), st.integers(0, 7),
                      st.sampled_from(HOSTILE_INTS)),
            st.tuples(st.just("nifti_field"), st.sampled_from(sorted(table)),
                      st.integers(0, 11), any_number),
            st.tuples(st.just("nifti_field"), st.just("magic"), st.just(0),
                      st.sampled_from([b"n+1\x00", b"ni1\x00", b"n+2\x00", b"xxxx", b"\x00" * 4])),
            st.tuples(st.just("nifti_dims"), st.sampled_from(ABSURD_DIMS),
                      st.sampled_from((3, 3, 3, 2, 4, 8, 0, -1))),
        )
        inner = st.tuples(st.just("inner"), generic)
        options = [field_values, field_values, generic]
        if seed.gz:
            options += [inner, st.tuples(st.just("gzip_trailer"), st.integers(0, 1),
                                         st.integers(0, 2**32 - 1))]
        return st.one_of(*options)

    def text(seed: Seed) -> Any:
        keys, special = (NRRD_KEYS, NRRD_VALUES) if seed.family == "nrrd" else (MHA_KEYS,
                                                                                 MHA_VALUES)
        values = st.one_of(st.sampled_from(TEXT_VALUES), st.tuples(
            st.sampled_from(HOSTILE_INTS), st.sampled_from(HOSTILE_INTS),
            st.sampled_from(HOSTILE_INTS)))
        key = st.sampled_from(keys)
        keyed = st.one_of(*[st.tuples(
            st.just("text_set"), st.just(k),
            st.one_of(values, st.sampled_from(special[k])) if k in special else values)
            for k in keys])
        options = [
            keyed, keyed,
            st.tuples(st.just("text_drop"), key),
            st.tuples(st.just("text_dup"), key, values),
            st.tuples(st.just("text_swap"), st.just(""), st.integers(0, 20), st.integers(0, 20)),
            generic,
        ]
        if seed.fmt in ("nhdr", "mhd"):
            options.append(st.tuples(st.just("data"), generic))
        return st.one_of(*options)

    def dicom(seed: Seed) -> Any:
        target = st.sampled_from((-1, 0, 1, 2)) if len(seed.files) > 1 else st.just(-1)
        us_value = st.sampled_from((0, 1, 2, 3, 4, 7, 8, 12, 15, 16, 17, 24, 31, 32, 64, 255,
                                    65535))
        us_tags = st.sampled_from(sorted(DICOM_US_TAGS))
        text_tags = st.sampled_from(sorted(set(DICOM_TAGS) - DICOM_US_TAGS - {"pixel_data",
                                                                              "meta_length"}))
        return st.one_of(
            st.tuples(st.just("dicom_set"), us_tags, us_value, target),
            st.tuples(st.just("dicom_set"), text_tags, st.sampled_from(DICOM_TEXT_VALUES),
                      target),
            st.tuples(st.just("dicom_length"), st.sampled_from(sorted(DICOM_TAGS)),
                      st.sampled_from((0, 1, 3, 0xFFFF, 0xFFFFFFFF, 0x7FFFFFFF, 10**9)), target),
            generic.map(lambda m: (*m, -1)) if len(seed.files) == 1 else st.tuples(
                generic, target).map(lambda mt: (*mt[0], mt[1])),
        )

    def for_seed(index: int) -> Any:
        seed = seeds[index]
        one = (nifti(seed) if seed.family == "nifti" else dicom(seed) if seed.fmt == "dicom"
               else text(seed))
        return st.tuples(st.just(index), st.lists(one, min_size=1, max_size=3).map(tuple))

    # every format family as likely as another, whatever its number of seeds (DICOM has one
    # per transfer syntax)
    families: dict[str, list[int]] = {}
    for i, seed in enumerate(seeds):
        families.setdefault(seed.family, []).append(i)
    by_family = {name: st.one_of(*[for_seed(i) for i in indices])
                 for name, indices in families.items()}
    return st.sampled_from(sorted(by_family)).flatmap(by_family.__getitem__)


# ====================================================================== the worker
WORKER = r'''
import json, os, resource, sys, traceback
import numpy as np
from napari_medseg.errors import MedsegError
from napari_medseg.io import read_label_map, read_scan
from napari_medseg.scan import LabelMap, Scan
from napari_medseg._napari import dicom_choice, reader as napari_reader

reported = []
original_report = napari_reader.report

def capture(exc, *, context=""):
    reported.append(exc)
    original_report(exc, context=context)

napari_reader.report = capture
# a folder with several series would open a Qt dialog: answer "the first one" as a person might
dicom_choice.ask_series = lambda path, series: 0

# the address space after the imports, plus the headroom the parent gives
with open("/proc/self/statm") as statm:
    baseline = int(statm.read().split()[0]) * os.sysconf("SC_PAGE_SIZE")
headroom = int(sys.argv[1])
if headroom > 0:
    resource.setrlimit(resource.RLIMIT_AS, (baseline + headroom, baseline + headroom))
sys.stdout.write("ready\n")
sys.stdout.flush()

ALLOC_WORDS = ("bad_alloc", "failed to allocate", "cannot allocate", "memoryerror",
               "out of memory", "unable to allocate")


def check_geometry(g, ndim):
    assert len(g.spacing) == ndim
    assert all(np.isfinite(s) and s > 0 for s in g.spacing)
    assert np.all(np.isfinite(g.origin)) and np.all(np.isfinite(g.direction))


def valid(reader, value):
    if reader == "read_scan":
        assert isinstance(value, Scan), type(value)
        assert value.array.ndim in (2, 3) and min(value.array.shape) > 0
        assert value.array.dtype.kind in "biuf", value.array.dtype
        if value.array.dtype.kind == "f":
            assert np.isfinite(value.array).all()
        check_geometry(value.geometry, value.array.ndim)
    elif reader == "read_label_map":
        assert isinstance(value, LabelMap), type(value)
        assert value.array.dtype.kind in "biu" and min(value.array.shape) > 0
        check_geometry(value.geometry, value.array.ndim)
    else:
        assert isinstance(value, list) and value
        for layer in value:
            if len(layer) == 1 and layer[0] is None:
                continue
            data, kwargs, kind = layer
            assert kind in ("image", "labels"), kind
            assert np.asarray(data).ndim == len(kwargs["scale"])
            assert all(np.isfinite(s) and s > 0 for s in kwargs["scale"])


def classify(exc, path):
    chain, e = [], exc
    while e is not None and len(chain) < 8:
        chain.append(e)
        e = e.__cause__ or e.__context__
    text = " ".join(f"{type(c).__name__}: {c}" for c in chain).lower()
    if any(isinstance(c, MemoryError) for c in chain) or any(w in text for w in ALLOC_WORDS):
        return "memory"
    if isinstance(exc, MedsegError):
        message = str(exc)
        names = {path.name, path.parent.name} | {p.name for p in path.iterdir()} if (
            path.is_dir()) else {path.name, path.parent.name}
        if len(message) >= 20 and any(n and n in message for n in names):
            return "clear_error"
        return "unclear_error"
    return "other_exception"


from pathlib import Path
for line in sys.stdin:
    task = json.loads(line)
    path, reader = Path(task["path"]), task["reader"]
    reported.clear()
    detail = ""
    try:
        if reader == "read_scan":
            value = read_scan(path)
        elif reader == "read_label_map":
            value = read_label_map(path)
        else:
            function = napari_reader.get_reader(str(path))
            value = function(str(path)) if function is not None else [(None,)]
        if reported:
            outcome = classify(reported[0], path)
            detail = f"{type(reported[0]).__name__}: {reported[0]}"
        else:
            try:
                valid(reader, value)
                outcome = "scan"
            except AssertionError as exc:
                outcome, detail = "invalid_result", f"invalid result: {exc!r}"
        del value
    except BaseException as exc:
        outcome = classify(exc, path)
        detail = f"{type(exc).__name__}: {exc}"
        if outcome != "clear_error":
            detail += " | " + "".join(traceback.format_exception(exc)[-3:])[-600:]
    sys.stdout.write(json.dumps({"outcome": outcome, "detail": detail[:1500]}) + "\n")
    sys.stdout.flush()
'''


@dataclass
class Result:
    """The outcome of one reader on one case."""

    seed: str
    family: str
    reader: str
    mutations: tuple[Mutation, ...]
    outcome: str
    detail: str = ""
    seconds: float = 0.0


@dataclass
class _Worker:
    process: subprocess.Popen[bytes]
    stderr_path: Path
    task: dict[str, Any] | None = None
    started: float = 0.0
    buffer: bytes = b""


@dataclass
class ReaderPool:
    """Worker processes that run readers on case files, each call bounded in time and memory.

    ``deadline_s`` bounds each reader call (past it the worker is killed: a ``hang``);
    ``memory_headroom`` is the address space (``RLIMIT_AS``) a worker may add to its size
    after its imports, so an absurd allocation fails as ``MemoryError`` instead of swapping.
    A worker that dies (``crash``) or hangs is replaced before the next call.
    """

    workers: int = 2
    deadline_s: float = 10.0
    memory_headroom: int = 2 * 1024**3
    _pool: list[_Worker] = field(default_factory=list)
    _tmp: Path | None = None
    _count: int = 0

    def __enter__(self) -> ReaderPool:
        self._tmp = Path(tempfile.mkdtemp(prefix="medseg-fuzz-"))
        return self

    def __exit__(self, *exc: object) -> None:
        for worker in self._pool:
            self._stop(worker)
        self._pool.clear()
        if self._tmp is not None:
            shutil.rmtree(self._tmp, ignore_errors=True)

    # ------------------------------------------------------------------ workers
    def _spawn(self) -> _Worker:
        assert self._tmp is not None
        env = {
            **os.environ,
            "MALLOC_ARENA_MAX": "2",
            "OMP_NUM_THREADS": "1",
            "OPENBLAS_NUM_THREADS": "1",
            "ITK_GLOBAL_DEFAULT_NUMBER_OF_THREADS": "1",
            "QT_QPA_PLATFORM": "offscreen",
            "PYTHONFAULTHANDLER": "1",
        }
        stderr_path = self._tmp / f"worker-{time.monotonic_ns()}.log"
        with stderr_path.open("wb") as err:
            process = subprocess.Popen(
                [sys.executable, "-c", WORKER, str(self.memory_headroom)],
                stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=err, env=env, cwd=REPO)
        assert process.stdout is not None
        ready = process.stdout.readline()  # imports done: deadlines start now
        if ready != b"ready\n":
            msg = f"fuzz worker did not start: {stderr_path.read_text()[-2000:]}"
            raise RuntimeError(msg)
        os.set_blocking(process.stdout.fileno(), False)
        return _Worker(process=process, stderr_path=stderr_path)

    @staticmethod
    def _stop(worker: _Worker) -> None:
        with contextlib.suppress(OSError):
            worker.process.kill()
        worker.process.wait()
        for stream in (worker.process.stdin, worker.process.stdout):
            with contextlib.suppress(OSError):
                stream.close()  # type: ignore[union-attr]

    # ------------------------------------------------------------------ running
    def run(self, cases: Iterable[tuple[Seed, tuple[Mutation, ...]]],
            readers: Sequence[str] = READERS) -> Iterator[Result]:
        """Run every reader on every case; yields one :class:`Result` per (case, reader)."""
        assert self._tmp is not None, "use ReaderPool as a context manager"
        if not self._pool:
            self._pool = [self._spawn() for _ in range(self.workers)]
        remaining: dict[str, int] = {}
        tasks = self._tasks(cases, readers, remaining)
        selector = selectors.DefaultSelector()
        exhausted = False
        for worker in self._pool:
            selector.register(worker.process.stdout, selectors.EVENT_READ, worker)  # type: ignore[arg-type]
        try:
            while True:
                for index, worker in enumerate(self._pool):
                    if worker.task is None and not exhausted:
                        task = next(tasks, None)
                        if task is None:
                            exhausted = True
                            break
                        self._send(index, worker, task, selector)
                busy = [w for w in self._pool if w.task is not None]
                if not busy:
                    break
                now = time.monotonic()
                timeout = max(0.0, min(w.started + self.deadline_s for w in busy) - now)
                for key, _mask in selector.select(timeout=timeout):
                    worker = key.data
                    try:
                        chunk = os.read(key.fd, 65536)
                    except BlockingIOError:
                        continue
                    if not chunk:  # the worker died: a crash (segfault, abort...)
                        yield self._finish(worker, "crash", self._death(worker), selector,
                                           remaining)
                        continue
                    worker.buffer += chunk
                    while b"\n" in worker.buffer and worker.task is not None:
                        line, worker.buffer = worker.buffer.split(b"\n", 1)
                        answer = json.loads(line)
                        yield self._finish(worker, answer["outcome"], answer["detail"],
                                           selector, remaining, restart=False)
                now = time.monotonic()
                for worker in list(self._pool):
                    if worker.task is not None and now - worker.started > self.deadline_s:
                        yield self._finish(worker, "hang", f"no answer in {self.deadline_s} s",
                                           selector, remaining)
        finally:
            selector.close()

    def _tasks(self, cases: Iterable[tuple[Seed, tuple[Mutation, ...]]],
               readers: Sequence[str], remaining: dict[str, int]
               ) -> Iterator[dict[str, Any]]:
        assert self._tmp is not None
        for seed, mutations in cases:
            self._count += 1
            folder = self._tmp / f"case-{self._count}"
            path = write_case(seed, mutations, folder)
            remaining[str(folder)] = len(readers)
            for reader in readers:
                yield {"path": str(path), "reader": reader, "dir": str(folder),
                       "seed": seed.name, "family": seed.family, "mutations": mutations}

    def _send(self, index: int, worker: _Worker, task: dict[str, Any],
              selector: selectors.BaseSelector) -> None:
        worker.task = task
        worker.started = time.monotonic()
        line = json.dumps({"path": task["path"], "reader": task["reader"]}) + "\n"
        try:
            worker.process.stdin.write(line.encode())  # type: ignore[union-attr]
            worker.process.stdin.flush()  # type: ignore[union-attr]
        except BrokenPipeError:
            pass  # the death shows up as EOF on stdout

    def _death(self, worker: _Worker) -> str:
        code = worker.process.wait()
        tail = worker.stderr_path.read_bytes()[-800:].decode(errors="replace")
        return f"worker exited with {code}: {tail}"

    def _finish(self, worker: _Worker, outcome: str, detail: str,
                selector: selectors.BaseSelector, remaining: dict[str, int], *,
                restart: bool = True) -> Result:
        task = worker.task
        assert task is not None
        result = Result(seed=task["seed"], family=task["family"], reader=task["reader"],
                        mutations=task["mutations"], outcome=outcome, detail=detail,
                        seconds=time.monotonic() - worker.started)
        worker.task = None
        remaining[task["dir"]] -= 1
        if remaining[task["dir"]] == 0:
            shutil.rmtree(task["dir"], ignore_errors=True)
        if restart:
            selector.unregister(worker.process.stdout)  # type: ignore[arg-type]
            self._stop(worker)
            fresh = self._spawn()
            self._pool[self._pool.index(worker)] = fresh
            selector.register(fresh.process.stdout, selectors.EVENT_READ, fresh)  # type: ignore[arg-type]
        return result


# ====================================================================== reporting
def tally(results: Iterable[Result]) -> dict[str, Counter[str]]:
    """Outcome counts per format family (and ``"all"``)."""
    counts: dict[str, Counter[str]] = {}
    for r in results:
        counts.setdefault(r.family, Counter())[r.outcome] += 1
        counts.setdefault("all", Counter())[r.outcome] += 1
    return counts


def format_table(counts: dict[str, Counter[str]], cases: dict[str, int]) -> str:
    """A Markdown table: one row per format, one column per outcome."""
    head = "| format | cases | reader calls | " + " | ".join(OUTCOMES) + " |"
    rule = "|" + "---|" * (3 + len(OUTCOMES))
    rows = [head, rule]
    for family in sorted(counts, key=lambda f: (f == "all", f)):
        c = counts[family]
        rows.append(f"| {family} | {cases.get(family, 0)} | {sum(c.values())} | "
                    + " | ".join(str(c.get(o, 0)) for o in OUTCOMES) + " |")
    return "\n".join(rows)


def generate_cases(seeds: Sequence[Seed], n: int, *, seed: int = 0
                   ) -> list[tuple[Seed, tuple[Mutation, ...]]]:
    """``n`` cases drawn by Hypothesis from :func:`case_strategy` (deterministic per ``seed``).

    Hypothesis generates, the pool executes: drawing everything first lets the cases run in
    parallel workers.
    """
    from hypothesis import HealthCheck, Phase, given, settings
    from hypothesis import seed as hypothesis_seed

    drawn: list[tuple[int, tuple[Mutation, ...]]] = []

    @hypothesis_seed(seed)
    @settings(max_examples=n, database=None, deadline=None,
              suppress_health_check=list(HealthCheck), phases=[Phase.generate])
    @given(case_strategy(seeds))
    def collect(case: tuple[int, tuple[Mutation, ...]]) -> None:
        drawn.append(case)

    collect()
    return [(seeds[i], mutations) for i, mutations in drawn[:n]]
