"""napari-medseg as napari's preferred reader for the medical formats, set once, reversible."""

from __future__ import annotations

import numpy as np
import pytest
from napari.errors import MultipleReaderError

from napari_medseg._napari.dock import open_dock
from napari_medseg._napari.preferred_reader import (
    PATTERNS,
    PLUGIN,
    forget_medseg_reader,
    prefer_medseg_reader,
    readers_for,
)
from napari_medseg.cli import main
from napari_medseg.io import read_scan

pytestmark = pytest.mark.gui


def test_file_open_reads_medical_files_with_their_geometry_once_medseg_is_preferred(
        napari_settings, make_napari_viewer, sample_volumes):
    viewer = make_napari_viewer()
    nrrd = sample_volumes / "ct_abdomen_tissue.nrrd"
    with pytest.raises(MultipleReaderError):  # napari asks "MedSeg / napari builtins"
        viewer.open(str(nrrd), plugin=None)  # File > Open, drag and drop, `napari FILE`
    open_dock(viewer)
    layer = viewer.open(str(nrrd), plugin=None)[0]
    np.testing.assert_allclose(layer.scale, read_scan(nrrd).geometry.spacing)
    nifti = viewer.open(str(sample_volumes / "ct_abdomen.nii.gz"), plugin=None)[0]
    np.testing.assert_allclose(nifti.scale, (3.0, 3.0, 3.0))
    builtin = viewer.open(str(nrrd))[0]  # viewer.open's default is napari's own reader
    assert not np.allclose(builtin.scale, layer.scale)  # hence plugin="napari-medseg"


def test_a_persons_choices_stay_and_photos_stay_with_napari(napari_settings):
    napari_settings.plugins.extension2reader = {"*.gz": "napari", "*.mha": "other-plugin"}
    added = prefer_medseg_reader()
    assert "*.nii.gz" not in added  # the person's "*.gz" decides .nii.gz files
    assert "*.mha" not in added
    assert set(added) == set(PATTERNS) - {"*.nii.gz", "*.mha"}
    prefs = napari_settings.plugins.extension2reader
    assert prefs["*.gz"] == "napari"
    assert prefs["*.mha"] == "other-plugin"
    assert not any(p in prefs for p in ("*.png", "*.jpg", "*.tif", "*.tiff"))
    assert readers_for(("*.nrrd", "*.nii.gz")) == {"*.nrrd": PLUGIN, "*.nii.gz": "napari"}


def test_set_once_a_removal_stays_and_it_can_be_undone_and_redone(napari_settings):
    assert set(prefer_medseg_reader()) == set(PATTERNS)
    prefs = dict(napari_settings.plugins.extension2reader)
    del prefs["*.nrrd"]  # the person removes one in napari's preferences
    prefs["*.png"] = PLUGIN  # and chooses napari-medseg for PNG in napari's reader dialog
    napari_settings.plugins.extension2reader = prefs
    assert prefer_medseg_reader() == []  # the next dock does not add it back
    assert "*.nrrd" not in napari_settings.plugins.extension2reader
    removed = forget_medseg_reader()
    assert set(removed) == set(PATTERNS) - {"*.nrrd"}
    assert napari_settings.plugins.extension2reader == {"*.png": PLUGIN}  # theirs stays
    assert prefer_medseg_reader() == []
    assert set(prefer_medseg_reader(again=True)) == set(PATTERNS)


def test_saved_in_naparis_settings_file(napari_settings):
    prefer_medseg_reader()
    text = napari_settings.config_path.read_text()  # napari saved it at once
    assert "'*.nii.gz': napari-medseg" in text or "'*.nii.gz': 'napari-medseg'" in text


def test_cli_shows_unsets_and_sets(napari_settings, capsys):
    assert main(["napari-reader"]) == 0
    assert "*.nrrd     napari asks" in capsys.readouterr().out
    assert main(["napari-reader", "--set"]) == 0
    out = capsys.readouterr().out
    assert "added: *.nii," in out
    assert f"*.nrrd     {PLUGIN}" in out
    assert main(["napari-reader", "--unset"]) == 0
    out = capsys.readouterr().out
    assert "removed: *.nii," in out
    assert "*.nrrd     napari asks" in out
    assert napari_settings.plugins.extension2reader == {}
