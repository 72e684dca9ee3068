"""Multi-frame greyscale DICOM on real files: RT Dose, Enhanced CT/MR built from real series.

pydicom's own RT Dose test file (15 frames, GridFrameOffsetVector) in its three transfer
syntaxes; Enhanced CT and MR made from the shared real series, by highdicom (Legacy Converted
Enhanced CT, JPEG 2000 frames as in the series) and by hand with pydicom (uncompressed, frames
shuffled, per-frame rescale); each must read to the voxels and grid of its series.
"""

from __future__ import annotations

import shutil
from pathlib import Path
from typing import Any

import numpy as np
import pydicom
import pytest
from pydicom.dataset import Dataset, FileMetaDataset
from pydicom.uid import (
    ExplicitVRLittleEndian,
    MultiFrameGrayscaleWordSecondaryCaptureImageStorage,
    generate_uid,
)

from napari_medseg.errors import AmbiguousDicomSeriesError, DicomSeriesError, UnsupportedScanError
from napari_medseg.io import list_dicom_series, read_dicom_reference, read_scan, write_label_map
from napari_medseg.io.dicom_multiframe import read_multiframe
from napari_medseg.io.dicom_seg import MissingReferenceError
from napari_medseg.scan import LabelMap
from tests.io.multiframe_helpers import enhanced_dataset, sorted_slices

TEST_FILES = Path(pydicom.__file__).parent / "data" / "test_files"
RT_DOSE = ("rtdose.dcm", "rtdose_expb.dcm", "rtdose_rle.dcm")


def _alone(name: str, tmp_path: Path) -> Path:
    """pydicom's test file ``name`` copied alone into a folder; the copy's path."""
    folder = tmp_path / Path(name).stem
    folder.mkdir()
    return Path(shutil.copy(TEST_FILES / name, folder / name))


def _dose_reference() -> np.ndarray:
    """rtdose.dcm's dose (Gy), decoded by pydicom alone: stored values x DoseGridScaling."""
    ds = pydicom.dcmread(TEST_FILES / "rtdose.dcm")
    return ds.pixel_array.astype(np.float64) * float(ds.DoseGridScaling)


@pytest.mark.parametrize("name", RT_DOSE)
def test_rt_dose_reads_in_every_transfer_syntax_with_its_grid_and_dose(name, tmp_path):
    path = _alone(name, tmp_path)
    for opened in (path, path.parent):  # the file, or its folder
        scan = read_scan(opened)
        assert scan.shape == (15, 10, 10)
        # z step from GridFrameOffsetVector (0, 5, ..., 70 mm), in-plane from PixelSpacing
        assert scan.spacing == pytest.approx((5.0, 10.0, 10.0))
        # ImagePositionPatient (189.43125, 199.43125, -761.87), in (z, y, x) order
        assert scan.geometry.origin == pytest.approx((-761.87, 199.43125, 189.43125))
        np.testing.assert_array_equal(scan.geometry.direction, np.eye(3))
        world = scan.geometry.index_to_world(np.array([[k, 0, 0] for k in range(15)]))
        np.testing.assert_allclose(world[:, 0], -761.87 + 5.0 * np.arange(15))
        np.testing.assert_allclose(scan.array, _dose_reference(), rtol=1e-12)
        assert scan.array.dtype == np.float64
        assert scan.metadata["dicom_modality"] == "RTDOSE"
        assert scan.metadata["dicom_dose_units"] == "RELATIVE"
        assert scan.metadata["dicom_n_frames"] == "15"


def test_rt_dose_gives_the_same_voxels_in_its_three_transfer_syntaxes(tmp_path):
    scans = [read_scan(_alone(name, tmp_path)) for name in RT_DOSE]
    for scan in scans[1:]:
        np.testing.assert_array_equal(scan.array, scans[0].array)
        assert scan.geometry.is_close(scans[0].geometry, atol_mm=1e-9)


def test_rt_dose_frames_stored_in_reverse_come_back_sorted(tmp_path):
    """The same dose grid written top frame first (offsets 0, -5, ..., -70 from the top)."""
    ds = pydicom.dcmread(TEST_FILES / "rtdose.dcm")
    frames = ds.pixel_array[::-1].copy()
    ds.ImagePositionPatient = [189.43125, 199.43125, -761.87 + 70.0]
    ds.GridFrameOffsetVector = [-5.0 * k for k in range(15)]
    ds.PixelData = frames.tobytes()
    ds.save_as(tmp_path / "reversed.dcm")
    scan = read_scan(tmp_path / "reversed.dcm")
    np.testing.assert_allclose(scan.array, _dose_reference(), rtol=1e-12)
    assert scan.geometry.origin == pytest.approx((-761.87, 199.43125, 189.43125))
    assert scan.spacing == pytest.approx((5.0, 10.0, 10.0))


def test_rt_dose_beside_its_ct_series_is_a_series_of_its_own(shared_data, tmp_path):
    for f in (shared_data / "dicom_series_ct").iterdir():
        shutil.copy(f, tmp_path / f.name)
    shutil.copy(TEST_FILES / "rtdose.dcm", tmp_path / "rtdose.dcm")
    found = list_dicom_series(tmp_path)
    assert [(s.n_slices, s.multiframe) for s in found] == [(20, False), (15, True)]
    assert "15 frame(s) in one multi-frame file" in found[1].label()
    with pytest.raises(AmbiguousDicomSeriesError, match="15 frame"):
        read_scan(tmp_path)
    assert read_scan(tmp_path / "rtdose.dcm").shape == (15, 10, 10)
    assert read_scan(tmp_path, series=1).shape == (15, 10, 10)
    assert read_scan(tmp_path, series=0).shape == (20, 512, 512)


# -- Enhanced CT / MR built from the real series ---------------------------------------------


def enhanced_from_series(folder: Path, out: Path, **options: Any) -> Path:
    """The series in ``folder`` as one Enhanced CT/MR file ``out`` (see
    :func:`tests.io.multiframe_helpers.enhanced_dataset` for ``options``)."""
    dataset = enhanced_dataset(sorted_slices(folder), **options)
    dataset.save_as(out, enforce_file_format=True)
    return out


@pytest.fixture(scope="module")
def ct_series(shared_data):
    return read_scan(shared_data / "dicom_series_ct")


def _same_scan(scan, series) -> None:
    np.testing.assert_array_equal(scan.array, series.array)
    assert scan.array.dtype == series.array.dtype
    assert scan.geometry.is_close(series.geometry, atol_mm=1e-4, atol_dir=1e-6)


@pytest.mark.parametrize("decoder", [None, "pydicom", "gdcm"])
def test_enhanced_ct_converted_by_highdicom_matches_its_series(shared_data, ct_series, tmp_path,
                                                               decoder):
    """highdicom's Legacy Converted Enhanced CT keeps the series' JPEG 2000 frames; pydicom
    and GDCM (the decoder for compressed frames pydicom cannot decode) both read them."""
    hd = pytest.importorskip("highdicom")
    slices = [pydicom.dcmread(f) for f in sorted((shared_data / "dicom_series_ct").iterdir())]
    for ds in slices:  # the anonymised series keeps these in its file meta only
        ds.SOPClassUID = ds.get("SOPClassUID") or ds.file_meta.MediaStorageSOPClassUID
        ds.SOPInstanceUID = ds.get("SOPInstanceUID") or ds.file_meta.MediaStorageSOPInstanceUID
    image = hd.legacy.LegacyConvertedEnhancedCTImage(
        slices, series_instance_uid=hd.UID(), series_number=99, sop_instance_uid=hd.UID(),
        instance_number=1)
    path = tmp_path / "enhanced_ct.dcm"
    image.save_as(path)
    assert "SharedFunctionalGroupsSequence" in pydicom.dcmread(path, stop_before_pixels=True)
    if decoder is None:
        scan = read_scan(path)
        _same_scan(scan, ct_series)
        assert scan.modality == "CT"
        assert scan.metadata["dicom_slice_thickness"] == "3"
    else:
        volume = read_multiframe(path, decoder=decoder)
        _same_scan(read_scan(path), ct_series)
        np.testing.assert_array_equal(volume.array, ct_series.array)
        assert volume.geometry.is_close(ct_series.geometry, atol_mm=1e-4)


def test_enhanced_ct_with_shuffled_frames_matches_its_series(shared_data, ct_series, tmp_path):
    order = list(np.random.default_rng(25).permutation(20))
    assert order != sorted(order)
    path = enhanced_from_series(shared_data / "dicom_series_ct", tmp_path / "ct.dcm",
                                order=order)
    scan = read_scan(path)
    _same_scan(scan, ct_series)  # int16 HU, as GDCM gives the series
    assert scan.modality == "CT"
    assert scan.metadata["dicom_orientation"] == "1\\0\\0\\0\\1\\0"


def test_enhanced_mr_of_an_oblique_series_matches_it(shared_data, mr_dicom_series, tmp_path):
    path = enhanced_from_series(shared_data / "dicom_series_mr", tmp_path / "mr.dcm",
                                order=list(range(19, -1, -1)))
    scan = read_scan(path)
    _same_scan(scan, mr_dicom_series)
    assert not scan.geometry.is_axis_aligned
    assert scan.modality == "MR"


def test_per_frame_rescale_applies_to_its_own_frame(shared_data, ct_series, tmp_path):
    order = list(np.random.default_rng(3).permutation(20))
    # frame k holds sorted slice order[k]; its intercept shifts that slice by order[k] / 2
    intercepts = [-1024 + order[k] / 2 for k in range(20)]
    path = enhanced_from_series(shared_data / "dicom_series_ct", tmp_path / "ct.dcm",
                                order=order, intercepts=intercepts)
    scan = read_scan(path)
    assert scan.array.dtype == np.float64
    expected = ct_series.array.astype(np.float64) + np.arange(20)[:, None, None] / 2
    np.testing.assert_array_equal(scan.array, expected)


def test_a_missing_frame_is_refused_naming_the_gap(shared_data, tmp_path):
    order = [k for k in range(20) if k != 6]  # the series is 2 mm apart: a 4 mm gap
    path = enhanced_from_series(shared_data / "dicom_series_ct", tmp_path / "ct.dcm",
                                order=order)
    with pytest.raises(DicomSeriesError, match="irregular frame positions") as error:
        read_scan(path)
    message = str(error.value)
    assert "4 mm between frame 6 at" in message
    assert "and frame 7 at" in message
    assert "median step is 2 mm" in message
    assert "ct.dcm" in message


def test_frames_at_one_position_are_refused(shared_data, tmp_path):
    path = enhanced_from_series(shared_data / "dicom_series_ct", tmp_path / "ct.dcm",
                                order=[*range(20), 4])
    with pytest.raises(DicomSeriesError, match="21 frames at only 20 positions"):
        read_scan(path)


def test_frames_off_the_line_along_the_normal_are_refused(shared_data, tmp_path):
    slices = sorted_slices(shared_data / "dicom_series_ct")
    shifted = [float(v) for v in slices[9].ImagePositionPatient]
    shifted[0] += 3.0  # 3 mm sideways: three pixels
    path = enhanced_from_series(shared_data / "dicom_series_ct", tmp_path / "ct.dcm",
                                positions={9: shifted})
    with pytest.raises(DicomSeriesError,
                       match=r"off the line along the slice normal \(frame 10 lies 3 mm beside"):
        read_scan(path)


@pytest.mark.parametrize("name", ["SC_rgb_rle_2frame.dcm", "examples_ybr_color.dcm"])
def test_colour_multiframe_is_refused_clearly(name, tmp_path):
    path = _alone(name, tmp_path)
    for opened in (path, path.parent):
        with pytest.raises(UnsupportedScanError) as error:
            read_scan(opened)
        message = str(error.value)
        assert "colour multi-frame images (US cine, secondary capture) are not scans " \
               "napari-medseg segments" in message
        assert name in message


def test_frames_without_positions_are_refused_clearly(shared_data, tmp_path):
    """A multi-frame secondary capture of the CT's slices: a stack, but nowhere placed."""
    slices = sorted_slices(shared_data / "dicom_series_ct")
    ds = Dataset()
    ds.file_meta = FileMetaDataset()
    ds.file_meta.TransferSyntaxUID = ExplicitVRLittleEndian
    ds.file_meta.MediaStorageSOPClassUID = MultiFrameGrayscaleWordSecondaryCaptureImageStorage
    ds.file_meta.MediaStorageSOPInstanceUID = generate_uid()
    ds.SOPClassUID = MultiFrameGrayscaleWordSecondaryCaptureImageStorage
    ds.SOPInstanceUID = ds.file_meta.MediaStorageSOPInstanceUID
    ds.SeriesInstanceUID, ds.Modality = generate_uid(), "OT"
    ds.Rows, ds.Columns, ds.NumberOfFrames = 512, 512, 20
    ds.SamplesPerPixel, ds.PhotometricInterpretation = 1, "MONOCHROME2"
    ds.BitsAllocated, ds.BitsStored, ds.HighBit, ds.PixelRepresentation = 16, 12, 11, 0
    ds.PixelData = np.stack([s.pixel_array for s in slices]).tobytes()
    ds.save_as(tmp_path / "capture.dcm", enforce_file_format=True)
    with pytest.raises(UnsupportedScanError, match="no position for each") as error:
        read_scan(tmp_path / "capture.dcm")
    assert "capture.dcm" in str(error.value)


def test_dicom_seg_on_a_multiframe_scan_is_refused_clearly(tmp_path):
    path = _alone("rtdose.dcm", tmp_path)
    scan = read_scan(path)
    with pytest.raises(DicomSeriesError, match="multi-frame DICOM image"):
        read_dicom_reference(path)
    labels = LabelMap(array=(scan.array > 1.0).astype(np.uint8), geometry=scan.geometry,
                      class_names={0: "background", 1: "high dose"})
    with pytest.raises(MissingReferenceError, match="multi-frame DICOM file"):
        write_label_map(labels, tmp_path / "dose_seg.dcm", reference=scan)
