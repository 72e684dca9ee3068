"""The convert verb's core job: one read, scan or label map by content, nothing clobbered."""

from __future__ import annotations

import numpy as np
import pytest

from napari_medseg.errors import OutputExistsError, UnsupportedFormatError
from napari_medseg.events import run_to_end
from napari_medseg.io import read_label_map, read_scan, write_label_map, write_scan
from napari_medseg.io.convert import ConvertOptions, convert, convert_job
from napari_medseg.scan import Geometry, LabelMap, Scan


@pytest.fixture
def files(tmp_path):
    geometry = Geometry(spacing=(2.0, 0.8, 0.8), origin=(10.0, -5.0, 3.0),
                        direction=np.diag([1.0, -1.0, -1.0]))
    rng = np.random.default_rng(0)
    scan = Scan(rng.normal(0, 100, (6, 10, 12)).astype(np.int16), geometry, "CT")
    labels = LabelMap((scan.array > 50).astype(np.uint8) * 2, geometry,
                      {0: "background", 2: "bright"})
    return (write_scan(scan, tmp_path / "ct.nrrd"),
            write_label_map(labels, tmp_path / "seg.nrrd"), tmp_path)


def test_a_scan_stays_a_scan_and_labels_stay_labels(files):
    ct, seg, folder = files
    result = convert(ct, folder / "ct.nii.gz")
    assert (result.kind, result.shape, result.spacing) == ("scan", (6, 10, 12), (2.0, 0.8, 0.8))
    a, b = read_scan(ct), read_scan(result.path)
    np.testing.assert_array_equal(a.array, b.array)
    assert a.geometry.is_close(b.geometry)
    labels = convert(seg, folder / "seg.mha")
    assert labels.kind == "label map"
    back = read_label_map(labels.path)
    assert back.class_names == {0: "background", 2: "bright"}  # names travel NRRD -> MHA
    np.testing.assert_array_equal(back.array, read_label_map(seg).array)


def test_the_kind_can_be_forced(files):
    _ct, seg, folder = files
    assert convert(seg, folder / "as_scan.nrrd", ConvertOptions(labels=False)).kind == "scan"
    assert convert(seg, folder / "as_labels.nrrd",
                   ConvertOptions(labels=True)).kind == "label map"


def test_an_existing_output_is_refused_before_anything_is_read(files):
    ct, _seg, folder = files
    out = folder / "out.nrrd"
    out.write_bytes(b"keep me")
    job = convert_job(folder / "missing.nii.gz", out)  # the input is never opened
    with pytest.raises(OutputExistsError, match="already exists"):
        run_to_end(job)
    assert out.read_bytes() == b"keep me"
    with pytest.raises(UnsupportedFormatError):
        convert(ct, folder / "out.png")
    assert convert(ct, out, ConvertOptions(overwrite=True)).path == out
    assert read_scan(out).shape == (6, 10, 12)


def test_nan_voxels_are_refused_or_filled(tmp_path):
    array = np.ones((4, 5, 6), np.float32)
    array[1, 2, 3] = np.nan
    path = write_scan(Scan(array, Geometry.identity(3)), tmp_path / "nan.nrrd")
    from napari_medseg.errors import UnsupportedScanError

    with pytest.raises(UnsupportedScanError, match="NaN"):
        convert(path, tmp_path / "a.nrrd")
    filled = convert(path, tmp_path / "b.nrrd", ConvertOptions(nan_policy="fill"))
    assert np.isfinite(read_scan(filled.path).array).all()
