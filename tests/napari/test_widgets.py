"""Dock widgets driven as a person would, and the main job's window."""

from __future__ import annotations

import numpy as np
import pytest

from napari_medseg._napari.launch import open_viewer, widget_names
from napari_medseg._napari.widgets.scan_widget import ScanWidget
from napari_medseg.display import CT_WINDOWS

pytestmark = pytest.mark.gui


def test_scan_widget_shows_geometry_and_applies_presets(make_napari_viewer):
    viewer = make_napari_viewer()
    image, _labels = viewer.open_sample("napari-medseg", "ct_abdomen")
    widget = ScanWidget(viewer)
    widget.layer.value = image
    assert "CT" in widget.info.value
    assert "spacing (3.0, 3.0, 3.0) mm" in widget.info.value
    assert "lung" in widget.preset.choices
    widget.preset.value = "bone"
    assert tuple(image.contrast_limits) == CT_WINDOWS["bone"].limits
    widget.preset.value = "1-99 percentiles"
    lo, hi = image.contrast_limits
    assert np.percentile(image.data, 1) == pytest.approx(lo, abs=1)
    assert np.percentile(image.data, 99) == pytest.approx(hi, abs=1)


def test_scan_widget_shows_how_the_modality_was_told_and_lets_a_person_change_it(
        make_napari_viewer):
    from napari_medseg._napari.layers import MODALITY_REASON_KEY, scan_from_layer

    viewer = make_napari_viewer()
    mr = viewer.open_sample("napari-medseg", "mr_brain_lesion")[0]  # NRRD without a tag
    widget = ScanWidget(viewer)
    widget.layer.value = mr
    assert widget.modality.value == "MR"
    assert "MR (file name 'mr_brain_lesion')" in widget.info.value
    assert "1-99 percentiles" in widget.preset.choices
    widget.modality.value = "CT"  # as a person would
    assert mr.metadata["medseg_modality"] == "CT"
    assert mr.metadata[MODALITY_REASON_KEY] == "set on the Scan tab"
    assert "CT (set on the Scan tab)" in widget.info.value
    assert "bone" in widget.preset.choices  # CT windows now
    scan = scan_from_layer(mr)  # what Segment and the fit check see
    assert (scan.modality, scan.modality_reason) == ("CT", "set on the Scan tab")
    ct = viewer.open_sample("napari-medseg", "ct_abdomen")[0]
    widget.reset_choices()  # what napari does when layers change
    widget.layer.value = ct  # following another layer changes neither layer
    assert widget.modality.value == "CT"
    assert mr.metadata["medseg_modality"] == "CT"
    assert ct.metadata[MODALITY_REASON_KEY] == "file name 'ct_abdomen'"


def test_main_job_window_docks_widgets_and_shows_a_scan(qtbot, tmp_path, make_napari_viewer):
    viewer = open_viewer(sample="ct_abdomen", viewer=make_napari_viewer(show=True))
    assert "Scan" in widget_names()
    assert list(viewer.window.dock_widgets) == ["MedSeg"]  # one dock, a tab per widget
    assert viewer.window.dock_widgets["MedSeg"].names == widget_names()
    assert [layer._type_string for layer in viewer.layers] == ["image", "labels"]
    shot = viewer.screenshot(str(tmp_path / "main.png"), canvas_only=True)
    grey = shot[..., :3].mean(axis=-1)
    assert grey.std() > 10  # a scan is drawn, not a blank canvas
