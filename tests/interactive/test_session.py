"""The interactive core on real scans: prompts -> one object, undo/redo, accept, memory."""

from __future__ import annotations

import numpy as np
import pytest
from scipy import ndimage

from napari_medseg.interactive import InteractiveError, Memory, Session
from napari_medseg.interactive.region import Region, touching_border
from napari_medseg.io import read_label_map, read_scan
from napari_medseg.scan import Scan
from tests.conftest import SAMPLE_VOLUMES

SPLEEN, KIDNEY_R, KIDNEY_L, LIVER = 1, 2, 3, 5


@pytest.fixture(scope="module")
def ct():
    scan = read_scan(SAMPLE_VOLUMES / "ct_abdomen.nii.gz")
    organs = read_label_map(SAMPLE_VOLUMES / "ct_abdomen_organs.nii.gz", like=scan).array
    return scan, np.asarray(organs)


def _centre(mask: np.ndarray) -> tuple[int, ...]:
    """The voxel deepest inside ``mask`` (where the click protocol clicks first)."""
    dist = ndimage.distance_transform_edt(mask)
    return tuple(int(v) for v in np.unravel_index(int(np.argmax(dist)), mask.shape))


def dice(a: np.ndarray, b: np.ndarray) -> float:
    return float(2 * (a & b).sum() / max(a.sum() + b.sum(), 1))


def test_one_click_makes_a_3d_object_and_a_negative_click_removes_around_it(ct) -> None:
    scan, organs = ct
    spleen = organs == SPLEEN
    s = Session(scan)
    first = s.add_point(_centre(spleen))
    assert first.shape == scan.shape
    assert first.dtype == np.bool_
    assert len(np.unique(np.nonzero(first)[0])) > 5  # a 3D object, not one slice
    assert dice(first, spleen) > 0.6
    wrong = first & ~spleen
    at = _centre(wrong)
    second = s.add_point(at, positive=False)
    assert not second[at]
    assert (second & ~spleen).sum() < wrong.sum()
    assert "voxels" in s.note


def test_undo_redo_reset_and_accept_move_through_every_state_exactly(ct) -> None:
    scan, organs = ct
    s = Session(scan)
    kidney = organs == KIDNEY_R
    a = s.add_point(_centre(kidney)).copy()
    b = s.add_point(_centre(kidney & ~a) if (kidney & ~a).any() else _centre(kidney)).copy()
    np.testing.assert_array_equal(s.undo(), a)
    np.testing.assert_array_equal(s.redo(), b)
    accepted = s.accept("kidney")
    assert accepted.voxels == int(b.sum())
    assert not s.mask.any()  # the next object starts empty
    assert [e.kind for e in s.memory.examples] == ["kidney"]
    s.undo()  # undo the accept: the object is back, the memory forgets it
    np.testing.assert_array_equal(s.mask, b)
    assert s.memory.examples == []
    s.redo()
    assert len(s.objects) == 1
    assert len(s.memory.examples) == 1
    s.add_point(_centre(organs == SPLEEN))
    s.reset()
    assert not s.mask.any()
    assert len(s.objects) == 1  # accepted objects survive a reset
    np.testing.assert_array_equal(s.undo() > 0, s.mask)
    assert s.mask.any()
    labels = s.labels()
    assert labels.class_names[1] == "kidney"
    np.testing.assert_array_equal(labels.array == 1, b)


def test_the_whole_object_comes_back_when_it_outgrows_the_first_crop(ct) -> None:
    scan, organs = ct
    liver = organs == LIVER
    s = Session(scan)
    mask = s.add_point(_centre(liver))
    region = s.state.region
    assert region is not None
    first = Region.around(np.asarray([_centre(liver)]), scan.shape, scan.geometry.spacing)
    assert region.contains(first)
    assert region != first  # it grew
    assert not any(a or b for a, b in touching_border(mask[region.slices], region, scan.shape))
    inside_first = np.zeros(scan.shape, bool)
    inside_first[first.slices] = True
    assert (mask & ~inside_first).any()  # the object reaches beyond the first crop
    assert (mask & liver).sum() > 0.8 * mask.sum()


def test_memory_carries_an_accepted_object_to_a_new_session_and_survives_saving(ct, tmp_path):
    scan, organs = ct
    first = Session(scan)
    first.add_point(_centre(organs == KIDNEY_R))
    first.accept("kidney")
    path = tmp_path / "memory.json"
    first.memory.save(path)
    loaded = Memory.load(path)
    assert [e.kind for e in loaded.examples] == ["kidney"]
    np.testing.assert_allclose(loaded.examples[0].samples, first.memory.examples[0].samples,
                               atol=1e-4)
    second = Session(scan, memory=loaded)
    assert second.taught == 1
    mask = second.add_point(_centre(organs == KIDNEY_L))
    assert "taught" in second.note
    assert dice(mask, organs == KIDNEY_L) > 0.5


def test_boxes_scribbles_lassos_and_masks_are_prompts(ct) -> None:
    scan, organs = ct
    spleen = organs == SPLEEN
    z = int(np.argmax(spleen.sum((1, 2))))
    ys, xs = np.nonzero(spleen[z])
    s = Session(scan)
    boxed = s.add_box((z, ys.min() - 1, xs.min() - 1), (z, ys.max() + 1, xs.max() + 1))
    assert boxed[z].any()
    outside = np.ones(spleen[z].shape, bool)
    outside[ys.min() - 1:ys.max() + 2, xs.min() - 1:xs.max() + 2] = False
    assert not boxed[z][outside].any()  # nothing outside the box on its slice
    s.reset()
    zs = np.nonzero(spleen.any((1, 2)))[0]
    path = [_centre(spleen[k]) for k in zs[1:-1]]
    scribbled = s.add_scribble([(k, *p) for k, p in zip(zs[1:-1], path, strict=True)])
    assert dice(scribbled, spleen) > 0.6
    s.reset()
    outline = np.argwhere(spleen[z] & ~ndimage.binary_erosion(spleen[z]))
    order = np.argsort(np.arctan2(*(outline - outline.mean(0)).T))
    lasso = s.add_lasso([(z, int(y), int(x)) for y, x in outline[order]])
    assert dice(lasso[z], spleen[z]) > 0.7
    s.reset()
    start = ndimage.binary_dilation(spleen, iterations=2)
    np.testing.assert_array_equal(s.set_mask(start), start)
    at = _centre(start & ~spleen)
    refined = s.add_point(at, positive=False)
    assert not refined[at]
    near = np.zeros(spleen.shape, bool)
    near[at] = True
    near = ndimage.distance_transform_edt(~near, sampling=scan.geometry.spacing) < 8
    assert (refined & near).sum() < (start & near).sum()  # removed around the click
    assert dice(refined, spleen) > 0.6  # and the rest of the mask kept


def test_a_2d_scan_and_a_thick_slice_scan_work() -> None:
    scan = read_scan(SAMPLE_VOLUMES / "mr_brain_lesion.nrrd")
    lesion = np.asarray(read_label_map(SAMPLE_VOLUMES / "mr_brain_lesion_label.nrrd",
                                       like=scan).array) > 0
    assert max(scan.geometry.spacing) > 5  # 6.5 mm slices
    mask = Session(scan).add_point(_centre(lesion))
    assert dice(mask, lesion) > 0.5
    z = int(np.argmax(lesion.sum((1, 2))))
    from napari_medseg.scan import Geometry

    flat = Scan(array=np.asarray(scan.array[z]), modality="MR",
                geometry=Geometry(spacing=scan.geometry.spacing[1:], origin=(0.0, 0.0),
                                  direction=np.eye(2)))
    mask2d = Session(flat).add_point(_centre(lesion[z]))
    assert mask2d.shape == lesion[z].shape
    assert dice(mask2d, lesion[z]) > 0.5


def test_bad_prompts_get_clear_errors_and_lose_nothing(ct) -> None:
    scan, organs = ct
    s = Session(scan)
    with pytest.raises(InteractiveError, match="outside the scan"):
        s.add_point((999, 0, 0))
    with pytest.raises(InteractiveError, match="needs 3 voxel indices"):
        s.add_point((1, 2))
    empty = s.add_point(_centre(organs == KIDNEY_R), positive=False)
    assert not empty.any()
    assert "negative prompt alone" in s.note
    with pytest.raises(InteractiveError, match="no area"):
        s.add_box((5, 10, 10), (5, 10, 40))
    with pytest.raises(InteractiveError, match="does not fit"):
        s.set_mask(np.ones((3, 3, 3), bool))
    with pytest.raises(InteractiveError, match="no object to accept"):
        s.accept("spleen")
    with pytest.raises(InteractiveError, match="one slice"):
        s.add_lasso([(1, 1, 1), (2, 5, 5), (3, 1, 9)])
    assert s.can_undo  # the negative click is still there to undo
    kept = s.add_point(_centre(organs == SPLEEN))
    assert kept.any()


def test_least_sure_points_at_the_object_border(ct) -> None:
    scan, organs = ct
    s = Session(scan)
    assert s.least_sure() is None
    mask = s.add_point(_centre(organs == SPLEEN))
    where = s.least_sure()
    assert where is not None
    near = (ndimage.binary_dilation(mask, iterations=3)
            & ~ndimage.binary_erosion(mask, iterations=3))
    assert near[where]
