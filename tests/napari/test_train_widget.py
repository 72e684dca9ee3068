"""The Train tab driven as a person would: paint a structure on a few slices of a real CT,
train, get the whole-volume mask as a new layer, continue from the saved version."""

from __future__ import annotations

import numpy as np
import pytest

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
