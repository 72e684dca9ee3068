"""A bounds check of a DICOM file's element structure, before GDCM parses it.

GDCM trusts element lengths: one corrupt length field makes it allocate and zero up to 4 GiB
for a file of a few KB (seconds of work, and out of memory on a small machine).
:func:`check_dicom_file` walks every data element (nested sequences and encapsulated pixel
data included) by its tag and length alone, without reading values, the way GDCM will, and
refuses a file whose lengths point past the end of the file or of the item holding them.
It also reads the few pixel-module fields that say how many bytes the pixel data must hold
(rows, columns, frames, samples, bits) and refuses pixel data that cannot hold them.

Only the first :data:`MAX_WALK_ELEMENTS` elements are walked; files in the deflated transfer
syntax are checked up to their file meta information.  The file meta information's SOP class
and instance UIDs are returned too (:class:`FileMeta`): some anonymised exports empty those of
the dataset but keep these, which identify the same object (PS3.10 7.1).
"""

from __future__ import annotations

import mmap
import struct
import zlib
from dataclasses import dataclass
from pathlib import Path

from napari_medseg.errors import ScanReadError
from napari_medseg.io.limits import check_declared_size

#: Value representations whose length field takes 4 bytes (after 2 reserved bytes).
_LONG_VRS = frozenset({b"OB", b"OD", b"OF", b"OL", b"OV", b"OW", b"SQ", b"UC", b"UN", b"UR",
                       b"UT", b"SV", b"UV"})
_KNOWN_VRS = _LONG_VRS | frozenset({
    b"AE", b"AS", b"AT", b"CS", b"DA", b"DS", b"DT", b"FD", b"FL", b"IS", b"LO", b"LT", b"PN",
    b"SH", b"SL", b"SS", b"ST", b"TM", b"UI", b"UL", b"US"})
_UNDEFINED = 0xFFFFFFFF
_ITEM, _ITEM_END, _SEQUENCE_END = 0xFFFEE000, 0xFFFEE00D, 0xFFFEE0DD
_PIXEL_DATA = 0x7FE00010
_IMPLICIT_LE = "1.2.840.10008.1.2"
_EXPLICIT_BE = "1.2.840.10008.1.2.2"
_DEFLATED = ("1.2.840.10008.1.2.1.99", "1.2.840.10008.1.2.8.1")
#: Nesting depth of sequences we follow (real files use a handful of levels).
MAX_DEPTH = 32
#: Elements walked per file (a 100 MB file has far fewer before its pixel data).
MAX_WALK_ELEMENTS = 1_000_000
_PIXEL_FIELDS = {0x00280010: "rows", 0x00280011: "columns", 0x00280002: "samples",
                 0x00280100: "bits", 0x00280008: "frames"}


class _Corrupt(Exception):
    pass


#: File meta elements we keep: Media Storage SOP Class / Instance UID, Transfer Syntax UID.
_META_FIELDS = {0x0002: "sop_class_uid", 0x0003: "sop_instance_uid", 0x0010: "transfer_syntax"}


@dataclass(frozen=True)
class FileMeta:
    """What a file's meta information (group 0002) says; empty strings where absent."""

    sop_class_uid: str = ""
    sop_instance_uid: str = ""
    transfer_syntax: str = ""


@dataclass(frozen=True)
class DicomFileCheck:
    """The result of :func:`check_dicom_file`: pixel layout (``None`` for a deflated file,
    whose dataset is compressed) and file meta information."""

    layout: PixelLayout | None
    meta: FileMeta


@dataclass
class PixelLayout:
    """What the pixel module declares and what the file stores."""

    rows: int = 0
    columns: int = 0
    samples: int = 1
    bits: int = 16
    frames: int = 1
    pixel_bytes: int | None = None  # stored bytes of pixel data (all fragments if compressed)
    encapsulated: bool = False

    @property
    def declared_bytes(self) -> int:
        values = self.rows * self.columns * self.frames * self.samples
        return (values * self.bits + 7) // 8


class _Walker:
    def __init__(self, data: mmap.mmap | bytes, little: bool, explicit: bool) -> None:
        self.data = data
        self.little = little
        self.explicit = explicit
        self.count = 0
        self.layout = PixelLayout()
        self.end_tag = struct.Struct("<HH" if little else ">HH")
        self.u16 = struct.Struct("<H" if little else ">H")
        self.u32 = struct.Struct("<I" if little else ">I")

    def header(self, pos: int, end: int) -> tuple[int, bytes, int, int]:
        """``(tag, VR, value position, length)`` of the element at ``pos``."""
        if pos + 8 > end:
            msg = f"an element header at byte {pos} runs past the end ({end})"
            raise _Corrupt(msg)
        group, element = self.end_tag.unpack_from(self.data, pos)
        tag = (group << 16) | element
        if group == 0xFFFE:  # items and delimiters: always tag + 4-byte length
            return tag, b"", pos + 8, self.u32.unpack_from(self.data, pos + 4)[0]
        vr = bytes(self.data[pos + 4 : pos + 6])
        if self.explicit:
            if vr not in _KNOWN_VRS:
                # parsers disagree on what follows an unknown VR (GDCM may take the next 4 or
                # 6 bytes as a 32-bit length): in a file that is otherwise explicit, it is
                # damage
                msg = (f"element ({group:04X},{element:04X}) at byte {pos} has an invalid "
                       f"value representation {vr!r}")
                raise _Corrupt(msg)
            if vr in _LONG_VRS:
                if pos + 12 > end:
                    msg = f"an element header at byte {pos} runs past the end ({end})"
                    raise _Corrupt(msg)
                return tag, vr, pos + 12, self.u32.unpack_from(self.data, pos + 8)[0]
            return tag, vr, pos + 8, self.u16.unpack_from(self.data, pos + 6)[0]
        return tag, b"", pos + 8, self.u32.unpack_from(self.data, pos + 4)[0]

    def dataset(self, pos: int, end: int, depth: int, *, in_item: bool) -> int:
        """Walk elements from ``pos`` to ``end`` (or an item delimiter); returns the end."""
        if depth > MAX_DEPTH:
            msg = f"sequences nested more than {MAX_DEPTH} deep"
            raise _Corrupt(msg)
        while pos < end:
            self.count += 1
            if self.count > MAX_WALK_ELEMENTS:
                return end
            tag, vr, value, length = self.header(pos, end)
            if tag == _ITEM_END and in_item:
                return value
            if tag in (_ITEM, _ITEM_END, _SEQUENCE_END):
                msg = f"a misplaced item or delimiter tag at byte {pos}"
                raise _Corrupt(msg)
            if length == _UNDEFINED:
                if tag == _PIXEL_DATA:  # compressed frames (of the image, or of an icon)
                    pos, stored = self.fragments(value, end)
                    if depth == 0:
                        self.layout.pixel_bytes, self.layout.encapsulated = stored, True
                        if self.zeros_from(pos, end):
                            return end
                    continue
                pos = self.sequence(value, end, depth + 1, undefined=True)
                continue
            if value + length > end:
                msg = (f"element ({tag >> 16:04X},{tag & 0xFFFF:04X}) at byte {pos} claims "
                       f"{length:,} bytes but only {max(0, end - value):,} follow")
                raise _Corrupt(msg)
            if depth == 0:
                self.pixel_field(tag, value, length)
                if tag == _PIXEL_DATA and self.zeros_from(value + length, end):
                    return end  # zero padding after the pixel data (some writers add it)
            if vr == b"SQ" or (not vr and length >= 8 and self.end_tag.unpack_from(
                    self.data, value) == (0xFFFE, 0xE000)):  # implicit VR: a sequence by looks
                self.sequence(value, value + length, depth + 1, undefined=False)
            pos = value + length
        return pos

    def zeros_from(self, pos: int, end: int) -> bool:
        """True when every byte from ``pos`` to ``end`` is zero."""
        step = 1 << 20
        return all(not bytes(self.data[at : min(end, at + step)]).strip(b"\x00")
                   for at in range(pos, end, step))

    def sequence(self, pos: int, end: int, depth: int, *, undefined: bool) -> int:
        """Walk the items of a sequence; returns the position after it."""
        while pos < end:
            tag, _vr, value, length = self.header(pos, end)
            if tag == _SEQUENCE_END:
                return value
            if tag != _ITEM:
                if undefined:
                    msg = f"a sequence holds a non-item tag at byte {pos}"
                    raise _Corrupt(msg)
                return end  # not a real sequence after all (implicit VR guess): skip it
            if length == _UNDEFINED:
                pos = self.dataset(value, end, depth, in_item=True)
                continue
            if value + length > end:
                msg = (f"a sequence item at byte {pos} claims {length:,} bytes but only "
                       f"{max(0, end - value):,} follow")
                raise _Corrupt(msg)
            self.dataset(value, value + length, depth, in_item=True)
            pos = value + length
        if undefined:
            msg = "a sequence of undefined length has no end"
            raise _Corrupt(msg)
        return pos

    def fragments(self, pos: int, end: int) -> tuple[int, int]:
        """Encapsulated (compressed) pixel data: items until the sequence delimiter;
        returns the position after it and the bytes of all fragments."""
        total = 0
        while pos < end:
            tag, _vr, value, length = self.header(pos, end)
            if tag == _SEQUENCE_END:
                return value, total
            if tag != _ITEM or length == _UNDEFINED or value + length > end:
                msg = f"a compressed pixel data fragment at byte {pos} is corrupt or truncated"
                raise _Corrupt(msg)
            total += length
            pos = value + length
        msg = "the compressed pixel data has no end (truncated file?)"
        raise _Corrupt(msg)

    def pixel_field(self, tag: int, value: int, length: int) -> None:
        if tag == _PIXEL_DATA:
            self.layout.pixel_bytes = length
            return
        name = _PIXEL_FIELDS.get(tag)
        if name is None:
            return
        raw = bytes(self.data[value : value + length])
        if name == "frames":
            try:
                number = int(raw.decode("ascii").strip(" \x00") or "1")
            except (UnicodeDecodeError, ValueError):
                return  # GDCM reports it
        elif length == 2:
            number = self.u16.unpack(raw)[0]
        else:
            return
        setattr(self.layout, name, number)


def _meta(data: mmap.mmap | bytes) -> tuple[int, FileMeta]:
    """Position after the file meta information and what it says."""
    if data[128:132] != b"DICM":
        return 0, FileMeta()  # no preamble: a raw dataset, which GDCM reads as implicit VR
    pos, values = 132, {}
    while pos + 8 <= len(data):
        group = struct.unpack_from("<H", data, pos)[0]
        if group != 0x0002:
            break
        vr = bytes(data[pos + 4 : pos + 6])
        if vr not in _KNOWN_VRS:
            msg = f"its file meta information has an invalid value representation {vr!r}"
            raise _Corrupt(msg)
        if vr in _LONG_VRS:
            if pos + 12 > len(data):
                break
            value, length = pos + 12, struct.unpack_from("<I", data, pos + 8)[0]
        else:
            value, length = pos + 8, struct.unpack_from("<H", data, pos + 6)[0]
        if length == _UNDEFINED or value + length > len(data):
            msg = f"its file meta information claims {length:,} bytes at byte {pos}"
            raise _Corrupt(msg)
        name = _META_FIELDS.get(struct.unpack_from("<H", data, pos + 2)[0])
        if name is not None:
            text = bytes(data[value : value + length]).decode("ascii", "replace")
            values[name] = text.strip(" \x00")
        pos = value + length
    return pos, FileMeta(**values)


#: A deflated dataset larger than this when inflated is refused (a zip bomb, or damage).
MAX_INFLATED = 2 << 30


def _inflate(data: mmap.mmap | bytes, start: int) -> bytes:
    """The deflated dataset after ``start`` (raw deflate, PS3.5 A.5), whole, or ``_Corrupt``."""
    inflater = zlib.decompressobj(-zlib.MAX_WBITS)
    out = bytearray()
    step = 1 << 20
    try:
        for at in range(start, len(data), step):
            out += inflater.decompress(bytes(data[at : at + step]), MAX_INFLATED - len(out))
            if len(out) >= MAX_INFLATED:
                msg = f"its deflated dataset inflates to more than {MAX_INFLATED >> 30} GiB"
                raise _Corrupt(msg)
            if inflater.eof:
                break
        out += inflater.flush()
    except zlib.error as exc:
        msg = f"its deflated dataset is damaged ({exc})"
        raise _Corrupt(msg) from None
    if not inflater.eof:
        msg = "its deflated dataset is cut short (truncated file?)"
        raise _Corrupt(msg)
    return bytes(out)


def check_dicom_file(path: Path) -> DicomFileCheck:
    """Refuse a DICOM file whose element lengths or pixel data do not fit in it.

    Returns the declared pixel layout (``None`` for a deflated file, whose dataset is
    compressed) and the file meta information.  Raises
    :class:`~napari_medseg.errors.ScanReadError` naming the file.
    """
    try:
        with path.open("rb") as handle:
            size = path.stat().st_size
            if size == 0:
                msg = f"{path.name} is an empty file (0 bytes)"
                raise ScanReadError(msg)
            with mmap.mmap(handle.fileno(), 0, access=mmap.ACCESS_READ) as data:
                return _check(data, size, path)
    except OSError as exc:
        msg = f"{path.name} could not be opened ({exc.strerror or exc})"
        raise ScanReadError(msg) from exc


def read_file_meta(path: Path) -> FileMeta:
    """The file meta information alone (group 0002, bounded by the file), without walking
    the dataset; an empty :class:`FileMeta` for a file without it or with a damaged one."""
    try:
        with path.open("rb") as handle:
            if path.stat().st_size < 132:
                return FileMeta()
            with mmap.mmap(handle.fileno(), 0, access=mmap.ACCESS_READ) as data:
                return _meta(data)[1]
    except (OSError, ValueError, _Corrupt, struct.error):
        return FileMeta()


def _check(data: mmap.mmap, size: int, path: Path) -> DicomFileCheck:
    try:
        start, meta = _meta(data)
        syntax = meta.transfer_syntax
        if syntax in _DEFLATED:
            # GDCM can loop for minutes on a damaged deflate stream: inflate it here, bounded,
            # and walk what comes out; only a whole, well-formed dataset goes on to GDCM
            inflated = _inflate(data, start)
            walker = _Walker(inflated, little=True, explicit=True)
            walker.dataset(0, len(inflated), 0, in_item=False)
            return DicomFileCheck(layout=None, meta=meta)
        explicit = syntax != _IMPLICIT_LE
        if explicit and bytes(data[start + 4 : start + 6]) not in _KNOWN_VRS:
            # no meta information, or a dataset written implicit despite its meta
            # information: GDCM reads these as implicit VR, so do we
            explicit = False
        walker = _Walker(data, little=syntax != _EXPLICIT_BE, explicit=explicit)
        walker.dataset(start, size, 0, in_item=False)
    except _Corrupt as exc:
        msg = (f"{path.name} is a damaged DICOM file: {exc}; it was not read (copy or export "
               "it again)")
        raise ScanReadError(msg) from None
    layout = walker.layout
    if layout.pixel_bytes is not None and layout.rows and layout.columns:
        encoding = "codec" if layout.encapsulated else "raw"
        check_declared_size(path.name, layout.declared_bytes, layout.pixel_bytes,
                            encoding=encoding)
    return DicomFileCheck(layout=layout, meta=meta)
