"""The reader, writer and sample-data contributions in a real napari viewer (under Xvfb)."""

from __future__ import annotations

import shutil

import numpy as np
import pytest

from napari_medseg._napari import notify
from napari_medseg._napari import reader as reader_module
from napari_medseg.io import read_label_map, read_scan
from tests.conftest import SAMPLE_VOLUMES

PLUGIN = "napari-medseg"
pytestmark = pytest.mark.gui


def _assert_layer_placed_like(layer, scan):
    """Voxel corners land at the scan's physical positions, and scale/translate match."""
    g = scan.geometry
    np.testing.assert_allclose(layer.scale, g.spacing)
    np.testing.assert_allclose(layer.affine.affine_matrix[:-1, :-1], g.direction, atol=1e-9)
    np.testing.assert_allclose(g.direction @ layer.translate, g.origin, atol=1e-6)
    if g.is_axis_aligned:
        np.testing.assert_allclose(layer.translate, g.origin)
    corners = np.array([[0, 0, 0], [s - 1 for s in scan.shape], [3, 7, 11]], dtype=float)
    for idx in corners:
        np.testing.assert_allclose(layer.data_to_world(idx), g.index_to_world(idx), atol=1e-4)


@pytest.mark.parametrize(
    "relpath",
    ["ct_abdomen/example_ct_sm.nii.gz", "mri_lesion/brain1_image.nrrd", "dicom_series_ct"],
)
def test_scan_opens_as_image_in_physical_space(make_napari_viewer, shared_data, relpath):
    viewer = make_napari_viewer()
    layers = viewer.open(str(shared_data / relpath), plugin=PLUGIN)
    assert len(layers) == 1
    layer = layers[0]
    assert layer._type_string == "image"
    scan = read_scan(shared_data / relpath)
    np.testing.assert_array_equal(layer.data, scan.array)
    _assert_layer_placed_like(layer, scan)
    if scan.modality == "CT":
        assert tuple(layer.contrast_limits) == (-160.0, 240.0)  # soft-tissue window


def test_oblique_dicom_keeps_its_rotation(make_napari_viewer, shared_data, mr_dicom_series):
    viewer = make_napari_viewer()
    layer = viewer.open(str(shared_data / "dicom_series_mr"), plugin=PLUGIN)[0]
    _assert_layer_placed_like(layer, mr_dicom_series)
    assert not np.allclose(layer.affine.affine_matrix[:-1, :-1], np.eye(3))


def test_label_file_opens_as_labels_on_top_of_its_scan(make_napari_viewer, shared_data):
    viewer = make_napari_viewer()
    ct_path = shared_data / "ct_abdomen" / "example_ct_sm.nii.gz"
    seg_path = shared_data / "ct_abdomen" / "example_seg.nii.gz"
    image = viewer.open(str(ct_path), plugin=PLUGIN)[0]
    labels = viewer.open(str(seg_path), plugin=PLUGIN)[0]
    assert labels._type_string == "labels"
    _assert_layer_placed_like(labels, read_label_map(seg_path))
    np.testing.assert_allclose(labels.extent.world, image.extent.world)
    assert 5 in list(labels.features["index"])


def test_saved_labels_reopen_on_the_scan_grid(make_napari_viewer, shared_data, tmp_path):
    viewer = make_napari_viewer()
    nrrd = shared_data / "mri_lesion" / "brain1_label.nrrd"
    scan = read_scan(shared_data / "mri_lesion" / "brain1_image.nrrd")
    labels = viewer.open(str(nrrd), plugin=PLUGIN)[0]
    labels.data[3, 100:110, 100:110] = 2  # a correction
    for suffix in (".nii.gz", ".nrrd", ".mha"):
        out = tmp_path / f"corrected{suffix}"
        viewer.layers.selection = {labels}
        viewer.layers.save(str(out), selected=True, plugin=PLUGIN)
        back = read_label_map(out, like=scan)
        np.testing.assert_array_equal(back.array, labels.data)
        reopened = viewer.open(str(out), plugin=PLUGIN)[0]
        _assert_layer_placed_like(reopened, scan)


def test_sample_data_loads_real_scans_with_labels(make_napari_viewer):
    viewer = make_napari_viewer()
    for key in ("ct_abdomen", "mr_brain_lesion", "mr_abdomen"):
        layers = viewer.open_sample(PLUGIN, key)
        assert [layer._type_string for layer in layers] == ["image", "labels"]
        assert layers[0].data.ndim == 3
        np.testing.assert_allclose(layers[0].extent.world, layers[1].extent.world)


def test_bad_file_gives_a_clear_notification_and_the_viewer_lives(
    make_napari_viewer, tmp_path, monkeypatch
):
    shown = []
    monkeypatch.setattr(notify, "show_error", shown.append)
    viewer = make_napari_viewer()
    bad = tmp_path / "broken.nrrd"
    header = "NRRD0004\ntype: short\ndimension: 3\nsizes: 10 10 10\nendian: little\n"
    bad.write_text(header + "encoding: raw\n\n")  # and no voxels
    assert viewer.open(str(bad), plugin=PLUGIN) == []
    assert len(shown) == 1
    assert "broken.nrrd" in shown[0]
    assert "truncated or corrupt" in shown[0]
    assert len(viewer.layers) == 0
    viewer.open_sample(PLUGIN, "ct_abdomen")
    assert len(viewer.layers) == 2


def test_dicom_folder_with_two_series_asks_which(
    make_napari_viewer, shared_data, tmp_path, monkeypatch
):
    for name in ("dicom_series_ct", "dicom_series_mr"):
        for f in sorted((shared_data / name).iterdir())[5:8]:
            shutil.copy(f, tmp_path / f"{name}_{f.name}")
    asked = []

    def pick_mr(path, series):
        asked.append([s.modality for s in series])
        return [s.modality for s in series].index("MR")

    from napari_medseg._napari import dicom_choice

    monkeypatch.setattr(dicom_choice, "ask_series", pick_mr)
    viewer = make_napari_viewer()
    layers = viewer.open(str(tmp_path), plugin=PLUGIN)
    assert sorted(asked[0]) == ["CT", "MR"]
    assert layers[0].data.shape == (3, 256, 256)
    monkeypatch.setattr(dicom_choice, "ask_series", lambda path, series: None)
    assert reader_module.read_layers(str(tmp_path)) == [(None,)]


@pytest.mark.parametrize(("name", "kind"), [
    ("ct_abdomen_organs.nii.gz", "labels"),  # 42 values, no label word in its name: content
    ("mr_abdomen_organs.nii.gz", "labels"),
    ("ct_abdomen.nii.gz", "image"),
    ("mr_brain_lesion.nrrd", "image"),
])
def test_files_open_as_labels_by_their_content(make_napari_viewer, tmp_path, name, kind):
    viewer = make_napari_viewer()
    copy = tmp_path / name.replace("_organs", "_structures")  # not helped by its name
    shutil.copy(SAMPLE_VOLUMES / name, copy)
    layers = viewer.open(str(copy), plugin=PLUGIN)
    assert [layer._type_string for layer in layers] == [kind]

