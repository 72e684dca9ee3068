"""The body region a scan shows, and a model of another region never offered for it."""

from __future__ import annotations

import numpy as np
import pytest
from scipy import ndimage

from napari_medseg.inference import find_checkpoint, list_checkpoints
from napari_medseg.inference.body_region import body_region
from napari_medseg.inference.fit import check_fit, choose_model, suggest_model
from napari_medseg.io import read_scan
from napari_medseg.models.checkpoint import read_header
from napari_medseg.scan import Scan
from tests.conftest import SAMPLE_VOLUMES


@pytest.mark.parametrize(("relpath", "region"), [
    ("ct_abdomen/example_ct_sm.nii.gz", "abdomen"),
    ("ct_head/head_ct.nii.gz", "head"),
    ("dicom_series_ct", "abdomen"),
    ("mr_abdomen/example_mr_sm.nii.gz", "abdomen"),
    ("mri_lesion/brain1_image.nrrd", "head"),
    ("colin27/ch2.nii.gz", "head"),
])
def test_the_shared_scans_show_their_body_region(shared_data, relpath, region) -> None:
    assert body_region(read_scan(shared_data / relpath)).name == region


def _chest_like() -> Scan:
    """The bundled abdominal CT with two lungs carved into its body (HU -850 in two
    ellipsoids, as a chest CT shows them): no chest CT may be used here, so the lungs are
    drawn into a real body."""
    ct = read_scan(SAMPLE_VOLUMES / "ct_abdomen.nii.gz")
    array = np.array(ct.array)
    _, y, x = np.indices(array.shape)
    body = ndimage.binary_fill_holes(array > -400)
    cy, cx = np.argwhere(body).mean(axis=0)[1:]
    for side in (-1, 1):
        lung = (((y - cy) / 30) ** 2 + ((x - cx - side * 28) / 20) ** 2) <= 1
        array[lung & body] = -850
    return Scan(array=array, geometry=ct.geometry, modality="CT", display_name="chest")


def test_a_chest_ct_is_told_and_the_abdominal_starter_is_never_offered() -> None:
    chest = _chest_like()
    assert body_region(chest).name == "chest"
    _, spec = read_header(find_checkpoint("upper-abdomen-ct-organs"))
    assert spec.training_data is not None
    assert spec.training_data.regions == ("abdomen",)
    report = check_fit(spec, chest, model="upper-abdomen-ct-organs")
    warning = next(f for f in report.warnings if f.rule == "body-region")
    assert "looks like a chest CT" in warning.message
    assert "trained on the abdomen" in warning.message
    suggestion = suggest_model(chest, [e for e in list_checkpoints() if e.builtin])
    assert suggestion.entry is None  # neither the abdominal nor the head starter
    assert "no installed model was trained on chest CT scans" in suggestion.message
    # the bundled abdominal CT still gets its starter
    abdomen = read_scan(SAMPLE_VOLUMES / "ct_abdomen.nii.gz")
    assert suggest_model(abdomen).entry.name == "upper-abdomen-ct-organs"
    # what the Segment and Correct tabs offer by default (choose_model): nothing for the
    # chest, the abdominal starter for the abdomen, the first CT model when there is no scan
    starters = [e for e in list_checkpoints() if e.builtin]
    assert choose_model("CT", scan=chest, entries=starters) is None
    assert choose_model("CT", scan=abdomen, entries=starters).name == "upper-abdomen-ct-organs"
    assert choose_model("CT", entries=starters).name == "head-ct-tissue"
    # a model the person chose stays chosen (they may insist; the fit check warns)
    mine = str(find_checkpoint("upper-abdomen-ct-organs"))
    assert choose_model("CT", scan=chest, current=mine, entries=starters).name == (
        "upper-abdomen-ct-organs")
