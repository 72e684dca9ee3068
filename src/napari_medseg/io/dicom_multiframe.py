"""Multi-frame greyscale DICOM: one file holding a whole volume (RT Dose, Enhanced CT/MR).

Where each frame lies:

* **Enhanced** images (Enhanced CT/MR/PET, Legacy Converted Enhanced) carry it in their
  functional groups, per frame or shared by all: PlanePositionSequence (ImagePositionPatient),
  PlaneOrientationSequence (ImageOrientationPatient), PixelMeasuresSequence (PixelSpacing,
  SliceThickness, SpacingBetweenSlices) and PixelValueTransformationSequence (RescaleSlope /
  Intercept).
* **Legacy** multi-frame images with a GridFrameOffsetVector (RT Dose) give one
  ImagePositionPatient and, for each frame, its offset along the slice normal (from zero), or
  its z coordinate (a first offset that is not zero; axial grids only), PS3.3 C.8.8.3.2.

Frames are sorted along the normal and must form one regular volume, as the slices of a
series must (:func:`~napari_medseg.io.slice_stack.stack_order`: the same messages for
repeated positions and gaps; frames off the line along the normal are refused too).  Step and
origin come from the positions; SliceThickness and SpacingBetweenSlices only go into the
metadata.  Values are rescaled as GDCM rescales a series (so a CT comes out in HU with the
same type as its series would): RescaleSlope / Intercept (per frame where they differ) or
DoseGridScaling (dose in DoseUnits); integral factors give the smallest integer type that
holds every value the stored bits allow, others float64.

pydicom decodes the pixels (every uncompressed syntax, big-endian included, RLE, and what its
installed plugins decode); GDCM (SimpleITK) decodes compressed frames pydicom has no decoder
for (JPEG Lossless), given a copy of the pixel module without rescale fields so that it
returns stored values.  Colour multi-frame images (ultrasound cine, secondary captures) and
frames without positions (cine loops, time series) are refused with a message saying so.
"""

from __future__ import annotations

import tempfile
import warnings
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import numpy.typing as npt
import SimpleITK as sitk

from napari_medseg.errors import DicomSeriesError, ScanReadError, UnsupportedScanError
from napari_medseg.io.itk import _itk_reason, check_header
from napari_medseg.io.slice_stack import slice_axes, stack_order
from napari_medseg.scan import Geometry

if TYPE_CHECKING:
    from pydicom.dataset import Dataset

#: Offsets of a GridFrameOffsetVector whose first is within this of zero are relative (mm).
_ZERO_OFFSET = 1e-6
#: Frames may lie this fraction of the smallest pixel spacing beside the line along the normal
#: (the real MR series of the shared data drifts by 0.09 mm, a tenth of its pixels; a tilted
#: gantry shifts every slice by a large part of the step).
OFF_LINE_FRACTION = 0.5
#: Header errors pydicom (or a malformed value) may raise while we interpret the dataset.
_HEADER_ERRORS = (ValueError, TypeError, KeyError, AttributeError, IndexError, OverflowError)


@dataclass(frozen=True)
class MultiFrameVolume:
    """A multi-frame file read as one volume: voxels ``(Z, Y, X)`` sorted along the slice
    normal, their geometry, and header values (the scan's metadata holds them under
    ``dicom_<key>``: ``n_frames``, ``orientation``, ``pixel_spacing``, ``dose_units``...)."""

    array: npt.NDArray[Any]
    geometry: Geometry
    metadata: dict[str, str]


@dataclass(frozen=True)
class _Frames:
    """Where each frame lies and how its values scale, in file order."""

    positions: npt.NDArray[np.float64]  # (N, 3) ImagePositionPatient, LPS mm
    orientation: npt.NDArray[np.float64]  # (6,) ImageOrientationPatient
    pixel_spacing: tuple[float, float]  # (row spacing, column spacing) mm
    slopes: npt.NDArray[np.float64]  # (N,)
    intercepts: npt.NDArray[np.float64]  # (N,)
    metadata: dict[str, str]


def _numbers(value: Any, n: int) -> npt.NDArray[np.float64] | None:
    """``n`` finite numbers from a DICOM value (one number or several), else ``None``."""
    if value is None:
        return None
    if isinstance(value, str | bytes):
        items: list[Any] = (value.decode("ascii", "replace") if isinstance(value, bytes)
                            else value).split("\\")
    elif isinstance(value, Iterable):
        items = list(value)
    else:
        items = [value]
    try:
        out = np.array([float(v) for v in items], dtype=np.float64)
    except (ValueError, TypeError, OverflowError):
        return None
    return out if out.size == n and bool(np.all(np.isfinite(out))) else None


def _spacing(value: Any) -> npt.NDArray[np.float64] | None:
    """A PixelSpacing of two positive numbers, else ``None``."""
    spacing = _numbers(value, 2)
    return spacing if spacing is not None and bool(np.all(spacing > 0)) else None


def _text(numbers: npt.NDArray[np.float64] | None) -> str:
    """Numbers as a DICOM multi-value string (``1\\0\\0``)."""
    return "" if numbers is None else "\\".join(f"{v:.10g}" for v in numbers)


def _item(source: Any, sequence: str) -> Any:
    """The first item of ``sequence`` in ``source`` (a dataset or item), else ``None``."""
    if source is None or sequence not in source:
        return None
    items = source[sequence].value
    return items[0] if items else None


def _enhanced_frames(ds: Dataset, n: int, name: str) -> _Frames:
    """Positions, orientation, spacing and rescale of each frame from the functional groups."""
    shared = _item(ds, "SharedFunctionalGroupsSequence")
    per_frame = list(ds.get("PerFrameFunctionalGroupsSequence") or [])
    if not per_frame:
        msg = (f"{name} has {n} frames but no per-frame functional groups, so nothing says "
               "where each frame lies; the file is incomplete: export it again")
        raise ScanReadError(msg)
    if len(per_frame) != n:
        msg = (f"{name} has {n} frames but {len(per_frame)} per-frame functional groups; the "
               "file is damaged: export it again")
        raise ScanReadError(msg)

    def group(i: int, sequence: str) -> Any:
        own = _item(per_frame[i], sequence)
        return own if own is not None else _item(shared, sequence)

    positions, orientations, spacings = [], [], []
    slopes, intercepts = np.ones(n), np.zeros(n)
    default_slope = _numbers(ds.get("RescaleSlope"), 1)
    default_intercept = _numbers(ds.get("RescaleIntercept"), 1)
    for i in range(n):
        position = _numbers(getattr(group(i, "PlanePositionSequence"),
                                    "ImagePositionPatient", None), 3)
        orientation = _numbers(getattr(group(i, "PlaneOrientationSequence"),
                                       "ImageOrientationPatient", None), 6)
        spacing = _spacing(getattr(group(i, "PixelMeasuresSequence"), "PixelSpacing", None))
        missing = [what for what, value in (("ImagePositionPatient", position),
                                            ("ImageOrientationPatient", orientation),
                                            ("PixelSpacing", spacing)) if value is None]
        if missing:
            msg = (f"{name} gives frame {i + 1} of {n} no usable {' or '.join(missing)} in its "
                   "functional groups, so its place in the volume is unknown; export the "
                   "volume again (or as a series of single-frame images)")
            raise ScanReadError(msg)
        positions.append(position)
        orientations.append(orientation)
        spacings.append(spacing)
        transform = group(i, "PixelValueTransformationSequence")
        slope = _numbers(getattr(transform, "RescaleSlope", None), 1)
        intercept = _numbers(getattr(transform, "RescaleIntercept", None), 1)
        slope = slope if slope is not None else default_slope
        intercept = intercept if intercept is not None else default_intercept
        slopes[i] = 1.0 if slope is None else slope[0]
        intercepts[i] = 0.0 if intercept is None else intercept[0]
    orientation_all, spacing_all = np.array(orientations), np.array(spacings)
    if np.max(np.abs(orientation_all - orientation_all[0])) > 1e-4:
        msg = (f"{name} holds frames in several orientations (a localiser, or stacks in "
               "several planes); napari-medseg reads one 3D volume: extract one stack first")
        raise DicomSeriesError(msg)
    if np.max(np.abs(spacing_all - spacing_all[0])) > 1e-4 * float(np.max(spacing_all)):
        msg = (f"{name} holds frames of different pixel spacings; napari-medseg reads one "
               "regular 3D volume: extract one stack first")
        raise DicomSeriesError(msg)
    measures = group(0, "PixelMeasuresSequence")
    metadata = {
        "slice_thickness": _text(_numbers(getattr(measures, "SliceThickness", None), 1)),
        "spacing_between_slices": _text(
            _numbers(getattr(measures, "SpacingBetweenSlices", None), 1)),
    }
    return _Frames(positions=np.array(positions), orientation=orientation_all[0],
                   pixel_spacing=(float(spacing_all[0][0]), float(spacing_all[0][1])),
                   slopes=slopes, intercepts=intercepts, metadata=metadata)


def _grid_offset_frames(ds: Dataset, n: int, name: str) -> _Frames:
    """Positions of the frames of a legacy multi-frame image with a GridFrameOffsetVector."""
    position = _numbers(ds.get("ImagePositionPatient"), 3)
    orientation = _numbers(ds.get("ImageOrientationPatient"), 6)
    spacing = _spacing(ds.get("PixelSpacing"))
    offsets = _numbers(ds.get("GridFrameOffsetVector"), n)
    missing = [what for what, value in (("ImagePositionPatient", position),
                                        ("ImageOrientationPatient", orientation),
                                        ("PixelSpacing", spacing),
                                        (f"GridFrameOffsetVector of {n} offsets", offsets))
               if value is None]
    if missing or position is None or orientation is None or spacing is None or (
            offsets is None):
        msg = (f"{name} holds {n} frames but no usable {', '.join(missing)}, so its frames "
               "cannot be placed; export the volume again")
        raise ScanReadError(msg)
    _row, _col, normal = slice_axes(orientation, name)
    if abs(offsets[0]) > _ZERO_OFFSET:  # z coordinates (allowed for axial grids only)
        if abs(abs(normal[2]) - 1.0) > 1e-4:
            msg = (f"{name} gives its frames' z coordinates (GridFrameOffsetVector starting at "
                   f"{offsets[0]:g}) on a grid that is not axial (ImageOrientationPatient "
                   f"{orientation.tolist()}), which DICOM does not allow; the frames cannot "
                   "be placed: export the dose grid again")
            raise ScanReadError(msg)
        positions = np.repeat(position[None], n, axis=0)
        positions[:, 2] = offsets
    else:
        positions = position[None] + offsets[:, None] * normal[None]
    scaling = _numbers(ds.get("DoseGridScaling"), 1)
    slope = _numbers(ds.get("RescaleSlope"), 1)
    intercept = _numbers(ds.get("RescaleIntercept"), 1)
    factor = scaling if scaling is not None else slope
    metadata = {
        "slice_thickness": _text(_numbers(ds.get("SliceThickness"), 1)),
        "spacing_between_slices": _text(_numbers(ds.get("SpacingBetweenSlices"), 1)),
        "grid_frame_offsets": _text(offsets),
        "dose_units": str(ds.get("DoseUnits", "") or ""),
        "dose_type": str(ds.get("DoseType", "") or ""),
        "dose_grid_scaling": _text(scaling),
    }
    return _Frames(positions=positions, orientation=orientation,
                   pixel_spacing=(float(spacing[0]), float(spacing[1])),
                   slopes=np.full(n, 1.0 if factor is None else factor[0]),
                   intercepts=np.full(n, 0.0 if intercept is None or scaling is not None
                                      else intercept[0]),
                   metadata=metadata)


def rescaled_dtype(slope: float, intercept: float, *, bits_stored: int, signed: bool
                   ) -> np.dtype[Any]:
    """The type GDCM gives rescaled values: for integral ``slope`` and ``intercept`` the
    smallest integer type holding every value ``bits_stored`` bits allow, else float64."""
    if slope != int(slope) or intercept != int(intercept):
        return np.dtype(np.float64)
    low, high = ((-(2 ** (bits_stored - 1)), 2 ** (bits_stored - 1) - 1) if signed
                 else (0, 2**bits_stored - 1))
    low, high = sorted((low * slope + intercept, high * slope + intercept))
    candidates = (np.uint8, np.uint16, np.uint32) if low >= 0 else (np.int8, np.int16, np.int32)
    for candidate in candidates:
        info = np.iinfo(candidate)
        if info.min <= low and high <= info.max:
            return np.dtype(candidate)
    return np.dtype(np.float64)


def _identity(frames: _Frames) -> bool:
    return bool(np.all(frames.slopes == 1.0) and np.all(frames.intercepts == 0.0))


def _output_dtype(frames: _Frames, stored: np.dtype[Any], bits_stored: int, signed: bool
                  ) -> np.dtype[Any]:
    if _identity(frames):
        return stored
    if np.ptp(frames.slopes) or np.ptp(frames.intercepts):
        return np.dtype(np.float64)
    return rescaled_dtype(float(frames.slopes[0]), float(frames.intercepts[0]),
                          bits_stored=bits_stored, signed=signed)


def _stored_dtype(ds: Dataset, name: str) -> np.dtype[Any]:
    """The type of the stored values (BitsAllocated, PixelRepresentation)."""
    bits = int(ds.BitsAllocated)
    representation = int(ds.get("PixelRepresentation", 0) or 0)
    if bits not in (8, 16, 32) or representation not in (0, 1):
        msg = (f"{name} stores its pixels in {bits} bits allocated with PixelRepresentation "
               f"{representation}; napari-medseg reads 8, 16 or 32 bits, unsigned (0) or "
               "signed (1): the file is damaged or not a scan")
        raise UnsupportedScanError(msg)
    return np.dtype(f"{'i' if representation else 'u'}{bits // 8}")


def _decode_with_pydicom(ds: Dataset) -> npt.NDArray[Any]:
    array = ds.pixel_array
    return array.astype(array.dtype.newbyteorder("="), copy=False)


def _decode_with_gdcm(ds: Dataset) -> npt.NDArray[Any]:
    """Stored values of compressed frames, decoded by GDCM from a copy of the pixel module
    alone (no rescale fields, so GDCM rescales nothing)."""
    from pydicom.dataset import Dataset, FileMetaDataset
    from pydicom.uid import MultiFrameGrayscaleWordSecondaryCaptureImageStorage, generate_uid

    copy = Dataset()
    copy.file_meta = FileMetaDataset()
    copy.file_meta.TransferSyntaxUID = ds.file_meta.TransferSyntaxUID
    copy.file_meta.MediaStorageSOPClassUID = MultiFrameGrayscaleWordSecondaryCaptureImageStorage
    copy.file_meta.MediaStorageSOPInstanceUID = generate_uid()
    copy.SOPClassUID = copy.file_meta.MediaStorageSOPClassUID
    copy.SOPInstanceUID = copy.file_meta.MediaStorageSOPInstanceUID
    for keyword in ("SamplesPerPixel", "PhotometricInterpretation", "NumberOfFrames", "Rows",
                    "Columns", "BitsAllocated", "BitsStored", "HighBit", "PixelRepresentation",
                    "PixelData"):
        copy[keyword] = ds[keyword]
    with tempfile.TemporaryDirectory(prefix="medseg-frames-") as folder:
        path = Path(folder) / "frames.dcm"
        copy.save_as(path, enforce_file_format=True)
        reader = sitk.ImageFileReader()
        reader.SetImageIO("GDCMImageIO")
        reader.SetFileName(str(path))
        image = reader.Execute()
        return sitk.GetArrayFromImage(image)


#: The pixel decoders, by name.
DECODERS: dict[str, Callable[[Dataset], npt.NDArray[Any]]] = {
    "pydicom": _decode_with_pydicom, "gdcm": _decode_with_gdcm}


def _decoders(ds: Dataset) -> list[Callable[[Dataset], npt.NDArray[Any]]]:
    """pydicom where it has a decoder for the transfer syntax; GDCM for compressed frames."""
    from pydicom.pixels import get_decoder

    syntax = ds.file_meta.TransferSyntaxUID
    decoders: list[Callable[[Dataset], npt.NDArray[Any]]] = []
    try:
        if get_decoder(syntax).is_available:
            decoders.append(_decode_with_pydicom)
    except NotImplementedError:
        pass
    if syntax.is_transfer_syntax and syntax.is_compressed:
        decoders.append(_decode_with_gdcm)  # GDCM misreads uncompressed 32-bit big-endian
    return decoders


def _stored_frames(ds: Dataset, name: str, shape: tuple[int, int, int], *,
                   decoder: str | None = None) -> npt.NDArray[Any]:
    """The stored values of every frame, ``(N, rows, columns)``, in file order."""
    decoders = _decoders(ds) if decoder is None else [DECODERS[decoder]]
    if not decoders:
        msg = (f"{name} uses transfer syntax {ds.file_meta.TransferSyntaxUID}, which neither "
               "pydicom nor GDCM decodes; convert it to an uncompressed transfer syntax (e.g. "
               "`gdcmconv --raw`) first")
        raise UnsupportedScanError(msg)
    reasons = []
    for decode in decoders:
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                array = decode(ds)
        except MemoryError:
            raise
        except Exception as exc:  # decoders raise many kinds on bad frames
            reasons.append(_itk_reason(exc) if isinstance(exc, RuntimeError) else
                           f"{type(exc).__name__}: {str(exc)[:300]}")
            continue
        if array.shape != shape:
            reasons.append(f"{len(array)} frames of {array.shape[1:]} decoded")
            continue
        return array
    msg = (f"the pixel data of {name} could not be decoded ({'; '.join(reasons)}); the file "
           "is damaged or truncated: export it again")
    raise ScanReadError(msg)


#: PhotometricInterpretation values of colour images (PS3.3 C.7.6.3.1.2, retired ones too).
_COLOUR = ("RGB", "PALETTE COLOR", "HSV", "ARGB", "CMYK", "YBR_FULL", "YBR_FULL_422",
           "YBR_PARTIAL_422", "YBR_PARTIAL_420", "YBR_ICT", "YBR_RCT")


def _refuse_colour(ds: Dataset, name: str, n: int) -> None:
    """Refuse colour frames, and a PhotometricInterpretation that is neither grey nor colour."""
    samples = int(ds.get("SamplesPerPixel", 1) or 1)
    photometric = str(ds.get("PhotometricInterpretation", "") or "").strip().upper()
    if samples == 1 and photometric in ("", "MONOCHROME1", "MONOCHROME2"):
        return
    if samples == 1 and photometric not in _COLOUR:
        msg = (f"{name} has an unknown PhotometricInterpretation {photometric[:64]!r} (grey "
               "images are MONOCHROME2 or MONOCHROME1); the file is damaged: export it again")
        raise ScanReadError(msg)
    sop_class = ds.get("SOPClassUID", "")
    kind = getattr(sop_class, "name", "") or str(sop_class) or "unknown SOP class"
    msg = (f"{name} is a colour multi-frame image ({kind}, {photometric or '?'}, "
           f"{samples} samples per pixel, {n} frames): colour multi-frame images (US cine, "
           "secondary capture) are not scans napari-medseg segments; open the greyscale CT, "
           "MR or PET series of the study instead")
    raise UnsupportedScanError(msg)


def read_multiframe(path: Path, *, decoder: str | None = None) -> MultiFrameVolume:
    """Read a multi-frame greyscale DICOM file as one volume sorted along the slice normal.

    The file must have passed :func:`~napari_medseg.io.dicom_structure.check_dicom_file`
    (the series listing does that).  ``decoder`` (``"pydicom"`` or ``"gdcm"``, see
    :data:`DECODERS`) replaces the usual choice: pydicom where it has a decoder for the
    transfer syntax, then GDCM for compressed frames.  Raises
    :class:`~napari_medseg.errors.ScanReadError` (or a subclass) naming the file.
    """
    import pydicom

    name = f"multi-frame DICOM file {path}"
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            ds = pydicom.dcmread(path)
    except Exception as exc:  # pydicom raises many kinds on damaged files
        msg = f"{name} could not be parsed ({type(exc).__name__}: {str(exc)[:300]})"
        raise ScanReadError(msg) from None
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            return _read(ds, path, name, decoder)
    except _HEADER_ERRORS as exc:
        msg = (f"{name} has a header napari-medseg cannot interpret ({type(exc).__name__}: "
               f"{str(exc)[:300]}); the file is damaged or not an image: export it again")
        raise ScanReadError(msg) from None


def _read(ds: Dataset, path: Path, name: str, decoder: str | None) -> MultiFrameVolume:
    n = int(ds.get("NumberOfFrames", 1) or 1)
    _refuse_colour(ds, name, n)
    if "PixelData" not in ds:
        msg = (f"{name} holds no integer pixel data (float pixels of a parametric map?); "
               "napari-medseg reads integer multi-frame images")
        raise UnsupportedScanError(msg)
    rows, columns = int(ds.Rows), int(ds.Columns)
    if "SharedFunctionalGroupsSequence" in ds or "PerFrameFunctionalGroupsSequence" in ds:
        frames = _enhanced_frames(ds, n, name)
    elif "GridFrameOffsetVector" in ds:
        frames = _grid_offset_frames(ds, n, name)
    else:
        sop_class = ds.get("SOPClassUID", "")
        kind = getattr(sop_class, "name", "") or str(sop_class) or "unknown SOP class"
        msg = (f"{name} holds {n} frames ({kind}) but no position for each (no per-frame "
               "functional groups, no GridFrameOffsetVector): a cine loop or a time series "
               "rather than a volume; napari-medseg reads multi-frame volumes whose frames "
               "carry their positions (RT Dose, Enhanced CT/MR): export it as a series of "
               "single-frame images or as NIfTI")
        raise UnsupportedScanError(msg)
    stored = _stored_dtype(ds, name)
    bits_stored = int(ds.get("BitsStored", stored.itemsize * 8) or stored.itemsize * 8)
    signed = stored.kind == "i"
    dtype = _output_dtype(frames, stored, min(bits_stored, stored.itemsize * 8), signed)
    check_header(path, (columns, rows, n), 1, max(dtype.itemsize, stored.itemsize))
    order, geometry = stack_order(
        frames.positions, frames.orientation, what=name, unit="frames",
        names=[str(i + 1) for i in range(n)], pixel_spacing=frames.pixel_spacing,
        max_off_line=OFF_LINE_FRACTION * min(frames.pixel_spacing),
        split_hint="extract one volume (one echo, phase or time point) first")
    if geometry is None:  # one frame (only a damaged header gets here: the caller checks)
        msg = f"{name} holds a single frame; read it as a DICOM slice"
        raise ScanReadError(msg)
    array = _stored_frames(ds, name, (n, rows, columns), decoder=decoder)[order]
    slopes, intercepts = frames.slopes[order], frames.intercepts[order]
    if not _identity(frames):
        values = array.astype(np.float64 if dtype.kind == "f" else np.int64)
        values *= slopes[:, None, None].astype(values.dtype)
        values += intercepts[:, None, None].astype(values.dtype)
        array = values.astype(dtype, copy=False)
    metadata = {
        "orientation": _text(frames.orientation),
        "pixel_spacing": _text(np.array(frames.pixel_spacing)),
        "n_frames": str(n),
        **{k: v for k, v in frames.metadata.items() if v},
    }
    return MultiFrameVolume(array=np.ascontiguousarray(array), geometry=geometry,
                            metadata=metadata)
