"""Bad input gets a clear error of the project's family; odd-but-valid input reads right."""

from __future__ import annotations

import gzip
import io

import nibabel as nib
import numpy as np
import pytest
import SimpleITK as sitk
import tifffile

from napari_medseg.errors import (
    MedsegError,
    ScanReadError,
    UnsupportedFormatError,
    UnsupportedScanError,
)
from napari_medseg.io import read_label_map, read_scan


@pytest.fixture
def ct_path(shared_data):
    return shared_data / "ct_abdomen" / "example_ct_sm.nii.gz"


def test_missing_file(tmp_path):
    with pytest.raises(ScanReadError, match="does not exist"):
        read_scan(tmp_path / "nope.nii.gz")


def test_empty_file(tmp_path):
    (tmp_path / "empty.nii.gz").write_bytes(b"")
    with pytest.raises(ScanReadError, match="empty file"):
        read_scan(tmp_path / "empty.nii.gz")


def test_text_file_with_image_suffix(tmp_path):
    (tmp_path / "notes.nrrd").write_text("these are not voxels\n" * 10)
    with pytest.raises(ScanReadError, match=r"notes\.nrrd could not be read"):
        read_scan(tmp_path / "notes.nrrd")


def test_unknown_format(tmp_path):
    (tmp_path / "scan.xyz").write_bytes(b"\x00" * 400)
    with pytest.raises(UnsupportedFormatError, match=r"\.nii\.gz"):
        read_scan(tmp_path / "scan.xyz")


@pytest.mark.parametrize("keep", [0.2, 0.6, 0.95])
def test_truncated_real_file(ct_path, tmp_path, keep):
    raw = gzip.decompress(ct_path.read_bytes())
    cut = tmp_path / "cut.nii"
    cut.write_bytes(raw[: int(len(raw) * keep)])
    with pytest.raises(ScanReadError, match="truncated or corrupt"):
        read_scan(cut)


def test_truncated_gzip(ct_path, tmp_path):
    data = ct_path.read_bytes()
    cut = tmp_path / "cut.nii.gz"
    cut.write_bytes(data[: len(data) // 2])
    with pytest.raises(ScanReadError):
        read_scan(cut)


def test_absurd_dimensions_are_refused_before_allocating(ct_path, tmp_path):
    img = nib.load(str(ct_path))
    header = img.header.copy()
    header.set_data_shape((30_000, 30_000, 30_000))
    hdr_bytes = header.binaryblock + b"\x00" * 4  # header + extension flag, no voxels
    (tmp_path / "huge.nii").write_bytes(hdr_bytes)
    with pytest.raises(UnsupportedScanError, match="GiB"):
        read_scan(tmp_path / "huge.nii")


def test_4d_file(tmp_path):
    nib.save(nib.Nifti1Image(np.zeros((8, 8, 4, 3), np.int16), np.eye(4)), tmp_path / "t.nii.gz")
    with pytest.raises(UnsupportedScanError, match="4D image"):
        read_scan(tmp_path / "t.nii.gz")


def test_nan_voxels_refused_or_filled(ct_path, tmp_path):
    scan = read_scan(ct_path)
    data = scan.array.astype(np.float32)
    data[0, 0, :5] = np.nan
    data[1, 2, 3] = np.inf
    image = sitk.GetImageFromArray(data)
    image.CopyInformation(sitk.ReadImage(str(ct_path)))
    sitk.WriteImage(image, str(tmp_path / "nan.nrrd"))
    with pytest.raises(UnsupportedScanError, match="6 NaN or infinite voxel"):
        read_scan(tmp_path / "nan.nrrd")
    filled = read_scan(tmp_path / "nan.nrrd", nan_policy="fill")
    assert np.isfinite(filled.array).all()
    assert filled.array[0, 0, 0] == np.nanmin(data[np.isfinite(data)])


def test_float_label_file_with_fractions_is_not_a_label_map(ct_path, tmp_path):
    scan = read_scan(ct_path)
    image = sitk.GetImageFromArray((scan.array / 7.0).astype(np.float32))
    sitk.WriteImage(image, str(tmp_path / "soft.nrrd"))
    with pytest.raises(UnsupportedScanError, match="not a label map"):
        read_label_map(tmp_path / "soft.nrrd")


def test_whole_number_float_labels_become_integers(tmp_path):
    arr = np.zeros((4, 5, 6), np.float32)
    arr[1:3, 1:3, 1:3] = 3
    sitk.WriteImage(sitk.GetImageFromArray(arr), str(tmp_path / "seg.nii.gz"))
    labels = read_label_map(tmp_path / "seg.nii.gz")
    assert labels.array.dtype == np.uint8
    assert set(np.unique(labels.array)) == {0, 3}


def test_colour_volume_is_refused(tmp_path):
    vec = sitk.GetImageFromArray(np.zeros((3, 4, 5, 3), np.uint8), isVector=True)
    sitk.WriteImage(vec, str(tmp_path / "rgb.mha"))
    with pytest.raises(UnsupportedScanError, match="values per voxel"):
        read_scan(tmp_path / "rgb.mha")


def test_every_error_is_a_medseg_error():
    for cls in (ScanReadError, UnsupportedFormatError, UnsupportedScanError):
        assert issubclass(cls, MedsegError)


# ------------------------------------------------------------------ 2D and TIFF


def test_png_grey_and_colour(shared_data, tmp_path):
    ct = read_scan(shared_data / "ct_abdomen" / "example_ct_sm.nii.gz")
    slice_u8 = np.clip((ct.array[15] + 200) / 2, 0, 255).astype(np.uint8)
    sitk.WriteImage(sitk.GetImageFromArray(slice_u8), str(tmp_path / "g.png"))
    grey = read_scan(tmp_path / "g.png")
    assert grey.ndim == 2
    np.testing.assert_array_equal(grey.array, slice_u8)
    rgb = np.stack([slice_u8, slice_u8, slice_u8], axis=-1)
    sitk.WriteImage(sitk.GetImageFromArray(rgb, isVector=True), str(tmp_path / "c.png"))
    np.testing.assert_array_equal(read_scan(tmp_path / "c.png").array, slice_u8)
    tinted = rgb.copy()
    tinted[..., 0] = 255
    sitk.WriteImage(sitk.GetImageFromArray(tinted, isVector=True), str(tmp_path / "t.png"))
    luma = read_scan(tmp_path / "t.png").array
    assert luma.shape == slice_u8.shape
    assert luma.mean() > slice_u8.mean()
    sitk.WriteImage(sitk.GetImageFromArray(slice_u8), str(tmp_path / "g.jpg"))
    assert read_scan(tmp_path / "g.jpg").shape == slice_u8.shape


def test_3d_and_2d_tiff(shared_data, tmp_path):
    ct = read_scan(shared_data / "ct_abdomen" / "example_ct_sm.nii.gz")
    tifffile.imwrite(tmp_path / "stack.tif", ct.array)
    stack = read_scan(tmp_path / "stack.tif")
    assert stack.shape == ct.shape
    np.testing.assert_array_equal(stack.array, ct.array)
    tifffile.imwrite(tmp_path / "one.tiff", ct.array[3])
    assert read_scan(tmp_path / "one.tiff").shape == ct.shape[1:]


def test_a_header_claiming_more_than_its_gzip_stream_holds_costs_no_allocation(ct_path,
                                                                                tmp_path):
    """The real CT's header edited to claim 100 times its slices (within deflate's largest
    expansion, so the size check lets it through): the reader allocates what the gzip trailer
    says the stream holds, not what the header claims, and says the file is truncated."""
    import tracemalloc

    raw = bytearray(gzip.decompress(ct_path.read_bytes()))
    header = nib.Nifti1Header.from_fileobj(io.BytesIO(bytes(raw[:348])))
    dims = header["dim"].copy()
    dims[3] *= 100
    header["dim"] = dims
    raw[:348] = header.binaryblock
    path = tmp_path / "claims_more.nii.gz"
    path.write_bytes(gzip.compress(bytes(raw)))
    declared = int(np.prod(dims[1:4])) * header.get_data_dtype().itemsize
    assert declared < path.stat().st_size * 1032  # not refused by the ratio check alone
    tracemalloc.start()
    try:
        with pytest.raises(ScanReadError, match="truncated or corrupt"):
            read_scan(path)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert peak < declared / 10, f"{peak / 2**20:.0f} MiB for a {declared / 2**20:.0f} MiB claim"
