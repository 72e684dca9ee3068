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
from tests.napari.journey import CORRECTED_SLICES, PAINTED_SLICES, REFERENCE, SAMPLES, Journey

pytestmark = pytest.mark.gui
ORGAN_CLASSES = ["background", "liver", "spleen", "kidney", "stomach", "aorta", "vertebra"]


def _same_place(layer, image) -> None:
    np.testing.assert_allclose(layer.scale, image.scale)
    np.testing.assert_allclose(layer.translate, image.translate)
    np.testing.assert_allclose(layer.affine.affine_matrix, image.affine.affine_matrix)
    np.testing.assert_allclose(layer.extent.world, image.extent.world)


def test_journey_from_scan_to_saved_labels(tmp_path, qtbot, make_napari_viewer):
    shots = Path(os.environ.get("NAPARI_MEDSEG_JOURNEY_SHOTS", tmp_path / "shots"))
    journey = Journey(shots=shots, viewer=make_napari_viewer(show=True))
    try:
        image = journey.image
        record = journey.open_scan()
        assert image._type_string == "image"
        assert image.data.shape == (30, 101, 122)
        assert find_dock(journey.viewer).isVisible()
        assert find_dock(journey.viewer).current() == "Segment"

        journey.segment()
        # the organ starter, learned from another subject's CT, is offered for this one
        assert journey.suggested_model == str(find_checkpoint("upper-abdomen-ct-organs"))
        prediction = journey.prediction
        assert prediction._type_string == "labels"
        assert prediction.name == "ct_abdomen [upper-abdomen-ct-organs]"
        _same_place(prediction, image)
        assert list(prediction.features["class"]) == ORGAN_CLASSES
        from napari_medseg.io import read_label_map

        truth = read_label_map(REFERENCE).array
        found = np.asarray(prediction.data) == 1
        liver_dice = 2 * (found & (truth == 1)).sum() / (found.sum() + (truth == 1).sum())
        assert liver_dice > 0.7, liver_dice  # the liver, on a subject it never saw

        journey.train()
        train = find_dock(journey.viewer).tab("Train")
        assert train.last_model is not None
        assert train.last_model.name == "liver-unet-v1.safetensors"
        trained = journey.trained
        assert trained.name == "ct_abdomen [liver-unet-v1]"
        _same_place(trained, image)
        untouched = np.ones(journey.liver.shape, bool)
        untouched[list(PAINTED_SLICES)] = False
        found = np.asarray(trained.data) > 0
        dice = 2 * (found & journey.liver & untouched).sum() / (
            (found & untouched).sum() + (journey.liver & untouched).sum())
        assert dice > 0.7, dice  # the liver on slices nobody painted
        assert "learned" in train.status.value

        journey.correct()
        finetune = find_dock(journey.viewer).tab("Correct and fine-tune")
        tracker = finetune.corrections.tracker
        assert tracker.reviewed[list(CORRECTED_SLICES)].all()
        assert set(np.nonzero(tracker.edited)[0]) <= set(CORRECTED_SLICES)
        assert tracker.edited.sum() > 0
        for z in CORRECTED_SLICES:
            np.testing.assert_array_equal(prediction.data[z], journey.reference.array[z])

        journey.finetune()
        new = finetune.new_checkpoint
        assert new is not None, finetune.status.value  # three corrected slices pay off
        assert new.name == "upper-abdomen-ct-organs-ft-v1.safetensors"
        assert new.parent != find_checkpoint("upper-abdomen-ct-organs").parent  # not the package
        assert finetune.curve.loss
        again = journey.resegmented  # the job re-segmented once and added the result
        assert again.name == "ct_abdomen [upper-abdomen-ct-organs-ft-v1]"
        _same_place(again, image)
        assert "held-back corrections: Dice" in finetune.status.value

        journey.evaluate()
        evaluate = find_dock(journey.viewer).tab("Evaluate")
        rows = {row.label: row for row in evaluate.evaluation.rows}
        assert set(rows) == {1, 2, 3, 4, 5, 6}  # the reference's organs, by value and name
        assert rows[1].dice > liver_dice  # the liver got better from three corrected slices
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
        assert list(reopened.features["class"]) == ORGAN_CLASSES

        journey.interactive()
        spleen = journey.spleen
        made = np.asarray(journey.objects.data) > 0
        assert 2 * (made & spleen).sum() / (made.sum() + spleen.sum()) > 0.8  # three clicks
        np.testing.assert_array_equal(made, journey.clicked)
        assert "accepted 'spleen'" in find_dock(journey.viewer).tab("Interactive").status.value

        assert not list(SAMPLES.glob("*.jsonl"))  # no journal written into the samples
        for record in journey.records:
            assert record.screenshot is not None
            assert record.screenshot.stat().st_size > 10_000, record.name
            assert record.canvas_std > 10, f"blank canvas after {record.name}"
        assert len(journey.records) == 9  # open, segment, train, correct, fine-tune, ...
    finally:
        journey.close()
