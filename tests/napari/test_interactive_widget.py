"""The Interactive tab driven as a person would, on the bundled CT: clicks change the preview,
Enter writes the object leaving another one untouched, undo and redo restore exactly."""

from __future__ import annotations

import numpy as np
import pytest
from scipy import ndimage

from napari_medseg._napari.widgets.interactive_widget import InteractiveWidget
from napari_medseg.io import read_label_map
from tests.conftest import SAMPLE_VOLUMES

pytestmark = pytest.mark.gui
SPLEEN = 1


def _deepest(mask: np.ndarray) -> tuple[int, ...]:
    dist = ndimage.distance_transform_edt(mask)
    return tuple(int(v) for v in np.unravel_index(int(np.argmax(dist)), mask.shape))


@pytest.fixture
def tab(make_napari_viewer, qtbot):
    viewer = make_napari_viewer()
    image = viewer.open(str(SAMPLE_VOLUMES / "ct_abdomen.nii.gz"), plugin="napari-medseg")[0]
    organs = np.asarray(read_label_map(SAMPLE_VOLUMES / "ct_abdomen_organs.nii.gz").array)
    widget = InteractiveWidget(viewer)
    widget.image.value = image
    widget.new_labels()
    target = widget.target.value
    # another object already there, overlapping the spleen's edge
    spleen = organs == SPLEEN
    other = (ndimage.binary_dilation(spleen, iterations=2)
             & ~ndimage.binary_erosion(spleen, iterations=2))
    other[:, :, : int(np.nonzero(spleen.any((0, 1)))[0].mean())] = False
    target.data[other] = 9
    widget.start()
    return viewer, widget, image, target, spleen, other


def _settle(qtbot, widget) -> None:
    qtbot.waitUntil(lambda: not widget.busy, timeout=30_000)
    qtbot.wait(50)  # the accept's write runs on the next turns of the event loop


def test_clicks_preview_accept_and_undo(tab, qtbot) -> None:
    viewer, widget, image, target, spleen, other = tab
    names = [layer.name for layer in viewer.layers]
    assert "clicks (left in, right out)" in names
    assert "object preview (not saved)" in names
    preview = widget.layers.preview
    widget.click(image.data_to_world(_deepest(spleen)), positive=True)
    _settle(qtbot, widget)
    first = np.asarray(preview.data) > 0
    assert first.sum() > 1000
    assert 2 * (first & spleen).sum() / (first.sum() + spleen.sum()) > 0.6
    wrong = first & ~spleen
    widget.click(image.data_to_world(_deepest(wrong)), positive=False)
    _settle(qtbot, widget)
    second = np.asarray(preview.data) > 0
    assert not np.array_equal(first, second)
    assert (second & ~spleen).sum() < wrong.sum()

    before = np.array(target.data)
    widget.accept()  # Enter
    _settle(qtbot, widget)
    after = np.asarray(target.data)
    written = after != before
    assert written.any()
    assert set(np.unique(after[written])) == {10}  # a new value: max + 1
    assert (after[other] == 9).all()  # the other object untouched
    assert "left alone" in widget.status.value
    assert not np.asarray(preview.data).any()  # the next object starts empty

    widget.undo()  # Ctrl+Z: the accept is undone, the object is back in the preview
    _settle(qtbot, widget)
    np.testing.assert_array_equal(target.data, before)
    np.testing.assert_array_equal(np.asarray(preview.data) > 0, second)
    widget.undo()
    _settle(qtbot, widget)
    np.testing.assert_array_equal(np.asarray(preview.data) > 0, first)
    widget.redo()
    widget.redo()
    _settle(qtbot, widget)
    np.testing.assert_array_equal(target.data, after)


def test_bad_clicks_and_accepts_are_explained(tab, qtbot, monkeypatch) -> None:
    from napari_medseg._napari import interactive_prompts
    from napari_medseg._napari.widgets import interactive_widget

    viewer, widget, image, _target, spleen, _other = tab
    said: list[str] = []
    monkeypatch.setattr(interactive_widget, "warn", said.append)
    monkeypatch.setattr(interactive_prompts, "warn", said.append)
    widget.click(image.data_to_world((0, -50, 0)), positive=True)
    assert "outside the scan" in said[-1]
    widget.accept()  # nothing clicked yet
    _settle(qtbot, widget)
    assert "no object to accept" in said[-1]
    other = viewer.add_labels(np.zeros((3, 3, 3), np.uint8), name="tiny")
    widget.target.value = other
    widget.click(image.data_to_world(_deepest(spleen)), positive=True)
    _settle(qtbot, widget)
    widget.accept()
    assert "choose labels made on this scan" in said[-1]
    assert not other.data.any()
    viewer.layers.remove(image)
    widget.click((0, 0, 0))
    assert "scan layer was removed" in said[-1]


def test_prompt_layers_are_never_saved_as_labels(tab, tmp_path) -> None:
    from napari_medseg._napari.writer import write_labels
    from napari_medseg.errors import MedsegError

    _viewer, widget, *_ = tab
    preview = widget.layers.preview
    with pytest.raises(MedsegError, match="not your labels"):
        write_labels(str(tmp_path / "p.nii.gz"), preview.data, preview.as_layer_data_tuple()[1])
    assert not (tmp_path / "p.nii.gz").exists()


def test_a_painted_mask_is_refined_with_clicks_and_put_back_under_its_value(tab, qtbot):
    _viewer, widget, image, target, spleen, other = tab
    rough = ndimage.binary_dilation(spleen, iterations=2) & ~other
    target.data[rough] = 4  # a rough mask painted as label 4
    widget.value.value = 4
    widget.refine()
    _settle(qtbot, widget)
    np.testing.assert_array_equal(np.asarray(widget.layers.preview.data) > 0, rough)
    wrong = rough & ~spleen
    widget.click(image.data_to_world(_deepest(wrong)), positive=False)
    _settle(qtbot, widget)
    refined = np.asarray(widget.layers.preview.data) > 0
    assert (refined & ~spleen).sum() < wrong.sum()
    widget.accept()
    _settle(qtbot, widget)
    data = np.asarray(target.data)
    np.testing.assert_array_equal(data == 4, refined & ~other)  # the label is the refined one
    assert (data[other] == 9).all()
    widget.undo()
    _settle(qtbot, widget)
    np.testing.assert_array_equal(np.asarray(target.data) == 4, rough)  # back as painted


def test_a_scribble_painted_inside_grows_the_object(tab, qtbot) -> None:
    _viewer, widget, _image, _target, spleen, _other = tab
    scribbles = widget.layers.scribbles
    z = int(np.argmax(spleen.sum((1, 2))))
    scribbles.selected_label = 1  # 1 paints inside the object
    scribbles.brush_size = 3
    scribbles.paint(_deepest(spleen), 1)  # napari's brush: a paint event
    _settle(qtbot, widget)
    got = np.asarray(widget.layers.preview.data) > 0
    assert got[z].any()
    assert 2 * (got & spleen).sum() / (got.sum() + spleen.sum()) > 0.5
