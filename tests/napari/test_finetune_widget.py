"""Correct a prediction with napari's tools, fine-tune, re-segment: driven as a person would."""

from __future__ import annotations

import numpy as np
import pytest

from napari_medseg._napari.correction_tracking import CorrectionTracking
from napari_medseg._napari.corrections import CorrectionTracker
from napari_medseg._napari.widgets.finetune_widget import FinetuneWidget
from napari_medseg.paths import journals_dir
from napari_medseg.training.journal import CorrectionJournal, RestoreChoice
from tests.conftest import SAMPLE_VOLUMES, save_tiny_ct_checkpoint

pytestmark = pytest.mark.gui


@pytest.fixture
def models_dir(tmp_path, monkeypatch):
    folder = tmp_path / "models"
    folder.mkdir()
    monkeypatch.setenv("NAPARI_MEDSEG_MODELS", str(folder))
    save_tiny_ct_checkpoint(folder / "liver.safetensors", {0: "background", 1: "liver"},
                            patch_size=(16, 32, 32))
    return folder


def test_tracker_records_paint_and_reviewed_slices(make_napari_viewer, tmp_path):
    viewer = make_napari_viewer()
    _image, labels = viewer.open_sample("napari-medseg", "ct_abdomen")
    tracker = CorrectionTracker(labels)
    tracker.attach_journal(CorrectionJournal(tmp_path / "j.jsonl", labels.data.shape))
    labels.brush_size = 5
    labels.selected_label = 5
    viewer.dims.set_point(0, labels.data_to_world((12, 0, 0))[0])
    labels.paint((12, 50, 60), 5)
    assert tracker.edited.sum() > 0
    assert set(np.nonzero(tracker.edited)[0]) == {12}  # a 2D brush stroke on slice 12
    before = int(labels.data[3, 4, 5])
    labels.data_setitem((np.array([3]), np.array([4]), np.array([5])), 7)
    assert tracker.edited[3, 4, 5]
    labels.undo()  # napari's undo still works on the tracked layer
    assert labels.data[3, 4, 5] == before
    assert tracker.sync() == 1  # undo emits no paint event: sync journals the reverted value
    replayed = CorrectionJournal(tmp_path / "j.jsonl", labels.data.shape).replay(
        tracker.original)
    assert replayed.labels[3, 4, 5] == before
    assert replayed.edited[3, 4, 5]
    tracker.mark_slice_reviewed(0, 20)
    assert tracker.labeled()[20].all()
    assert not tracker.labeled()[21].any()
    overlay = tracker.show_overlay(viewer)
    assert overlay.data[20].max() == 2
    assert overlay.data[12].max() == 1


def test_correct_finetune_adds_the_resegmented_scan(make_napari_viewer, qtbot, models_dir):
    viewer = make_napari_viewer(show=True)
    image, labels = viewer.open_sample("napari-medseg", "ct_abdomen")
    liver = (labels.data == 5).astype(np.uint8)
    prediction = viewer.add_labels(np.zeros_like(liver), name="prediction",
                                   scale=labels.scale, translate=labels.translate,
                                   affine=labels.affine.affine_matrix)
    widget = FinetuneWidget(viewer)
    widget.labels.value = prediction
    widget.image.value = image
    widget.model.reset_choices()
    widget.model.value = str(models_dir / "liver.safetensors")
    widget.device.value = "cpu"
    widget.steps.value = 40
    widget.learn_controls["learning_rate"].value = 1e-2
    widget.corrections.track()
    # the person copies the liver into three slices (their correction) and reviews them
    for z in (8, 14, 20):
        idx = np.nonzero(liver[z])
        prediction.data_setitem((np.full(idx[0].shape, z), *idx), 1)
        viewer.dims.set_point(0, prediction.data_to_world((z, 0, 0))[0])
        widget.corrections.mark_current_slice()
    assert widget.corrections.tracker.reviewed[[8, 14, 20]].all()
    assert "edited" in widget.status.value
    overlay = widget.corrections.tracker.overlay
    assert overlay.metadata["medseg_overlay"]
    assert overlay.contour > 0  # outlines, not a fill
    n_layers = len(viewer.layers)
    widget.finetune()
    assert not widget.finetune_button.enabled
    qtbot.waitUntil(lambda: not widget.runner.running, timeout=180_000)
    assert widget.new_checkpoint is not None, widget.status.value
    assert widget.new_checkpoint.parent == models_dir
    assert widget.new_checkpoint.name == "liver-ft-v1.safetensors"
    assert (models_dir / "liver.safetensors").exists()  # the parent is never overwritten
    assert len(widget.curve.loss) > 0
    assert widget.curve.dice  # held-back Dice points on the plot
    # the job re-segmented the scan once: the new layer is there, no button to press
    assert len(viewer.layers) == n_layers + 1
    assert viewer.layers[-1].name == "ct_abdomen [liver-ft-v1]"
    assert viewer.layers[-1].data.shape == prediction.data.shape
    assert "held-back corrections: Dice" in widget.status.value
    # the corrected slices keep the person's labels in the new layer
    np.testing.assert_array_equal(viewer.layers[-1].data[14], liver[14])
    # the journal of a bundled sample goes to the data folder, never into the package
    assert widget.corrections.journal_file.parent == journals_dir()
    assert not list(SAMPLE_VOLUMES.glob("*.jsonl"))


def test_finetune_without_labeled_voxels_is_refused(make_napari_viewer, models_dir, monkeypatch):
    from napari_medseg._napari import notify

    shown = []
    monkeypatch.setattr(notify, "show_error", shown.append)
    viewer = make_napari_viewer()
    image, labels = viewer.open_sample("napari-medseg", "ct_abdomen")
    widget = FinetuneWidget(viewer)
    widget.labels.value = labels
    widget.image.value = image
    widget.model.reset_choices()
    widget.finetune()
    assert "no labeled voxel yet" in shown[-1]
    assert not widget.runner.running


def test_corrections_survive_a_restart_and_interpolate(make_napari_viewer, tmp_path,
                                                       monkeypatch, models_dir):
    import shutil

    from napari_medseg._napari import notify

    monkeypatch.setattr(notify, "show_warning", lambda message: None)
    asked = []
    monkeypatch.setattr(CorrectionTracking, "ask_restore",
                        lambda self, summary: asked.append(summary) or RestoreChoice.RESTORE)
    scan_path = tmp_path / "ct.nii.gz"
    shutil.copy(SAMPLE_VOLUMES / "ct_abdomen.nii.gz", scan_path)

    def session():
        viewer = make_napari_viewer()
        image = viewer.open(str(scan_path), plugin="napari-medseg")[0]
        prediction = viewer.add_labels(np.zeros(image.data.shape, np.uint8), name="pred",
                                       scale=image.scale, translate=image.translate)
        widget = FinetuneWidget(viewer)
        widget.labels.value = prediction
        widget.image.value = image
        widget.corrections.track()
        return viewer, prediction, widget

    viewer, prediction, widget = session()
    prediction.data_setitem((np.array([5, 5]), np.array([40, 41]), np.array([50, 50])), 1)
    widget.corrections.tracker.mark_slice_reviewed(0, 9)
    # a square on slices 10 and 20, interpolated in between
    for z, half in ((10, 4), (20, 8)):
        yy, xx = np.mgrid[50 - half:50 + half, 60 - half:60 + half]
        prediction.data_setitem((np.full(yy.size, z), yy.ravel(), xx.ravel()), 1)
    widget.interp_from.value, widget.interp_to.value = 10, 20
    widget.interpolate()
    assert prediction.data[15].sum() > 0  # slices in between were filled
    size_15 = int(prediction.data[15].sum())
    assert 8 * 8 < size_15 < 16 * 16
    journal = widget.corrections.journal_file
    assert journal.exists()
    assert journal.parent == journals_dir()  # the one documented folder, never the scan's
    expected = np.array(prediction.data)
    viewer.close()  # "crash": nothing else is saved

    _viewer2, prediction2, widget2 = session()
    assert len(asked) == 1  # the person was asked once, and chose Restore
    assert asked[0].reviewed_slices == 1
    np.testing.assert_array_equal(prediction2.data, expected)
    assert widget2.corrections.tracker.edited[5, 40, 50]
    assert widget2.corrections.tracker.reviewed[9].all()
    assert widget2.corrections.tracker.edited[15].sum() == size_15


def test_corrections_made_in_the_correct_tab_go_into_the_saved_files_record(
        make_napari_viewer, tmp_path):
    import json

    from napari_medseg.io import sidecar_path

    viewer = make_napari_viewer()
    _image, labels = viewer.open_sample("napari-medseg", "ct_abdomen")
    tracker = CorrectionTracker(labels)
    assert not tracker.record_provenance()  # nothing done yet, nothing written
    labels.brush_size = 5
    labels.selected_label = 5
    viewer.dims.set_point(0, labels.data_to_world((12, 0, 0))[0])
    labels.paint((12, 50, 60), 5)  # napari writes the values after the paint event...
    tracker.mark_slice_reviewed(0, 20)
    assert tracker.record_provenance()  # ... and the widget's timer records them after it
    assert not tracker.record_provenance()  # once
    out = tmp_path / "corrected.nii.gz"
    viewer.layers.selection = {labels}
    viewer.layers.save(str(out), selected=True, plugin="napari-medseg")
    edits = json.loads(sidecar_path(out).read_text())["provenance"]["edits"]
    assert edits["edited_slices"] == [12]
    assert edits["reviewed_slices"] == [20]
    assert edits["untracked_changes"] is False  # the record knows the labels as saved


def test_values_left_to_the_plan_say_planned(make_napari_viewer, qtbot):
    from napari_medseg._napari.options_form import options_from_controls
    from napari_medseg._napari.widgets.train_widget import TrainWidget
    from napari_medseg.training.plan import LearnOptions

    viewer = make_napari_viewer()
    widget = FinetuneWidget(viewer)
    steps, rate = widget.steps.native, widget.learning_rate.native
    assert rate.text() == "planned"  # not "0.00000"
    assert (steps.lineEdit().text(), steps.lineEdit().placeholderText()) == ("", "planned")
    widget.steps.value = 40
    widget.learning_rate.value = 0.001
    qtbot.wait(20)
    assert steps.lineEdit().text() == "40"
    assert rate.text() != "planned"
    options = options_from_controls(LearnOptions, widget.learn_controls)
    assert (options.steps, options.learning_rate) == (40, pytest.approx(0.001))
    widget.steps.value = 0  # back to the plan
    widget.learning_rate.value = 0.0
    qtbot.waitUntil(lambda: steps.lineEdit().text() == "", timeout=2_000)
    assert rate.text() == "planned"
    options = options_from_controls(LearnOptions, widget.learn_controls)
    assert (options.steps, options.learning_rate) == (None, None)
    train = TrainWidget(viewer)  # the Train tab's Advanced says it too
    for name in ("batch_size", "context_slices", "patch_size"):
        edit = train.learn_controls[name].native
        edit = edit if hasattr(edit, "placeholderText") else edit.lineEdit()
        assert (edit.text(), edit.placeholderText()) == ("", "planned"), name


def test_track_corrections_is_a_switch_that_says_on_or_off(make_napari_viewer, monkeypatch):
    monkeypatch.setattr(CorrectionTracking, "ask_restore",
                        lambda self, summary: pytest.fail(f"nothing to restore: {summary}"))
    viewer = make_napari_viewer()
    image, labels = viewer.open_sample("napari-medseg", "ct_abdomen")
    widget = FinetuneWidget(viewer)
    widget.labels.value, widget.image.value = labels, image
    corrections = widget.corrections
    button = corrections.track_button
    assert button.native.isCheckable()
    assert not button.native.isChecked()
    assert button.text == "Track corrections: off"
    assert button.tooltip.startswith("Off")
    button.native.click()  # the person switches it on
    tracker = corrections.tracker
    assert tracker is not None
    assert tracker.layer is labels
    assert button.native.isChecked()
    assert button.text == "Track corrections: on"
    assert button.tooltip.startswith(f"On: recording the edits and reviewed slices of "
                                     f"{labels.name!r}")
    assert tracker.overlay in viewer.layers
    labels.data_setitem((np.array([3]), np.array([4]), np.array([5])), 7)
    assert tracker.edited[3, 4, 5]
    button.native.click()  # and off again: nothing more is recorded, the overlay goes
    assert corrections.tracker is None
    assert not button.native.isChecked()
    assert button.text == "Track corrections: off"
    assert tracker.overlay not in viewer.layers
    assert widget.status.value.startswith(f"tracking off: edits of {labels.name!r} are not "
                                          "recorded (1 voxel(s) edited")
    labels.data_setitem((np.array([3]), np.array([9]), np.array([9])), 7)
    assert not tracker.edited[3, 9, 9]
    corrections.mark_current_slice()  # marking a slice reviewed switches it on again...
    assert corrections.tracker is tracker  # ... where it stopped, without asking to restore
    assert tracker.edited[3, 4, 5]
    assert button.native.isChecked()
    assert button.text == "Track corrections: on"
    assert tracker.overlay in viewer.layers
