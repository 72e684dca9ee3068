"""NRRD and MetaImage headers, parsed and checked before ITK sees the file.

ITK's parsers trust their headers: a MetaImage header listing ``NDims`` twice crashes the
process, ``CompressedDataSize`` is allocated as given, and a data file named ``/dev/zero``
or a FIFO is read as told.  These checks read the text header (at most
:data:`MAX_HEADER_BYTES`) and refuse, with a message naming the file and the field:

* repeated or malformed key fields (dimensions, sizes, element type, channels);
* detached data that is not one regular file (``/dev/...``, FIFOs, folders, missing files,
  file lists and patterns, which napari-medseg does not read);
* declared voxel bytes that the stored bytes cannot hold (see :mod:`napari_medseg.io.limits`).

Fields they do not understand are left to ITK, which reports its own clear error.
"""

from __future__ import annotations

import math
import stat
from pathlib import Path

from napari_medseg.errors import ScanReadError, UnsupportedScanError
from napari_medseg.io.limits import check_declared_size

#: Text headers longer than this are refused (real ones are a few hundred bytes).
MAX_HEADER_BYTES = 1024**2
#: Axes a header may declare before ITK parses it (we read 2D and 3D; 4D gets a clear error).
MAX_DIMENSIONS = 4
_MAX_CHANNELS = 1024

_NRRD_TYPE_BYTES: dict[str, int] = {}
for _names, _size in (
    ("signed char|int8|int8_t|uchar|unsigned char|uint8|uint8_t", 1),
    ("short|short int|signed short|signed short int|int16|int16_t|ushort|unsigned short|"
     "unsigned short int|uint16|uint16_t", 2),
    ("int|signed int|int32|int32_t|uint|unsigned int|uint32|uint32_t|float", 4),
    ("longlong|long long|long long int|signed long long|signed long long int|int64|int64_t|"
     "ulonglong|unsigned long long|unsigned long long int|uint64|uint64_t|double", 8),
):
    for _name in _names.split("|"):
        _NRRD_TYPE_BYTES[_name] = _size

_META_TYPE_BYTES = {
    "MET_CHAR": 1, "MET_UCHAR": 1, "MET_SHORT": 2, "MET_USHORT": 2, "MET_INT": 4,
    "MET_UINT": 4, "MET_LONG": 4, "MET_ULONG": 4, "MET_LONG_LONG": 8, "MET_ULONG_LONG": 8,
    "MET_FLOAT": 4, "MET_DOUBLE": 8,
}


def _bad(path: Path, detail: str) -> ScanReadError:
    msg = f"{path.name} has a corrupt header: {detail}; the file cannot be read as it is"
    return ScanReadError(msg)


def _ints(path: Path, key: str, text: str) -> list[int]:
    try:
        return [int(v) for v in text.split()]
    except ValueError:
        raise _bad(path, f"{key} must be whole numbers, got {text[:80]!r}") from None


def _read_head(path: Path) -> bytes:
    with path.open("rb") as handle:
        return handle.read(MAX_HEADER_BYTES + 1)


def _data_file(path: Path, name: str, field: str) -> Path:
    """The detached data file a header names: one existing regular file."""
    if name.upper() == "LIST" or "%" in name or len(name.split()) > 1:
        msg = (
            f"{path.name} spreads its voxels over several files ({field} {name[:80]!r}); "
            "napari-medseg reads a header with one data file: merge them first (e.g. save "
            "as .nrrd or .mha with another tool)"
        )
        raise UnsupportedScanError(msg)
    data = Path(name)
    if not data.is_absolute():
        data = path.parent / data
    try:
        mode = data.stat().st_mode
    except (OSError, ValueError):  # ValueError: a name with a NUL byte
        msg = (f"{path.name} names the data file {name[:200]!r} ({field}), which does not "
               "exist; keep the header and its data file together")
        raise ScanReadError(msg) from None
    if not stat.S_ISREG(mode):
        raise _bad(path, f"its data file {name[:200]!r} ({field}) is not a regular file")
    return data


def _checked_sizes(path: Path, key: str, sizes: list[int]) -> int:
    if not 1 <= len(sizes) <= MAX_DIMENSIONS:
        msg = (f"{path.name} declares {len(sizes)} axes ({key}); napari-medseg reads 2D and 3D "
               "scans")
        raise UnsupportedScanError(msg)
    if any(s <= 0 for s in sizes):
        raise _bad(path, f"{key} {sizes} has an empty or negative axis")
    return math.prod(sizes)


# ---------------------------------------------------------------------- NRRD
def check_nrrd_header(path: Path) -> None:
    """Refuse an NRRD (``.nrrd`` / ``.nhdr``) whose header cannot describe its stored data."""
    head = _read_head(path)
    if not head.startswith(b"NRRD"):
        return  # not NRRD at all: ITK says so
    attached = path.suffix.lower() != ".nhdr"
    end = head.find(b"\n\n")
    if end < 0 and b"\r\n\r\n" in head:
        end = head.find(b"\r\n\r\n")
    if end < 0:
        if len(head) > MAX_HEADER_BYTES:
            raise _bad(path, f"no end of header in the first {MAX_HEADER_BYTES:,} bytes")
        end = len(head)
    text = head[:end].decode("latin-1")
    fields: dict[str, str] = {}
    for line in text.splitlines()[1:]:
        if not line.strip() or line.startswith("#") or ":=" in line:
            continue
        key, sep, value = line.partition(":")
        if not sep:
            raise _bad(path, f"line {line[:60]!r} is not 'field: value'")
        key = key.strip().lower().replace("datafile", "data file")
        if key in fields:
            raise _bad(path, f"field {key!r} appears twice")
        fields[key] = value.strip()
    if "sizes" not in fields or "type" not in fields:
        return  # ITK refuses it with its own message
    sizes = _ints(path, "sizes", fields["sizes"])
    if "dimension" in fields:
        dimension = _ints(path, "dimension", fields["dimension"])
        if len(dimension) != 1 or dimension[0] != len(sizes):
            raise _bad(path, f"dimension {fields['dimension']!r} does not match sizes "
                             f"{fields['sizes']!r}")
    n_values = _checked_sizes(path, "sizes", sizes)
    item = _NRRD_TYPE_BYTES.get(" ".join(fields["type"].lower().split()))
    if item is None:
        return  # block or unknown types: ITK refuses them
    encoding = fields.get("encoding", "raw").lower()
    if "data file" in fields:
        data = _data_file(path, fields["data file"], "data file")
        stored = data.stat().st_size
    elif attached:
        data, stored = path, path.stat().st_size - (end + 2)
    else:
        raise _bad(path, "a detached header (.nhdr) needs a 'data file' field")
    skip = fields.get("byte skip", "0")
    skip_value = _ints(path, "byte skip", skip)
    if len(skip_value) == 1 and skip_value[0] > 0:
        stored -= skip_value[0]
    declared = n_values * item
    if encoding in ("raw",):
        check_declared_size(path.name, declared, stored, encoding="raw")
    elif encoding in ("gz", "gzip"):
        check_declared_size(path.name, declared, stored, encoding="deflate")
    elif encoding in ("hex",):
        check_declared_size(path.name, 2 * declared, stored, encoding="raw")
    elif encoding in ("txt", "text", "ascii"):  # one digit per value at least
        check_declared_size(path.name, n_values, stored, encoding="raw")
    else:
        check_declared_size(path.name, declared, stored, encoding="codec")


# ---------------------------------------------------------------------- MetaImage
def check_metaimage_header(path: Path) -> None:
    """Refuse a MetaImage (``.mha`` / ``.mhd``) whose header cannot describe its stored data."""
    head = _read_head(path)
    fields: dict[str, str] = {}
    pos = 0
    data_line = False
    while pos < len(head):
        newline = head.find(b"\n", pos)
        line_end = len(head) if newline < 0 else newline
        line = head[pos:line_end].decode("latin-1").rstrip("\r")
        pos = line_end + 1
        if not line.strip():
            continue
        name, sep, value = line.partition("=")
        if not sep:
            raise _bad(path, f"line {line[:60]!r} is not 'Field = value'")
        key, value = name.strip().lower(), value.strip()
        if key in fields:
            raise _bad(path, f"field {name.strip()[:60]!r} appears twice")
        fields[key] = value
        if key == "elementdatafile":
            data_line = True
            break
    if not data_line:
        if len(head) > MAX_HEADER_BYTES:
            raise _bad(path, f"no ElementDataFile line in the first {MAX_HEADER_BYTES:,} bytes")
        raise _bad(path, "it has no ElementDataFile line (where the voxels are)")
    header_end = min(pos, len(head))
    ndims = _ints(path, "NDims", fields.get("ndims", ""))
    if len(ndims) != 1:
        raise _bad(path, f"NDims must be one whole number, got {fields.get('ndims', '')!r}")
    sizes = _ints(path, "DimSize", fields.get("dimsize", ""))
    if len(sizes) != ndims[0]:
        raise _bad(path, f"DimSize {fields.get('dimsize', '')!r} does not list NDims="
                         f"{ndims[0]} sizes")
    n_voxels = _checked_sizes(path, "DimSize", sizes)
    channels = _ints(path, "ElementNumberOfChannels",
                     fields.get("elementnumberofchannels", "1"))
    if len(channels) != 1 or not 1 <= channels[0] <= _MAX_CHANNELS:
        raise _bad(path, f"ElementNumberOfChannels {fields['elementnumberofchannels']!r} is "
                         f"not a count of 1 to {_MAX_CHANNELS}")
    element_type = fields.get("elementtype", "").upper().removesuffix("_ARRAY")
    if element_type not in _META_TYPE_BYTES:
        raise _bad(path, f"ElementType {fields.get('elementtype', '')!r} is not one of "
                         f"{', '.join(_META_TYPE_BYTES)}")
    header_size = _ints(path, "HeaderSize", fields.get("headersize", "0"))
    if len(header_size) != 1 or header_size[0] < -1:
        raise _bad(path, f"HeaderSize {fields['headersize']!r} must be -1 or more")
    name = fields["elementdatafile"]
    if name.upper() == "LOCAL":
        stored = path.stat().st_size - header_end
    else:
        stored = _data_file(path, name, "ElementDataFile").stat().st_size
    stored -= max(0, header_size[0])
    declared = n_voxels * channels[0] * _META_TYPE_BYTES[element_type]
    compressed = fields.get("compresseddata", "false").lower() in ("true", "1", "yes")
    if not compressed:
        check_declared_size(path.name, declared, stored, encoding="raw")
        return
    if "compresseddatasize" in fields:
        size = _ints(path, "CompressedDataSize", fields["compresseddatasize"])
        if len(size) != 1 or not 0 < size[0] <= max(stored, 0):
            raise _bad(path, f"CompressedDataSize {fields['compresseddatasize']!r} is not "
                             f"within the {max(stored, 0):,} bytes stored")
        stored = size[0]
    check_declared_size(path.name, declared, stored, encoding="deflate")
