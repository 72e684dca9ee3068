"""Layer choices that do the obvious thing (#16): a scan for Segment, a prediction and a
reference for Evaluate, two scans of one body region for Fuse, overlays never offered, and
lists that follow the layer list (added, removed, renamed) also in a tab opened after the
scans.  The tabs are not docked here: nothing but the tab itself refreshes its lists."""

from __future__ import annotations

import numpy as np
import pytest

from napari_medseg._napari.layers import (
    DERIVED_KEY,
    MODALITY_KEY,
    MODEL_KEY,
    OVERLAY_KEY,
    scan_layer_data,
)
from napari_medseg._napari.widgets.evaluate_widget import EvaluateWidget
from napari_medseg._napari.widgets.fuse_widget import FuseWidget
from napari_medseg._napari.widgets.segment_widget import SegmentWidget
from napari_medseg.scan import Geometry, Scan

pytestmark = pytest.mark.gui


def _names(combo) -> list[str]:  # type: ignore[no-untyped-def]
    return [combo.native.itemText(i) for i in range(combo.native.count())]


def test_a_tab_opened_after_the_scan_lists_it(make_napari_viewer):
    viewer = make_napari_viewer()
    ct, _organs = viewer.open_sample("napari-medseg", "ct_abdomen")
    segment = SegmentWidget(viewer)
    assert segment.scans() == [ct]  # not just a "+" button
    evaluate = EvaluateWidget(viewer)
    assert _names(evaluate.pred) == ["ct_abdomen_organs"]
    fuse = FuseWidget(viewer)
    assert _names(fuse.fixed) == ["ct_abdomen"]


def test_lists_follow_layers_added_removed_and_renamed(make_napari_viewer):
    viewer = make_napari_viewer()
    segment = SegmentWidget(viewer)
    fuse = FuseWidget(viewer)
    assert segment.scans() == []
    ct, _organs = viewer.open_sample("napari-medseg", "ct_abdomen")
    assert segment.scans() == [ct]  # chosen as soon as it is there
    mr = viewer.open_sample("napari-medseg", "mr_abdomen")[0]
    assert _names(fuse.moving) == ["ct_abdomen", "mr_abdomen"]
    mr.name = "T1 abdomen"
    assert _names(fuse.moving) == ["ct_abdomen", "T1 abdomen"]
    assert segment.images[0].value is ct
    viewer.layers.remove(ct)
    assert segment.scans() == [mr]  # the chosen scan went: the next one
    assert _names(fuse.fixed) == ["T1 abdomen"]
    segment.close()
    segment.deleteLater()
    from qtpy.QtWidgets import QApplication

    QApplication.processEvents()
    viewer.layers.remove(mr)  # a closed tab is not called any more (no error)
    assert fuse.fixed.value is None


def test_segment_chooses_a_scan_not_a_result(make_napari_viewer):
    viewer = make_napari_viewer()
    scan = Scan(np.zeros((4, 8, 8), np.float32), Geometry.identity(3))
    data, kwargs, _ = scan_layer_data(scan, name="fused", derived="fused")
    viewer.add_image(data, **kwargs)
    ct = viewer.open_sample("napari-medseg", "ct_abdomen")[0]
    segment = SegmentWidget(viewer)
    assert segment.scans() == [ct]
    assert _names(segment.images[0].value_widget) == ["fused", "ct_abdomen"]  # still offered


def test_evaluate_never_offers_an_overlay_and_picks_prediction_and_reference(
        make_napari_viewer):
    viewer = make_napari_viewer()
    _ct, organs = viewer.open_sample("napari-medseg", "ct_abdomen")
    shape = organs.data.shape
    pred = viewer.add_labels(np.zeros(shape, np.uint8), name="ct_abdomen [model]",
                             metadata={MODEL_KEY: "model"})
    viewer.add_labels(np.zeros(shape, np.uint8), name="ct_abdomen [model] labeled region")
    viewer.add_labels(np.zeros(shape, np.uint8), name="edits", metadata={OVERLAY_KEY: True})
    viewer.add_labels(np.zeros(shape, np.uint8), name="sketch")  # made by hand, no file
    evaluate = EvaluateWidget(viewer)
    assert _names(evaluate.truth) == ["ct_abdomen_organs", "ct_abdomen [model]", "sketch"]
    assert (evaluate.pred.value, evaluate.truth.value) == (pred, organs)  # the file wins


def _scan_layer(viewer, name, modality, size_mm, origin=(0.0, 0.0, 0.0)):  # type: ignore[no-untyped-def]
    shape = (10, 10, 10)
    geometry = Geometry(spacing=tuple(s / 10 for s in size_mm), origin=origin,
                        direction=np.eye(3))
    data, kwargs, _ = scan_layer_data(Scan(np.zeros(shape, np.float32), geometry, modality),
                                      name=name)
    return viewer.add_image(data, **kwargs)


def test_fuse_proposes_two_scans_of_one_body_region(make_napari_viewer):
    viewer = make_napari_viewer()
    fuse = FuseWidget(viewer)
    chest = _scan_layer(viewer, "chest CT", "CT", (300, 320, 380))
    brain = _scan_layer(viewer, "brain MR", "MR", (160, 200, 200), origin=(500.0, 0, 0))
    assert (fuse.fixed.value, fuse.moving.value) == (chest, brain)  # two scans, different
    fuse.moving.value = chest  # the same twice: proposed again, now with a better partner
    chest_mr = _scan_layer(viewer, "chest MR", "MR", (280, 300, 360), origin=(-900.0, 0, 0))
    assert (fuse.fixed.value, fuse.moving.value) == (chest, chest_mr)
    assert chest_mr.metadata[MODALITY_KEY] == "MR"


def test_fuse_puts_a_pet_onto_the_anatomy_and_leaves_results_out(make_napari_viewer):
    viewer = make_napari_viewer()
    pet = _scan_layer(viewer, "PET", "PT", (300, 320, 380))
    ct = _scan_layer(viewer, "CT", "CT", (310, 330, 380))
    fused = _scan_layer(viewer, "fused", "unknown", (300, 320, 380))
    fused.metadata[DERIVED_KEY] = "fused"
    fuse = FuseWidget(viewer)
    assert (fuse.fixed.value, fuse.moving.value) == (ct, pet)
    assert "fused" in _names(fuse.moving)  # offered, never proposed


def test_fuse_on_the_bundled_samples_pairs_the_abdomens(make_napari_viewer):
    viewer = make_napari_viewer()
    ct = viewer.open_sample("napari-medseg", "ct_abdomen")[0]
    viewer.open_sample("napari-medseg", "mr_brain_lesion")
    fuse = FuseWidget(viewer)
    assert fuse.moving.value.name == "mr_brain_lesion"  # the only other scan, for now
    fuse.moving.value = ct
    abdomen = viewer.open_sample("napari-medseg", "mr_abdomen")[0]
    assert (fuse.fixed.value, fuse.moving.value) == (ct, abdomen)  # not the brain
