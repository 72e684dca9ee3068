"""Enhanced CT / MR multi-frame files made from a real single-frame series (tests and fuzz seeds).

pydicom has no Enhanced CT or MR test file with real pixels: these put a real series' slices
into one Enhanced CT/MR dataset by hand (Explicit VR Little Endian, uncompressed), with the
functional groups a scanner writes: plane orientation, pixel measures and pixel value
transformation shared; plane position and frame content per frame.
"""

from __future__ import annotations

import io
from pathlib import Path

import numpy as np
import pydicom
from pydicom.dataset import Dataset, FileMetaDataset
from pydicom.sequence import Sequence
from pydicom.uid import (
    EnhancedCTImageStorage,
    EnhancedMRImageStorage,
    ExplicitVRLittleEndian,
    generate_uid,
)


def sorted_slices(folder: Path, names: list[str] | None = None) -> list[Dataset]:
    """The slices of a series folder (or those ``names``) read by pydicom, sorted along the
    slice normal."""
    files = sorted(folder.iterdir()) if names is None else [folder / n for n in names]
    slices = [pydicom.dcmread(f) for f in files]
    orientation = np.array(slices[0].ImageOrientationPatient, dtype=np.float64)
    normal = np.cross(orientation[:3], orientation[3:])
    return sorted(slices, key=lambda d: float(np.dot(np.array(d.ImagePositionPatient,
                                                               dtype=np.float64), normal)))


def _item(**values: object) -> Sequence:
    item = Dataset()
    for keyword, value in values.items():
        setattr(item, keyword, value)
    return Sequence([item])


def enhanced_dataset(slices: list[Dataset], *, order: list[int] | None = None,
                     intercepts: list[float] | None = None,
                     positions: dict[int, list[float]] | None = None,
                     crop: int | None = None) -> Dataset:
    """An Enhanced CT (CT slices) or Enhanced MR (others) dataset holding ``slices`` as frames.

    ``order``: which slice each frame holds (default: all, in order); ``intercepts``: a
    RescaleIntercept per frame (per-frame groups) instead of the shared one; ``positions``:
    ImagePositionPatient replaced for some frames; ``crop``: keep only the central
    ``crop`` x ``crop`` pixels (positions kept: for small fuzz seeds).
    """
    order = list(range(len(slices))) if order is None else [int(i) for i in order]
    first = slices[0]
    ct = first.Modality == "CT"
    sop_class = EnhancedCTImageStorage if ct else EnhancedMRImageStorage
    pixels = np.stack([slices[i].pixel_array for i in order])
    if crop is not None:
        y0, x0 = pixels.shape[1] // 2 - crop // 2, pixels.shape[2] // 2 - crop // 2
        pixels = np.ascontiguousarray(pixels[:, y0 : y0 + crop, x0 : x0 + crop])
    ds = Dataset()
    ds.file_meta = FileMetaDataset()
    ds.file_meta.TransferSyntaxUID = ExplicitVRLittleEndian
    ds.file_meta.MediaStorageSOPClassUID = sop_class
    ds.file_meta.MediaStorageSOPInstanceUID = generate_uid()
    ds.SOPClassUID, ds.SOPInstanceUID = sop_class, ds.file_meta.MediaStorageSOPInstanceUID
    ds.StudyInstanceUID = first.StudyInstanceUID or generate_uid()
    ds.SeriesInstanceUID, ds.SeriesNumber = generate_uid(), 99
    ds.FrameOfReferenceUID = first.FrameOfReferenceUID
    ds.Modality, ds.SeriesDescription = first.Modality, "enhanced, built by the test"
    ds.NumberOfFrames, ds.Rows, ds.Columns = pixels.shape
    ds.SamplesPerPixel, ds.PhotometricInterpretation = 1, "MONOCHROME2"
    ds.BitsAllocated, ds.BitsStored = first.BitsAllocated, first.BitsStored
    ds.HighBit, ds.PixelRepresentation = first.HighBit, first.PixelRepresentation
    shared = Dataset()
    shared.PlaneOrientationSequence = _item(
        ImageOrientationPatient=list(first.ImageOrientationPatient))
    shared.PixelMeasuresSequence = _item(
        PixelSpacing=list(first.PixelSpacing), SliceThickness=first.SliceThickness,
        SpacingBetweenSlices=first.get("SpacingBetweenSlices", first.SliceThickness))
    rescale = {"RescaleSlope": first.get("RescaleSlope", 1),
               "RescaleIntercept": first.get("RescaleIntercept", 0),
               "RescaleType": "HU" if ct else "US"}
    if intercepts is None:
        shared.PixelValueTransformationSequence = _item(**rescale)
    ds.SharedFunctionalGroupsSequence = Sequence([shared])
    per_frame = []
    for k, index in enumerate(order):
        frame = Dataset()
        position = (positions or {}).get(k, list(slices[index].ImagePositionPatient))
        frame.PlanePositionSequence = _item(ImagePositionPatient=position)
        frame.FrameContentSequence = _item(InStackPositionNumber=index + 1, StackID="1")
        if intercepts is not None:
            frame.PixelValueTransformationSequence = _item(
                **{**rescale, "RescaleIntercept": intercepts[k]})
        per_frame.append(frame)
    ds.PerFrameFunctionalGroupsSequence = Sequence(per_frame)
    ds.PixelData = pixels.tobytes()
    return ds


def dataset_bytes(ds: Dataset) -> bytes:
    """The DICOM file (preamble, file meta information, dataset) of ``ds``."""
    buffer = io.BytesIO()
    ds.save_as(buffer, enforce_file_format=True)
    return buffer.getvalue()
