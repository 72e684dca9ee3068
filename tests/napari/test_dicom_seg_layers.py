"""DICOM-SEG in napari: opened as Labels on its series, saved from a layer made on a series,
with the provenance record of the Segment widget going along (under Xvfb)."""

from __future__ import annotations

import json

import numpy as np
import pydicom
import pytest

from napari_medseg._napari.label_records import record_corrections
from napari_medseg._napari.layers import DICOM_REFERENCE_KEY, PROVENANCE_KEY
from napari_medseg.errors import OutputExistsError
from napari_medseg.inference.records import scan_record
from napari_medseg.io import read_label_file, read_scan, sidecar_path, write_label_map
from napari_medseg.provenance import ProvenanceRecord
from napari_medseg.scan import LabelMap
from tests.io.seg_helpers import copy_series, foreground_checkpoint

PLUGIN = "napari-medseg"
pytestmark = pytest.mark.gui
NAMES = {0: "background", 1: "spleen", 5: "liver"}


@pytest.fixture
def series(shared_data, tmp_path):
    """Four slices of the CT series (JPEG 2000, empty UIDs): quick to open and segment."""
    return copy_series(shared_data / "dicom_series_ct", tmp_path / "ct", 6, 10)


def _layer_world(layer, index):
    return np.asarray(layer.data_to_world(np.asarray(index, dtype=float)))


def test_a_dicom_seg_opens_as_labels_on_its_series(make_napari_viewer, series, tmp_path):
    ct = read_scan(series)
    array = np.zeros(ct.shape, np.uint8)
    array[1:3, 200:260, 180:240] = 5
    array[3, 300:320, 300:330] = 1
    record = ProvenanceRecord(made_by="tests", created="2026-01-01T00:00:00+00:00",
                              scan=scan_record(ct))
    path = write_label_map(LabelMap(array=array, geometry=ct.geometry, class_names=NAMES),
                           tmp_path / "organs.dcm", reference=ct, provenance=record)
    viewer = make_napari_viewer()
    image = viewer.open(str(series), plugin=PLUGIN)[0]
    (layer,) = viewer.open(str(path), plugin=PLUGIN)
    assert layer._type_string == "labels"
    np.testing.assert_array_equal(layer.data, array)
    for index in ([0, 0, 0], [3, 511, 511], [2, 250, 200]):
        np.testing.assert_allclose(_layer_world(layer, index), _layer_world(image, index),
                                   atol=1e-4)
    assert list(layer.features["class"]) == ["background", "spleen", "liver"]
    liver = read_label_file(path).terms[5]
    np.testing.assert_allclose(layer.colormap.map(np.array([5]))[0][:3],
                               np.array(liver.colour) / 255, atol=0.02)
    # its series is where the record says: the layer can be saved as DICOM-SEG again
    assert layer.metadata[DICOM_REFERENCE_KEY]
    layer.data[0, 10:20, 10:20] = 1
    again = tmp_path / "again.dcm"
    viewer.layers.selection = {layer}
    viewer.layers.save(str(again), selected=True, plugin=PLUGIN)
    np.testing.assert_array_equal(read_label_file(again, reference=ct).labels.array, layer.data)
    # saving from Python asks nobody: an existing DICOM-SEG is not replaced (napari's dialog
    # rule, as for every writer), nor its sidecar
    written = again.read_bytes(), sidecar_path(again).read_bytes()
    layer.data[0, 30:40, 30:40] = 1
    with pytest.raises(OutputExistsError, match="napari did not ask whether to replace it"):
        viewer.layers.save(str(again), selected=True, plugin=PLUGIN)
    assert (again.read_bytes(), sidecar_path(again).read_bytes()) == written


def test_segment_widget_result_saves_as_dicom_seg_with_its_record(
        make_napari_viewer, qtbot, series, tmp_path, monkeypatch):
    import threading

    from napari_medseg import provenance
    from napari_medseg._napari.widgets.segment_widget import FROM_FILE, SegmentWidget
    from napari_medseg.inference import records

    on_gui_thread: list[bool] = []  # where the record's hashes (the scan's, the result's) ran
    real_hash = provenance.content_hash

    def spy_hash(*args, **kwargs):  # type: ignore[no-untyped-def]
        on_gui_thread.append(threading.current_thread() is threading.main_thread())
        return real_hash(*args, **kwargs)

    monkeypatch.setattr(provenance, "content_hash", spy_hash)
    monkeypatch.setattr(records, "content_hash", spy_hash)  # the run's record is built there
    model = foreground_checkpoint(tmp_path / "liver.safetensors")
    viewer = make_napari_viewer(show=True)
    image = viewer.open(str(series), plugin=PLUGIN)[0]
    widget = SegmentWidget(viewer)
    widget.images.value = [image]
    widget.model.value = FROM_FILE
    widget.model_file.value = model
    widget.device.value = "cpu"
    widget.tile.value = "4 256 256"
    widget.segment()
    qtbot.waitUntil(lambda: not widget.runner.running and any(
        layer._type_string == "labels" for layer in viewer.layers), timeout=120_000)
    result = next(layer for layer in viewer.layers if layer._type_string == "labels")
    assert on_gui_thread  # the record hashed the scan and the result...
    assert not any(on_gui_thread)  # ... in the worker, not on the GUI thread
    record = ProvenanceRecord.from_dict(result.metadata[PROVENANCE_KEY])
    assert record.made_by == "napari-medseg Segment widget"
    assert record.models[0].name == str(model)
    assert record.scan is not None
    assert record.scan.dicom is not None
    assert record.scan.dicom["n_slices"] == 4
    # a person corrects two slices with the Correct widget's tracker masks
    edited = np.zeros(result.data.shape, bool)
    edited[1, 0:5, 0:5] = edited[2, 0:5, 0:5] = True
    result.data[edited] = 0
    record_corrections(result, edited=edited)
    out = tmp_path / "liver.dcm"
    viewer.layers.selection = {result}
    viewer.layers.save(str(out), selected=True, plugin=PLUGIN)
    ds = pydicom.dcmread(out, stop_before_pixels=True)
    assert ds.SegmentSequence[0].SegmentAlgorithmType == "SEMIAUTOMATIC"  # model, then a person
    assert "2 slice(s) edited" in ds.ContentDescription
    saved = json.loads(sidecar_path(out).read_text())["provenance"]
    assert saved["edits"]["edited_slices"] == [1, 2]
    assert not saved["edits"]["untracked_changes"]
    back = read_label_file(out, reference=series)
    np.testing.assert_array_equal(back.labels.array, result.data)
    # painting afterwards without the tracker is noticed when saving
    result.data[3, 100:110, 100:110] = 0
    later = tmp_path / "later.nii.gz"
    viewer.layers.save(str(later), selected=True, plugin=PLUGIN)
    edits = json.loads(sidecar_path(later).read_text())["provenance"]["edits"]
    assert edits["untracked_changes"] is True
    assert edits["edited_slices"] == [1, 2]


def test_labels_not_on_a_dicom_scan_do_not_save_as_dicom_seg(make_napari_viewer, shared_data,
                                                            tmp_path):
    viewer = make_napari_viewer()
    labels = viewer.open(str(shared_data / "ct_abdomen" / "example_seg.nii.gz"), plugin=PLUGIN)[0]
    viewer.layers.selection = {labels}
    with pytest.raises(Exception, match="not made on a scan read from a DICOM series"):
        viewer.layers.save(str(tmp_path / "seg.dcm"), selected=True, plugin=PLUGIN)
    assert list(tmp_path.iterdir()) == []
    viewer.layers.save(str(tmp_path / "seg.nii.gz"), selected=True, plugin=PLUGIN)
    record = read_label_file(tmp_path / "seg.nii.gz").provenance
    assert record is not None
    assert record.made_by == "napari-medseg (saved from napari)"
