"""Round trips for every writable format on real scans, checked in SimpleITK, nibabel and us."""

from __future__ import annotations

from pathlib import Path

import nibabel as nib
import numpy as np
import pytest
import SimpleITK as sitk

from napari_medseg.errors import OutputExistsError, UnsupportedFormatError
from napari_medseg.io import read_label_map, read_scan, write_label_map, write_scan
from napari_medseg.io.itk import geometry_of
from napari_medseg.scan import Geometry, LabelMap, Scan

WRITE_SUFFIXES = (".nii.gz", ".nii", ".nrrd", ".nhdr", ".mha", ".mhd")
REAL_SCANS = {
    "ct_nifti": "ct_abdomen/example_ct_sm.nii.gz",
    "mr_nrrd": "mri_lesion/brain1_image.nrrd",
    "ct_dicom_jpeg2000": "dicom_series_ct",
    "mr_dicom_oblique": "dicom_series_mr",
}


@pytest.fixture(scope="module", params=sorted(REAL_SCANS))
def real_scan(request, shared_data) -> Scan:
    if request.param == "mr_dicom_oblique":
        return request.getfixturevalue("mr_dicom_series")
    return read_scan(shared_data / REAL_SCANS[request.param])


def nibabel_geometry(path: Path) -> Geometry:
    """Our geometry computed independently from nibabel's RAS voxel-to-world affine."""
    affine = nib.load(str(path)).affine
    lps = np.diag([-1.0, -1.0, 1.0, 1.0]) @ affine  # RAS -> LPS, index order (i, j, k) = x,y,z
    rev = np.eye(4)[[2, 1, 0, 3]]  # (x, y, z) <-> (z, y, x) on both sides
    return Geometry.from_affine(rev @ lps @ rev)


def _assert_same_geometry(a: Geometry, b: Geometry) -> None:
    assert a.is_close(b, atol_mm=1e-3, atol_dir=1e-5), a.describe_difference(b)


@pytest.mark.parametrize("suffix", WRITE_SUFFIXES)
def test_label_map_round_trip_keeps_geometry(real_scan, suffix, tmp_path):
    # a real-looking label map: thresholds of the real scan
    values = real_scan.array
    array = (values > np.percentile(values, 60)).astype(np.uint8)
    array[values > np.percentile(values, 90)] = 2
    labels = LabelMap.like(real_scan, array, {0: "background", 1: "mid", 2: "bright"})
    out = write_label_map(labels, tmp_path / f"labels{suffix}")
    assert out.exists()

    back = read_label_map(out, like=real_scan)  # raises if the grid moved
    np.testing.assert_array_equal(back.array, array)
    assert back.array.dtype == np.uint8
    if suffix in (".nrrd", ".nhdr", ".mha", ".mhd"):
        assert back.class_names == {0: "background", 1: "mid", 2: "bright"}

    image = sitk.ReadImage(str(out))  # SimpleITK on its own
    _assert_same_geometry(geometry_of(image), real_scan.geometry)
    np.testing.assert_array_equal(sitk.GetArrayViewFromImage(image), array)
    if suffix.startswith(".nii"):  # nibabel on its own
        _assert_same_geometry(nibabel_geometry(out), real_scan.geometry)
    assert not [p.name for p in tmp_path.iterdir() if p.name.startswith(".medseg-tmp")]


@pytest.mark.parametrize("suffix", [".nii.gz", ".nrrd", ".mha"])
def test_scan_round_trip_keeps_voxels_geometry_and_modality(real_scan, suffix, tmp_path):
    out = write_scan(real_scan, tmp_path / f"scan{suffix}")
    back = read_scan(out)
    np.testing.assert_array_equal(back.array, real_scan.array)
    assert back.array.dtype == real_scan.array.dtype
    _assert_same_geometry(back.geometry, real_scan.geometry)
    if suffix != ".nii.gz":
        assert back.modality == real_scan.modality


def test_nifti_read_matches_nibabel(shared_data):
    path = shared_data / "brain_template" / "mni_icbm152_t1_tal_nlin_sym_09a_converted.nii.gz"
    scan = read_scan(path)
    _assert_same_geometry(scan.geometry, nibabel_geometry(path))
    np.testing.assert_array_equal(scan.array, np.asarray(nib.load(str(path)).dataobj).T)


def test_writers_refuse_to_overwrite_and_leave_no_partial_file(shared_data, tmp_path):
    scan = read_scan(shared_data / "ct_abdomen" / "example_ct_sm.nii.gz")
    target = tmp_path / "ct.nii.gz"
    target.write_bytes(b"precious")
    with pytest.raises(OutputExistsError, match="overwrite"):
        write_scan(scan, target)
    assert target.read_bytes() == b"precious"
    write_scan(scan, target, overwrite=True)
    assert read_scan(target).shape == scan.shape
    # a detached header/data pair: the data file clashing is refused too
    (tmp_path / "pair.zraw").write_bytes(b"precious")
    with pytest.raises(OutputExistsError, match=r"pair\.zraw"):
        write_scan(scan, tmp_path / "pair.mhd")
    assert (tmp_path / "pair.zraw").read_bytes() == b"precious"
    assert not (tmp_path / "pair.mhd").exists()


def test_writer_failure_leaves_target_untouched(shared_data, tmp_path, monkeypatch):
    scan = read_scan(shared_data / "ct_abdomen" / "example_ct_sm.nii.gz")
    target = tmp_path / "ct.nrrd"
    write_scan(scan, target)
    before = target.read_bytes()

    def failing_write(image, path, useCompression=False):
        Path(path).write_bytes(b"half a file")
        msg = "No space left on device"
        raise RuntimeError(msg)

    monkeypatch.setattr(sitk, "WriteImage", failing_write)
    with pytest.raises(Exception, match="No space left on device"):
        write_scan(scan, target, overwrite=True)
    assert target.read_bytes() == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["ct.nrrd"]


def test_unsupported_output_format(shared_data, tmp_path):
    scan = read_scan(shared_data / "ct_abdomen" / "example_ct_sm.nii.gz")
    with pytest.raises(UnsupportedFormatError, match=r"\.nii\.gz"):
        write_scan(scan, tmp_path / "ct.png")


@pytest.mark.parametrize("suffix", [".nii.gz", ".nrrd", ".mha"])
def test_2d_scan_and_labels_round_trip(shared_data, tmp_path, suffix):
    ct = read_scan(shared_data / "ct_abdomen" / "example_ct_sm.nii.gz")
    g = ct.geometry
    slice_geometry = Geometry(spacing=g.spacing[1:], origin=g.origin[1:],
                              direction=g.direction[1:, 1:])
    scan = Scan(ct.array[12].copy(), slice_geometry, modality="CT")
    out = write_scan(scan, tmp_path / f"slice{suffix}")
    back = read_scan(out)
    assert back.ndim == 2
    np.testing.assert_array_equal(back.array, scan.array)
    _assert_same_geometry(back.geometry, scan.geometry)
    labels = LabelMap.like(scan, (scan.array > 100).astype(np.uint8))
    label_out = write_label_map(labels, tmp_path / f"slice_labels{suffix}")
    np.testing.assert_array_equal(read_label_map(label_out, like=scan).array, labels.array)


def test_a_scan_read_from_a_label_file_becomes_its_label_map(tmp_path):
    from napari_medseg.errors import UnsupportedScanError
    from napari_medseg.io import label_map_from_scan
    from napari_medseg.io.read import label_values

    array = np.zeros((32, 6, 6), np.float32)
    array[1, 2, 2] = 7.0  # a class in one slice only: every value present is named
    array[20:, :3] = 2.0
    scan = Scan(array, Geometry.identity(3, (2.0, 1.0, 1.0)), source=tmp_path / "seg.nii.gz")
    labels = label_map_from_scan(scan)
    assert labels.array.dtype == np.uint8  # whole-number floats become the smallest integers
    assert labels.class_names == {0: "background", 2: "class 2", 7: "class 7"}
    assert (labels.geometry, labels.source, labels.name) == (scan.geometry, scan.source, "seg")
    path = write_label_map(LabelMap(labels.array, labels.geometry, {0: "bg", 2: "liver",
                                                                     7: "lesion"}),
                           tmp_path / "seg.nrrd")
    assert read_label_map(path).class_names == {0: "bg", 2: "liver", 7: "lesion"}  # header wins
    scan.array[0, 0, 0] = 0.5
    with pytest.raises(UnsupportedScanError, match=r"seg\.nii\.gz holds non-integer values"):
        label_map_from_scan(scan)
    assert label_values(np.array([[3, 0], [3, 9]], np.int32)) == [0, 3, 9]
    assert label_values(np.array([[3, 0], [3, 9]], np.uint16)) == [0, 3, 9]
    assert label_values(np.zeros((0, 2), np.uint8)) == [0]


def test_probabilities_are_one_multi_component_image_on_the_grid(tmp_path):
    from napari_medseg.errors import ScanWriteError
    from napari_medseg.io import write_probabilities

    geometry = Geometry(spacing=(2.0, 0.8, 0.8), origin=(10.0, -5.0, 3.0),
                        direction=np.diag([1.0, -1.0, -1.0]))
    rng = np.random.default_rng(0)
    p = rng.random((3, 4, 5, 6)).astype(np.float16)
    path = write_probabilities(p, geometry, tmp_path / "p.nrrd")
    image = sitk.ReadImage(str(path))
    assert image.GetNumberOfComponentsPerPixel() == 3
    np.testing.assert_allclose(np.moveaxis(sitk.GetArrayFromImage(image), -1, 0), p, atol=1e-3)
    assert geometry_of(image).is_close(geometry)
    with pytest.raises(OutputExistsError):
        write_probabilities(p, geometry, path)
    with pytest.raises(ScanWriteError, match=r"\.nrrd or \.mha"):
        write_probabilities(p, geometry, tmp_path / "p.nii.gz")
    with pytest.raises(ValueError, match="classes"):
        write_probabilities(p[0], geometry, tmp_path / "q.nrrd")
