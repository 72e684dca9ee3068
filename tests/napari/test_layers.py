"""The layer <-> core contract: one pair of functions per kind, geometry in the transform alone."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from napari.layers import Image, Labels, Layer
from scipy.spatial.transform import Rotation

from napari_medseg._napari.layers import (
    MODALITY_KEY,
    MODALITY_REASON_KEY,
    MODEL_KEY,
    MR_CONTRAST_KEY,
    OVERLAY_KEY,
    SKULL_STRIPPED_KEY,
    SOURCE_KEY,
    is_overlay,
    label_layer_data,
    labels_from_layer,
    labels_from_layer_data,
    scan_from_layer,
    scan_from_layer_data,
    scan_layer_data,
)
from napari_medseg._napari.writer import write_image, write_labels
from napari_medseg.errors import GeometryMismatchError
from napari_medseg.io import read_label_map, read_scan
from napari_medseg.scan import Geometry, LabelMap, Scan

pytestmark = pytest.mark.gui


@pytest.fixture
def oblique() -> Geometry:
    rotation = Rotation.from_euler("xyz", [0.3, -0.2, 0.7]).as_matrix() @ np.diag([1, -1, 1])
    return Geometry(spacing=(3.3, 0.7, 0.71), origin=(-120.123456789, 33.3, 1e3 / 7),
                    direction=rotation)


def _close(a: Geometry, b: Geometry) -> None:
    np.testing.assert_allclose(a.spacing, b.spacing, rtol=0, atol=1e-12)
    np.testing.assert_allclose(a.origin, b.origin, rtol=0, atol=1e-9)
    np.testing.assert_allclose(a.direction, b.direction, rtol=0, atol=1e-12)


def test_a_scan_goes_to_a_layer_and_back_with_geometry_modality_source_and_name(oblique):
    rng = np.random.default_rng(0)
    scan = Scan(rng.integers(-1000, 1000, (4, 5, 6)).astype(np.int16), oblique, "CT",
                source=Path("/data/ct.nii.gz"), modality_reason="DICOM Modality 'CT'")
    layer = Layer.create(*scan_layer_data(scan))
    assert isinstance(layer, Image)
    assert layer.name == "ct"
    # the modality and how it was told, no second copy of the geometry
    assert set(layer.metadata) == {MODALITY_KEY, MODALITY_REASON_KEY, MR_CONTRAST_KEY,
                                   SKULL_STRIPPED_KEY, SOURCE_KEY}
    for i in ([0, 0, 0], [3, 4, 5], [1, 2, 3]):  # voxels shown at their physical place
        np.testing.assert_allclose(layer.data_to_world(i), oblique.index_to_world(i), atol=1e-9)
    back = scan_from_layer(layer)
    _close(back.geometry, oblique)
    assert back.array is layer.data or np.shares_memory(back.array, layer.data)  # no copy
    assert (back.modality, back.source, back.name) == ("CT", Path("/data/ct.nii.gz"), "ct")
    assert back.modality_reason == "DICOM Modality 'CT'"
    layer.name = "my CT"
    assert scan_from_layer(layer).name == "my CT"  # messages name the layer as shown


def test_a_scan_read_from_a_dicom_series_keeps_its_reference_through_the_layer(shared_data,
                                                                            tmp_path):
    from napari_medseg._napari.layers import DICOM_REFERENCE_KEY
    from napari_medseg.io import dicom_reference
    from tests.io.seg_helpers import copy_series

    series = copy_series(shared_data / "dicom_series_ct", tmp_path / "ct", 6, 8)
    scan = read_scan(series)
    reference = dicom_reference(scan.metadata)
    assert reference is not None
    layer = Layer.create(*scan_layer_data(scan))
    assert layer.metadata[DICOM_REFERENCE_KEY] == reference.to_json()
    back = scan_from_layer(layer)  # what a widget segments: labels on it save as DICOM-SEG
    assert dicom_reference(back.metadata) == reference
    assert back.source == series
    data, meta, _kind = layer.as_layer_data_tuple()  # what napari gives a writer
    assert dicom_reference(scan_from_layer_data(data, meta).metadata) == reference


def test_display_options_override_the_defaults(oblique):
    scan = Scan(np.zeros((2, 3, 4), np.float32), oblique)
    data, kwargs, kind = scan_layer_data(scan, name="fused", colormap="magma", opacity=0.5,
                                         visible=False)
    assert (kind, kwargs["name"], kwargs["colormap"]) == ("image", "fused", "magma")
    assert (kwargs["opacity"], kwargs["visible"]) == (0.5, False)
    assert data is scan.array


def test_a_moved_layer_is_read_back_where_it_is_shown(oblique):
    scan = Scan(np.zeros((4, 5, 6), np.float32), oblique)
    layer = Layer.create(*scan_layer_data(scan))
    layer.translate = np.asarray(layer.translate) + np.array([10.0, 0.0, 0.0])
    moved = scan_from_layer(layer)
    np.testing.assert_allclose(moved.geometry.index_to_world([0, 0, 0]),
                               layer.data_to_world([0, 0, 0]), atol=1e-9)
    assert not moved.geometry.is_close(oblique)


def test_a_layer_made_by_hand_has_the_geometry_of_its_transform():
    layer = Image(np.zeros((3, 4, 5), np.float32), scale=(2.0, 1.0, 0.5),
                  translate=(1.0, 2.0, 3.0), name="by hand")
    scan = scan_from_layer(layer)
    assert scan.geometry == Geometry((2.0, 1.0, 0.5), (1.0, 2.0, 3.0), np.eye(3))
    assert (scan.modality, scan.source) == ("unknown", None)
    with pytest.raises(GeometryMismatchError, match=r"'rgb'.*single-channel"):
        scan_from_layer(Image(np.zeros((4, 5, 3), np.uint8), rgb=True, name="rgb"))


def test_labels_go_to_a_layer_and_back_with_class_names_and_a_snapshot(oblique):
    array = np.zeros((4, 5, 6), np.uint8)
    array[1:3, 2:4, 1:5] = 2
    labels = LabelMap(array, oblique, {0: "background", 1: "liver", 2: "spleen"},
                      source=Path("/data/seg.nrrd"))
    layer = Layer.create(*label_layer_data(labels, name="pred", metadata={MODEL_KEY: "m"}))
    assert isinstance(layer, Labels)
    assert layer.metadata == {SOURCE_KEY: "/data/seg.nrrd", MODEL_KEY: "m"}
    assert list(layer.features["class"]) == ["background", "liver", "spleen"]
    back = labels_from_layer(layer)
    _close(back.geometry, oblique)
    assert back.class_names == labels.class_names
    assert back.name == "pred"
    np.testing.assert_array_equal(back.array, array)
    layer.data[0, 0, 0] = 1  # painting after the conversion does not reach the label map
    assert back.array[0, 0, 0] == 0
    bools = LabelMap(array > 0, oblique)
    assert label_layer_data(bools)[0].dtype == np.uint8


def test_what_napari_gives_a_writer_converts_as_the_layer_does(oblique, tmp_path):
    labels = LabelMap(np.arange(120, dtype=np.uint8).reshape(4, 5, 6) % 3, oblique,
                      {0: "background", 1: "a", 2: "b"})
    layer = Layer.create(*label_layer_data(labels, name="pred"))
    data, meta, _kind = layer.as_layer_data_tuple()
    from_tuple = labels_from_layer_data(data, meta)
    from_layer = labels_from_layer(layer)
    assert from_tuple.geometry == from_layer.geometry
    assert from_tuple.class_names == from_layer.class_names == labels.class_names
    (path,) = write_labels(str(tmp_path / "pred.nrrd"), data, meta)
    back = read_label_map(path)
    assert back.class_names == labels.class_names  # NRRD keeps the names
    assert back.geometry.is_close(oblique, atol_mm=1e-6, atol_dir=1e-9)

    scan = Scan(np.ones((4, 5, 6), np.float32), oblique, "MR")
    image = Layer.create(*scan_layer_data(scan, name="mr"))
    data, meta, _kind = image.as_layer_data_tuple()
    assert scan_from_layer_data(data, meta).geometry == scan_from_layer(image).geometry
    (path,) = write_image(str(tmp_path / "mr.nrrd"), data, meta)
    written = read_scan(path)
    assert written.modality == "MR"
    assert written.geometry.is_close(oblique, atol_mm=1e-6, atol_dir=1e-9)


def test_overlays_are_known_by_their_key_or_their_name():
    plain = Labels(np.zeros((2, 2), np.uint8), name="pred")
    marked = Labels(np.zeros((2, 2), np.uint8), name="edits", metadata={OVERLAY_KEY: True})
    named = Labels(np.zeros((2, 2), np.uint8), name="pred labeled region")
    assert [is_overlay(layer) for layer in (plain, marked, named)] == [False, True, True]
