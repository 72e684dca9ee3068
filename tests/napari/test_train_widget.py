"""The Train tab driven as a person would: paint a structure on a few slices of a real CT,
train, get the whole-volume mask as a new layer, continue from the saved version."""

from __future__ import annotations

import numpy as np
import pytest

from napari_medseg._napari.layer_edits import THROTTLE_MS
from napari_medseg._napari.widgets.train_widget import TrainWidget
from napari_medseg.models import load_checkpoint

pytestmark = pytest.mark.gui


@pytest.fixture
def models_dir(tmp_path, monkeypatch):
    folder = tmp_path / "models"
    folder.mkdir()
    monkeypatch.setenv("NAPARI_MEDSEG_MODELS", str(folder))
    return folder


def _paint_liver(viewer, organs, slices):
    """A new Labels layer with the liver painted on ``slices`` (what a person draws)."""
    liver = organs.data == 5
    layer = viewer.add_labels(np.zeros(organs.data.shape, np.uint8), name="liver",
                              scale=organs.scale, translate=organs.translate,
                              affine=organs.affine.affine_matrix)
    for z in slices:
        idx = np.nonzero(liver[z])
        layer.data_setitem((np.full(idx[0].shape, z), *idx), 1)
    return layer, liver


def test_train_tab_learns_the_liver_from_three_slices(make_napari_viewer, qtbot, models_dir):
    viewer = make_napari_viewer(show=True)
    image, organs = viewer.open_sample("napari-medseg", "ct_abdomen")
    widget = TrainWidget(viewer)
    viewer.window.add_dock_widget(widget, name="Train")
    painted, liver = _paint_liver(viewer, organs, (4, 14, 24))
    widget.reset_choices()
    widget.images.value = [image]
    widget.labels.value = painted
    assert "3 annotated slice(s) along axis 0 (4, 14, 24)" in widget.what.value
    widget.device.value = "cpu"
    widget.learn_controls["steps"].value = 150  # a fixed run, not the 2-minute budget
    n_layers = len(viewer.layers)
    widget.run()
    assert widget.runner.running
    assert not widget.run_button.enabled
    qtbot.waitUntil(lambda: not widget.runner.running, timeout=300_000)
    assert "learned" in widget.status.value, widget.status.value
    assert widget.last_model is not None
    assert widget.last_model.parent == models_dir
    assert widget.last_model.name == "liver-unet-v1.safetensors"
    _, spec = load_checkpoint(widget.last_model)
    assert (spec.spatial_dims, spec.slice_axis) == (2, 0)
    assert spec.training_data is not None  # the fit check knows what it was trained on
    assert spec.class_names[1] == painted.name  # a painted layer's one class: the layer's name
    # one Dice, said plainly, with the class by its name ("learned liver", not "class 1")
    assert f"learned {painted.name}: the mask agrees with your held-back slice at 0." in (
        widget.status.value)
    assert widget.plan.value.startswith("unet 2.5D")
    assert len(widget.curve.loss) > 0
    assert widget.curve.dice
    assert widget.curve.fold_in is not None
    # the mask is a new layer on the scan's grid; the person's slices are kept as painted
    assert len(viewer.layers) == n_layers + 1
    mask = viewer.layers[-1]
    assert mask.name == "ct_abdomen [liver-unet-v1]"
    np.testing.assert_array_equal(mask.data[14], liver[14].astype(mask.data.dtype))
    np.testing.assert_allclose(mask.scale, image.scale)
    untouched = np.ones(liver.shape, bool)
    untouched[[4, 14, 24]] = False
    found = mask.data.astype(bool)
    dice = 2 * (found & liver & untouched).sum() / ((found & untouched).sum()
                                                   + (liver & untouched).sum())
    assert dice > 0.7, dice  # measured ~0.9 here; the bar is what a person would accept
    assert found.sum() < 0.5 * found.size  # not "everything is liver"
    # which slice next: a button that moves the viewer there
    assert widget.next_button.enabled
    widget.go_to_next_slice()
    target = widget.suggestions[0].index
    shown = round(painted.world_to_data(viewer.dims.point)[0])
    assert shown == target
    assert target not in (4, 14, 24)
    # after a model exists the main button continues from it; "New model" is explicit
    assert "Continue" in widget.run_button.text
    assert widget.new_button.visible


def test_train_tab_refuses_an_empty_annotation(make_napari_viewer, models_dir, monkeypatch):
    from napari_medseg._napari import notify

    shown = []
    monkeypatch.setattr(notify, "show_error", shown.append)
    viewer = make_napari_viewer()
    image, organs = viewer.open_sample("napari-medseg", "ct_abdomen")
    empty = viewer.add_labels(np.zeros(organs.data.shape, np.uint8), name="empty",
                              scale=organs.scale, translate=organs.translate,
                              affine=organs.affine.affine_matrix)
    widget = TrainWidget(viewer)
    widget.images.value = [image]
    widget.labels.value = empty
    assert "nothing painted" in widget.what.value
    widget.run()
    assert "nothing annotated" in shown[-1]
    assert not widget.runner.running
    assert not list(models_dir.iterdir())


def test_the_annotation_line_follows_the_painting_without_slowing_it(
        make_napari_viewer, qtbot, monkeypatch):
    from napari_medseg._napari.widgets import train_widget

    described = []
    real = train_widget.describe
    monkeypatch.setattr(train_widget, "describe",
                        lambda *args, **kwargs: described.append(1) or real(*args, **kwargs))
    viewer = make_napari_viewer()
    image, organs = viewer.open_sample("napari-medseg", "ct_abdomen")
    lesion = viewer.add_labels(np.zeros(organs.data.shape, np.uint8), name="lesion",
                               scale=organs.scale, translate=organs.translate,
                               affine=organs.affine.affine_matrix)
    widget = TrainWidget(viewer)
    widget.images.value = [image]
    widget.labels.value = lesion
    assert widget.what.value == "nothing painted on 'lesion' yet"
    described.clear()
    lesion.brush_size = 5
    lesion.selected_label = 1
    viewer.dims.set_point(0, lesion.data_to_world((12, 0, 0))[0])
    for i in range(20):  # twenty brush strokes in quick succession, as a person paints
        lesion.paint((12, 40 + i, 50), 1)
    assert described == []  # no description computed inside a stroke
    qtbot.waitUntil(lambda: "1 annotated slice(s) along axis 0 (12)" in widget.what.value,
                    timeout=5_000)
    qtbot.wait(2 * THROTTLE_MS)
    assert len(described) <= 2  # throttled: once for the twenty strokes (twice at most)
    lesion.data_setitem((np.array([20, 20]), np.array([5, 6]), np.array([5, 5])), 1)
    qtbot.waitUntil(lambda: "(12, 20)" in widget.what.value, timeout=5_000)
    other = viewer.add_labels(np.zeros(organs.data.shape, np.uint8), name="other")
    widget.labels.value = other  # the line follows the chosen layer, not the old one
    lesion.data_setitem((np.array([25]), np.array([5]), np.array([5])), 1)
    qtbot.wait(500)
    assert widget.what.value == "nothing painted on 'other' yet"


def test_time_left_includes_the_segmenting_after_training(make_napari_viewer):
    from napari_medseg.events import PlanReady, Progress, Stage

    widget = TrainWidget(make_napari_viewer())
    widget.on_log(PlanReady(message="plan: unet", summary="unet 2.5D, 300 steps", train_s=50.0,
                            segment_s=20.0))
    assert widget.plan.value == "unet 2.5D, 300 steps"
    widget.on_progress(Progress(stage=Stage.TRAIN, done=10, total=100, eta_s=50.0,
                                metrics={"loss": 0.5}))
    assert widget.status.value == ("step 10 of 100, loss 0.500, 1:10 left (0:20 of it "
                                   "segmenting the scan)")
    assert widget.progress.value == 10
    widget.on_progress(Progress(stage=Stage.MEASURE, done=1, total=4, eta_s=5.0))
    assert widget.status.value == ("measuring the network on the held-back annotation, 0:15 "
                                   "left (0:10 of it segmenting the scan)")
    widget.on_progress(Progress(stage=Stage.SEGMENT, done=1, total=4, eta_s=6.0,
                                message="window 1 of 4"))
    assert widget.status.value == "segmenting the scan: window 1 of 4, 0:06 left"


def test_a_saved_model_reaches_every_model_list(make_napari_viewer, models_dir,
                                                napari_settings):
    from napari_medseg._napari.dock import open_dock
    from tests.conftest import save_tiny_ct_checkpoint

    dock = open_dock(make_napari_viewer())
    train, segment = dock.tab("Train"), dock.tab("Segment")
    correct = dock.tab("Correct and fine-tune")
    path = save_tiny_ct_checkpoint(models_dir / "liver-unet-v1.safetensors",
                                   {0: "background", 1: "liver"})
    for tab in (segment, correct):
        assert str(path) not in tab.model.choices
    train.model_saved(path)  # what a finished run and a Cancel that kept weights call
    for tab in (segment, correct):
        assert str(path) in tab.model.choices
    assert train.last_model == path
    assert "Continue" in train.run_button.text


def test_cancel_while_continuing_keeps_the_best_weights(make_napari_viewer, qtbot,
                                                        models_dir):
    from napari_medseg._napari.model_events import models_changed
    from tests.conftest import save_tiny_ct_checkpoint

    parent = save_tiny_ct_checkpoint(models_dir / "liver.safetensors",
                                     {0: "background", 1: "liver"}, patch_size=(16, 32, 32))
    viewer = make_napari_viewer()
    image, organs = viewer.open_sample("napari-medseg", "ct_abdomen")
    painted, liver = _paint_liver(viewer, organs, (4, 14, 24))
    widget = TrainWidget(viewer)
    widget.images.value = [image]
    widget.labels.value = painted
    widget.device.value = "cpu"
    widget.learn_controls["steps"].value = 500
    widget.learn_controls["learning_rate"].value = 1e-2
    widget.model_saved(parent)  # a model to continue from, as after a first run
    assert "Continue" in widget.run_button.text
    announced = []
    models_changed.connect(announced.append)
    try:
        widget.run()
        assert widget.runner.running
        # the person paints another slice while it trains: the line follows
        idx = np.nonzero(liver[18])
        painted.data_setitem((np.full(idx[0].shape, 18), *idx), 1)
        qtbot.waitUntil(lambda: "(4, 14, 18, 24)" in widget.what.value, timeout=10_000)
        assert widget.runner.running

        def gained() -> bool:
            return widget.trainer is not None and widget.trainer.last_good().best_step > 0

        qtbot.waitUntil(lambda: gained() or not widget.runner.running, timeout=240_000)
        assert widget.runner.running, widget.status.value
        widget.cancel()
        qtbot.waitUntil(lambda: not widget.runner.running, timeout=120_000)
    finally:
        models_changed.disconnect(announced.append)
    saved = sorted(models_dir.glob("liver-unet-v*.safetensors"))
    assert len(saved) == 1, widget.status.value  # the best validated weights, once
    _model, spec = load_checkpoint(saved[0])
    assert spec.provenance["best_step"] > 0
    assert "best validated weights were kept as liver-unet-v1" in widget.status.value
    assert widget.last_model == saved[0]  # Continue goes on from the kept weights
    assert announced == [saved[0]]  # every model list was told
    assert not [p for p in models_dir.iterdir() if p.name.endswith(".tmp")]
