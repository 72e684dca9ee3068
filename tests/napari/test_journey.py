"""First run to finished segmentation, in the main job's window under Xvfb (issue #7).

The journey is driven through the docked widgets by ``tests/napari/journey.py``; this test
checks what a person would see after each step.  Screenshots go to ``tmp_path``, or to the
folder named by ``NAPARI_MEDSEG_JOURNEY_SHOTS`` (how ``docs/images/`` is made).
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pytest

from napari_medseg._napari.dock import find_dock
from napari_medseg.inference.catalog import find_checkpoint
from tests.napari.journey import CORRECTED_SLICES, SAMPLES, Journey

pytestmark = pytest.mark.gui


def _same_place(layer, image) -> None:
    np.testing.assert_allclose(layer.scale, image.scale)
    np.testing.assert_allclose(layer.translate, image.translate)
    np.testing.assert_allclose(layer.affine.affine_matrix, image.affine.affine_matrix)
    np.testing.assert_allclose(layer.extent.world, image.extent.world)


def test_journey_from_scan_to_saved_labels(tmp_path, qtbot, make_napari_viewer):
    shots = Path(os.environ.get("NAPARI_MEDSEG_JOURNEY_SHOTS", tmp_path / "shots"))
    journey = Journey(shots=shots, steps=8, viewer=make_napari_viewer(show=True))
    try:
        image = journey.image
        record = journey.open_scan()
        assert image._type_string == "image"
        assert image.data.shape == (30, 101, 122)
        assert find_dock(journey.viewer).isVisible()
        assert find_dock(journey.viewer).current() == "Segment"

        journey.segment()
        assert journey.suggested_model == str(find_checkpoint("head-ct-tissue"))
        prediction = journey.prediction
        assert prediction._type_string == "labels"
        assert prediction.name == "ct_abdomen [head-ct-tissue]"
        _same_place(prediction, image)
        assert list(prediction.features["class"]) == ["background", "soft tissue", "bone"]
        assert set(np.unique(prediction.data)) <= {0, 1, 2}
        assert (np.asarray(prediction.data) == 1).mean() > 0.3  # the body is found

        journey.correct()
        finetune = find_dock(journey.viewer).tab("Correct and fine-tune")
        tracker = finetune.tracker
        assert tracker.reviewed[list(CORRECTED_SLICES)].all()
        assert set(np.nonzero(tracker.edited)[0]) <= set(CORRECTED_SLICES)
        assert tracker.edited.sum() > 0
        for z in CORRECTED_SLICES:
            np.testing.assert_array_equal(prediction.data[z], journey.reference.array[z])

        journey.finetune()
        new = finetune.new_checkpoint
        assert new is not None
        assert new.name == "head-ct-tissue-ft-v1.safetensors"
        assert new.parent != find_checkpoint("head-ct-tissue").parent  # never into the package
        assert finetune.curve.loss

        journey.resegment()
        again = journey.resegmented
        assert again.name == "ct_abdomen [head-ct-tissue-ft-v1]"
        _same_place(again, image)
        assert finetune.comparison is not None
        assert "Dice" in finetune.status.value

        journey.evaluate()
        evaluate = find_dock(journey.viewer).tab("Evaluate")
        rows = {row.label: row for row in evaluate.evaluation.rows}
        assert set(rows) == {1, 2}
        assert rows[1].dice > 0.8  # soft tissue: the starter and the fine-tune both find it
        assert 0.0 < rows[2].dice <= 1.0
        assert "mean Dice" in evaluate.status.value
        assert journey.reference_layer._type_string == "labels"

        journey.fuse()
        names = [layer.name for layer in journey.viewer.layers]
        assert "mr_abdomen registered" in names
        assert "fused" in names
        _same_place(journey.viewer.layers["mr_abdomen registered"], image)  # on the CT's grid
        _same_place(journey.viewer.layers["fused"], image)

        journey.save_and_reopen(tmp_path)
        reopened = journey.reopened
        assert journey.saved.exists()
        assert reopened._type_string == "labels"
        np.testing.assert_array_equal(reopened.data, again.data)
        _same_place(reopened, image)
        assert list(reopened.features["class"]) == ["background", "soft tissue", "bone"]

        assert not list(SAMPLES.glob("*.jsonl"))  # no journal written into the samples
        for record in journey.records:
            assert record.screenshot is not None
            assert record.screenshot.stat().st_size > 10_000, record.name
            assert record.canvas_std > 10, f"blank canvas after {record.name}"
        assert len(journey.records) == 8
    finally:
        journey.close()
