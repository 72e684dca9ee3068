"""Saving through napari never replaces a file nobody was asked about."""

from __future__ import annotations

import numpy as np
import pytest
from qtpy.QtWidgets import QFileDialog

import napari
from napari_medseg.errors import OutputExistsError
from napari_medseg.io import read_label_map

pytestmark = pytest.mark.gui
PLUGIN = "napari-medseg"


@pytest.fixture
def labels(make_napari_viewer):
    viewer = make_napari_viewer()
    data = np.zeros((4, 5, 6), np.uint8)
    data[1, 2:4, 1:5] = 2
    layer = viewer.add_labels(data, name="seg", scale=(2.0, 1.0, 1.0))
    viewer.layers.selection = {layer}
    return viewer, layer


def test_saving_from_python_writes_new_files_and_refuses_to_replace(labels, tmp_path):
    viewer, layer = labels
    new = tmp_path / "new.nii.gz"
    viewer.layers.save(str(new), selected=True, plugin=PLUGIN)
    np.testing.assert_array_equal(read_label_map(new).array, layer.data)
    kept = tmp_path / "kept.nrrd"
    kept.write_bytes(b"a person's file")
    with pytest.raises(OutputExistsError, match="napari did not ask whether to replace it"):
        viewer.layers.save(str(kept), selected=True, plugin=PLUGIN)
    with pytest.raises(OutputExistsError):
        napari.save_layers(str(kept), [layer], plugin=PLUGIN)
    with pytest.raises(OutputExistsError):  # the image writer too
        napari.save_layers(str(kept), [viewer.add_image(np.ones((3, 3)))], plugin=PLUGIN)
    assert kept.read_bytes() == b"a person's file"
    # the new file has its provenance sidecar (#18); the refused saves wrote nothing, not even
    # a sidecar for kept.nrrd
    assert sorted(p.name for p in tmp_path.iterdir()) == ["kept.nrrd", "new.nii.gz",
                                                          "new.nii.gz.provenance.json"]


def _answer_save_dialog(monkeypatch, path, asked):
    """Stand in for the person: pick ``path`` and the medical-labels filter in napari's
    save dialog (Qt's dialog has asked "replace?" and they said yes)."""

    def get_save_file_name(*args, **kwargs):
        asked.append(kwargs)
        chosen = next(f for f in kwargs["filter"].split(";;") if "medical labels" in f)
        return str(path), chosen

    monkeypatch.setattr(QFileDialog, "getSaveFileName", staticmethod(get_save_file_name))


def test_the_save_dialog_replaces_the_file_it_asked_about(labels, tmp_path, monkeypatch):
    viewer, layer = labels
    target = tmp_path / "seg.nii.gz"
    target.write_bytes(b"an older version")
    asked: list[dict] = []
    _answer_save_dialog(monkeypatch, target, asked)
    viewer.window._qt_viewer._save_layers_dialog(selected=True)  # File > Save Selected Layers
    assert len(asked) == 1
    options = asked[0].get("options", QFileDialog.Option(0))
    assert not options & QFileDialog.Option.DontConfirmOverwrite  # Qt asks before replacing
    back = read_label_map(target)
    np.testing.assert_array_equal(back.array, layer.data)
    np.testing.assert_allclose(back.geometry.spacing, (2.0, 1.0, 1.0))
