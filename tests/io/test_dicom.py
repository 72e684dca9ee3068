"""DICOM series: sorting, spacing from positions, oblique direction, JPEG 2000, several series."""

from __future__ import annotations

import shutil

import numpy as np
import pytest
import SimpleITK as sitk

from napari_medseg.errors import AmbiguousDicomSeriesError, DicomSeriesError, GeometryMismatchError
from napari_medseg.io import list_dicom_series, read_label_map, read_scan


@pytest.fixture
def mr_series(mr_dicom_series):
    return mr_dicom_series


def _positions(folder):
    out = []
    for f in sorted(folder.iterdir()):
        r = sitk.ImageFileReader()
        r.SetFileName(str(f))
        r.ReadImageInformation()
        out.append([float(v) for v in r.GetMetaData("0020|0032").split("\\")])
    return np.array(out)


def test_oblique_mr_spacing_comes_from_positions_not_tags(mr_series, shared_data):
    # SpacingBetweenSlices says 2.0 mm; the positions are 7 mm apart
    positions = _positions(shared_data / "dicom_series_mr")
    steps = np.linalg.norm(np.diff(positions, axis=0), axis=1)
    assert mr_series.shape == (20, 256, 256)
    assert mr_series.spacing[0] == pytest.approx(np.mean(steps), abs=1e-3)
    assert mr_series.spacing[0] == pytest.approx(7.0, abs=0.01)
    assert mr_series.spacing[1:] == pytest.approx((0.859375, 0.859375))
    assert not mr_series.geometry.is_axis_aligned  # oblique kept
    # slice k lies where the k-th ImagePositionPatient along the normal says (LPS, reversed
    # order), up to the rounding of the positions in the files (< 0.1 mm)
    world = mr_series.geometry.index_to_world(np.array([[k, 0, 0] for k in range(20)]))
    normal = mr_series.geometry.direction[:, 0]
    zyx = positions[:, ::-1]
    expected = zyx[np.argsort(zyx @ normal)]
    np.testing.assert_allclose(world, expected, atol=0.1)
    assert mr_series.modality == "MR"


def test_one_file_opens_its_whole_series(mr_series, shared_data):
    scan = read_scan(shared_data / "dicom_series_mr" / "brain_007.dcm")
    assert scan.shape == mr_series.shape
    np.testing.assert_array_equal(scan.array, mr_series.array)


def test_jpeg2000_ct_series_decodes_in_hu_and_lines_up_with_its_labels(shared_data):
    ct = read_scan(shared_data / "dicom_series_ct")
    assert ct.shape == (20, 512, 512)
    assert ct.modality == "CT"
    assert ct.spacing == pytest.approx((2.0, 0.9765625, 0.9765625))
    assert ct.array.min() == -1024  # HU after rescale
    # the labels were exported with rows flipped: same physical box, different grid
    label_path = shared_data / "dicom_series_ct_labels" / "example_seg_dicom.nii.gz"
    with pytest.raises(GeometryMismatchError, match="direction differs"):
        read_label_map(label_path, like=ct)
    labels = read_label_map(label_path)
    # put the labels on the CT grid through physical space: flip y
    flip = np.diag(labels.geometry.direction) * np.diag(ct.geometry.direction)
    assert flip.tolist() == [1, -1, 1]
    on_ct_grid = labels.array[:, ::-1, :]
    np.testing.assert_allclose(
        labels.geometry.index_to_world([0, 511, 0]), ct.geometry.index_to_world([0, 0, 0])
    )
    # organs then sit on tissue, and the spleen (1) and liver (5) are homogeneous in HU
    assert (ct.array[on_ct_grid > 0] > -200).mean() > 0.95
    for organ in (1, 5):
        assert np.std(ct.array[on_ct_grid == organ]) < 40
        assert np.std(ct.array[labels.array == organ]) > 200  # the unflipped grid misses them


def test_folder_with_two_series_must_be_chosen(shared_data, tmp_path):
    for name in ("dicom_series_ct", "dicom_series_mr"):
        for f in sorted((shared_data / name).iterdir())[5:8]:
            shutil.copy(f, tmp_path / f"{name}_{f.name}")
    series = list_dicom_series(tmp_path)
    assert len(series) == 2
    with pytest.raises(AmbiguousDicomSeriesError, match="2 DICOM series") as info:
        read_scan(tmp_path)
    assert len(info.value.series) == 2
    by_modality = {s.modality: i for i, s in enumerate(series)}
    ct = read_scan(tmp_path, series=by_modality["CT"])
    assert ct.modality == "CT"
    assert ct.shape == (3, 512, 512)
    mr = read_scan(tmp_path, series=series[by_modality["MR"]].uid)
    assert mr.shape == (3, 256, 256)
    with pytest.raises(DicomSeriesError, match="no series"):
        read_scan(tmp_path, series=7)


def test_folder_without_dicom(tmp_path):
    (tmp_path / "notes.txt").write_text("hello")
    with pytest.raises(DicomSeriesError, match="no DICOM file"):
        read_scan(tmp_path)


def test_missing_slice_is_refused(shared_data, tmp_path):
    files = sorted((shared_data / "dicom_series_ct").iterdir())
    for f in files[:5] + files[6:9]:
        shutil.copy(f, tmp_path / f.name)
    with pytest.raises(DicomSeriesError, match="irregular slice positions"):
        read_scan(tmp_path)
