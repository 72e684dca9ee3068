"""The Segment widget driven as a person would, in a shown viewer under Xvfb."""

from __future__ import annotations

import numpy as np
import pytest

from napari_medseg._napari.responsiveness import StallMeter
from napari_medseg._napari.widgets.segment_widget import FROM_FILE, SegmentWidget
from napari_medseg.inference.catalog import find_checkpoint
from tests.conftest import save_tiny_ct_checkpoint

pytestmark = pytest.mark.gui


@pytest.fixture
def checkpoint(tmp_path):
    return save_tiny_ct_checkpoint(tmp_path / "tiny.safetensors",
                                   {0: "background", 1: "a", 2: "b"}, patch_size=(16, 48, 48))


def _widget(viewer, checkpoint, sample="ct_abdomen"):
    image, labels = viewer.open_sample("napari-medseg", sample)
    widget = SegmentWidget(viewer)
    widget.images.value = [image]
    widget.model.value = FROM_FILE
    widget.model_file.value = checkpoint
    widget.device.value = "cpu"
    widget.tile.value = "16 48 48"
    return widget, image, labels


def test_segment_adds_labels_on_the_scan_geometry_without_freezing(
    make_napari_viewer, qtbot, checkpoint
):
    viewer = make_napari_viewer(show=True)
    widget, image, person_labels = _widget(viewer, checkpoint)
    before = person_labels.data.copy()
    widget.probabilities.value = True
    meter = StallMeter()
    meter.start()
    widget.segment()
    assert not widget.segment_button.enabled  # no second run while this one goes
    widget.segment()  # pressing twice is refused, not queued or interleaved
    qtbot.waitUntil(lambda: widget.progress.value == 100, timeout=120_000)
    meter.stop()
    qtbot.waitUntil(lambda: not widget.runner.running, timeout=10_000)
    result = viewer.layers[-2]
    assert result.name == "ct_abdomen [tiny]"
    assert result.data.shape == image.data.shape
    np.testing.assert_allclose(result.scale, image.scale)
    np.testing.assert_allclose(result.translate, image.translate)
    np.testing.assert_allclose(result.affine.affine_matrix, image.affine.affine_matrix)
    assert list(result.features["class"]) == ["background", "a", "b"]
    assert viewer.layers[-1].name == "ct_abdomen [tiny] probability"
    np.testing.assert_array_equal(person_labels.data, before)  # the person's labels untouched
    assert widget.segment_button.enabled
    assert "done in" in widget.status.value
    assert len(meter.gaps) > 10
    # the stall itself is measured in benchmarks/bench_inference.py (no timed pass/fail here)
    # a second run adds a new layer, never replaces the first
    widget.segment()
    qtbot.waitUntil(lambda: not widget.runner.running, timeout=120_000)
    assert "ct_abdomen [tiny] [2]" in [layer.name for layer in viewer.layers]


def test_cancel_adds_nothing(make_napari_viewer, qtbot, checkpoint):
    viewer = make_napari_viewer(show=True)
    widget, _image, _labels = _widget(viewer, checkpoint)
    widget.tile.value = "8 24 24"
    n_layers = len(viewer.layers)
    widget.segment()
    qtbot.waitUntil(lambda: widget.progress.value > 0, timeout=60_000)
    widget.cancel()
    qtbot.waitUntil(lambda: not widget.runner.running, timeout=60_000)
    assert len(viewer.layers) == n_layers
    assert widget.status.value == "cancelled"
    assert widget.segment_button.enabled


def test_bad_choices_become_notifications(make_napari_viewer, qtbot, checkpoint, monkeypatch):
    from napari_medseg._napari import notify

    shown = []
    monkeypatch.setattr(notify, "show_error", shown.append)
    monkeypatch.setattr(notify, "show_warning", shown.append)
    viewer = make_napari_viewer()
    widget, image, _labels = _widget(viewer, checkpoint)
    widget.tile.value = "sixteen"
    widget.segment()
    assert "tile must be whole numbers" in shown[-1]
    widget.tile.value = ""
    widget.images.value = []
    widget.segment()
    assert "select the image layer" in shown[-1]
    # a 2-channel request on a 1-channel model: the worker reports, the viewer lives
    widget.images.value = [image, image]
    widget.segment()
    qtbot.waitUntil(lambda: not widget.runner.running, timeout=60_000)
    assert "takes 1 input channel" in shown[-1]
    assert widget.segment_button.enabled


def test_starter_model_matches_the_scan_modality(make_napari_viewer):
    viewer = make_napari_viewer()
    ct = viewer.open_sample("napari-medseg", "ct_abdomen")[0]
    mr = viewer.open_sample("napari-medseg", "mr_brain_lesion")[0]
    mr.metadata["medseg_modality"] = "MR"  # the NRRD has no modality tag; as if chosen
    widget = SegmentWidget(viewer)
    widget.images.value = [ct]
    assert widget.model.value.endswith("upper-abdomen-ct-organs.safetensors")  # fits it best
    widget.images.value = [mr]
    assert widget.model.value.endswith("brain-tissue-t1.safetensors")


def test_of_two_ct_starters_the_one_that_fits_the_scan_is_offered(shared_data):
    from napari_medseg._napari.model_choice import model_for
    from napari_medseg.io import read_scan

    head = read_scan(shared_data / "ct_head" / "head_ct.nii.gz")
    abdomen = read_scan(shared_data / "ct_abdomen" / "example_ct_sm.nii.gz")
    assert model_for("CT", scan=head).endswith("head-ct-tissue.safetensors")
    assert model_for("CT", scan=abdomen).endswith("upper-abdomen-ct-organs.safetensors")
    assert model_for("CT", scan=lambda: abdomen).endswith("upper-abdomen-ct-organs.safetensors")
    # without the scan: the first CT starter, by name
    assert model_for("CT").endswith("head-ct-tissue.safetensors")
    # a model the person chose that fits the modality is kept
    chosen = str(find_checkpoint("head-ct-tissue"))
    assert model_for("CT", current=chosen, scan=abdomen) == chosen


def test_a_model_that_does_not_fit_the_scan_says_so(make_napari_viewer, qtbot, checkpoint):
    """A CT model on an MR scan: the run goes on (the person asked for it), but the status
    line, a notification and the result layer's metadata say the model does not fit."""
    from napari_medseg._napari.layers import FIT_KEY

    viewer = make_napari_viewer()
    widget, mr, _labels = _widget(viewer, checkpoint, sample="mr_brain_lesion")
    mr.metadata["medseg_modality"] = "MR"  # the NRRD has no modality tag; as if chosen
    widget.segment()
    qtbot.waitUntil(lambda: not widget.runner.running, timeout=120_000)
    result = viewer.layers[f"{mr.name} [tiny]"]
    fit = result.metadata[FIT_KEY]
    assert fit["fits"] is False
    assert "other-modality" in {f["rule"] for f in fit["findings"] if f["severity"] == "warning"}
    assert "does not fit this scan (other-modality" in widget.status.value
    # with "strict" on, the segment job (the same as the CLI's --strict) refuses before any
    # work: no layer is added and the status says why
    widget.predict_controls["strict"].value = True
    before = len(viewer.layers)
    widget.segment()
    qtbot.waitUntil(lambda: not widget.runner.running, timeout=120_000)
    assert len(viewer.layers) == before
    assert "strict: tiny does not fit" in widget.status.value
    widget.predict_controls["strict"].value = False
    # the same model on a CT scan fits: nothing is said
    ct = viewer.open_sample("napari-medseg", "ct_abdomen")[0]
    widget.images.value = [ct]
    widget.model.value = FROM_FILE
    widget.model_file.value = checkpoint
    widget.segment()
    qtbot.waitUntil(lambda: not widget.runner.running, timeout=120_000)
    assert "does not fit" not in widget.status.value
    assert viewer.layers["ct_abdomen [tiny]"].metadata[FIT_KEY]["model"] == "tiny"
