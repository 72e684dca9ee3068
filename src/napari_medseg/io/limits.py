"""How many voxel bytes a header may declare, checked before anything is allocated.

A corrupt or hostile header can claim any size (10^9 voxels in a 4 KB file); the readers
compare what it declares with the bytes that could hold it before allocating:

* uncompressed data must be in the file (a shorter file is truncated);
* deflate (gzip, zlib) expands at most 1032 times (a 258-byte match coded in 2 bits), so
  a stream cannot hold more than that;
* other codecs (bzip2, JPEG 2000, ...) get a generous ratio with a floor, which refuses
  absurd claims and no real scan;
* nothing above :data:`MAX_SCAN_BYTES` is read at once.
"""

from __future__ import annotations

from napari_medseg.errors import ScanReadError, UnsupportedScanError

#: Refuse to allocate more than this for one scan (bytes) unless asked: guards against headers
#: that claim absurd dimensions (a truncated or corrupt file claiming 10^12 voxels).
MAX_SCAN_BYTES = 16 * 1024**3
#: The largest expansion of a deflate stream (gzip, zlib): 258 bytes from 2 bits.
DEFLATE_MAX_RATIO = 1032
#: Expansion allowed for other codecs (bzip2, JPEG 2000, RLE...), above :data:`CODEC_FLOOR`.
CODEC_MAX_RATIO = 10_000
CODEC_FLOOR = 64 * 1024**2
#: Bytes of container overhead (gzip header and trailer, zlib header) a stream may add.
_SLACK = 1024


def _gib(n: float) -> str:
    return f"{n / 1024**3:.3g} GiB" if n >= 1024**3 else f"{n / 1024**2:.3g} MiB"


def check_declared_size(name: str, declared: int, stored: int, *, encoding: str) -> None:
    """Refuse a header declaring ``declared`` voxel bytes that ``stored`` bytes cannot hold.

    ``encoding``: ``"raw"`` (the bytes themselves), ``"deflate"`` (gzip / zlib) or
    ``"codec"`` (any other compression).  Raises :class:`ScanReadError` for a truncated file
    and :class:`UnsupportedScanError` above :data:`MAX_SCAN_BYTES`.
    """
    if declared > MAX_SCAN_BYTES:
        msg = (
            f"{name} declares {_gib(declared)} of voxels, more than the "
            f"{_gib(MAX_SCAN_BYTES)} napari-medseg reads at once; the header is probably "
            "corrupt, or crop the scan first"
        )
        raise UnsupportedScanError(msg)
    stored = max(0, stored)
    if encoding == "raw":
        limit = stored
    elif encoding == "deflate":
        limit = DEFLATE_MAX_RATIO * stored + _SLACK
    else:
        limit = max(CODEC_FLOOR, CODEC_MAX_RATIO * stored)
    if declared > limit:
        what = "holds" if encoding == "raw" else "has a compressed stream of"
        msg = (
            f"{name}: the header declares {declared:,} bytes of voxels but the file {what} "
            f"only {stored:,} bytes, which cannot hold them: the file is truncated or corrupt "
            "(a cut copy or a damaged header); copy or export it again"
        )
        raise ScanReadError(msg)
