"""Stopping a mask past the first and last painted slices where an object ending there could not
be: :mod:`napari_medseg.inference.extent`, on real anatomy of the shared data and on shapes
built to isolate one rule each."""

from __future__ import annotations

import numpy as np
import pytest

from napari_medseg.inference.combine import Annotation, build_mask
from napari_medseg.inference.extent import GROW, guard_extent


def _read(path):
    import SimpleITK as sitk

    image = sitk.ReadImage(str(path))
    return sitk.GetArrayFromImage(image), tuple(float(s) for s in image.GetSpacing()[::-1])


def _painted(shape, slices):
    labeled = np.zeros(shape, bool)
    labeled[list(slices)] = True
    return labeled


def _dice(a, b):
    return 2.0 * float((a & b).sum()) / float(a.sum() + b.sum())


@pytest.fixture(scope="module")
def adrenal_and_cava(shared_data):
    """The right adrenal gland (label 8) and the inferior vena cava it touches (label 63) of
    the abdominal CT series' organ labels, cropped around both: 0.98 x 0.98 x 2 mm."""
    labels, spacing = _read(shared_data / "dicom_series_ct_labels" / "example_seg_dicom.nii.gz")
    both = np.isin(labels, (8, 63))
    _, ys, xs = np.nonzero(both)
    crop = labels[:, ys.min() - 8:ys.max() + 9, xs.min() - 8:xs.max() + 9]
    return crop == 8, crop == 63, spacing


def test_a_mask_running_down_the_vena_cava_is_stopped_at_the_gland(adrenal_and_cava) -> None:
    """The adrenal gland spans slices 0-10; painted on 2, 5 and 8 (the protocol's slices are
    1, 5, 9), a network that also labels the vena cava it touches runs on to slice 19.  Past
    the last painted slice the vein leaves the gland's outline: it goes, the gland's end
    stays.  (Before the first painted slice, two slices from the scan's edge, the vein stays
    within the wider cone of the first slice's outline for a slice: a limit of the geometry
    alone, said in the module.)"""
    gland, cava, spacing = adrenal_and_cava
    assert np.nonzero(gland.any(axis=(1, 2)))[0].tolist() == list(range(11))
    slices = (2, 5, 8)
    network = (gland | cava).astype(np.uint8)
    guarded, cuts = guard_extent(network, gland.astype(np.uint8), _painted(gland.shape, slices),
                                 0, slices, spacing)
    kept = guarded > 0
    np.testing.assert_array_equal(kept[9:], gland[9:])  # the gland's end, and no vein
    assert (cava[9:] & ~gland[9:]).sum() > 2000  # what was there to follow
    assert _dice(kept, gland) > _dice(network > 0, gland) + 0.15
    after = next(c for c in cuts if c.after)
    assert (after.painted, after.first, after.last) == (8, 9, 19)
    assert after.voxels == int(((network > 0) & ~kept)[9:].sum())
    assert "left out" in after.describe({1: "adrenal gland"})
    assert "'adrenal gland'" in after.describe({1: "adrenal gland"})
    # between the painted slices nothing is touched (the mask rules and the held-back slice
    # judge that part)
    np.testing.assert_array_equal(guarded[2:9], network[2:9])


def test_real_organs_that_end_near_the_painted_slices_keep_their_ends(shared_data) -> None:
    """The right kidney and the liver of the abdominal CT (3 mm), painted on the protocol's
    slices one in from their ends: their own labels as the network's lose nothing."""
    labels, spacing = _read(shared_data / "ct_abdomen" / "example_seg.nii.gz")
    for value in (2, 5):
        organ = (labels == value).astype(np.uint8)
        present = np.nonzero(organ.any(axis=(1, 2)))[0]
        slices = tuple(int(s) for s in np.linspace(present[0] + 1, present[-1] - 1, 3).round())
        guarded, cuts = guard_extent(organ, organ, _painted(organ.shape, slices), 0, slices,
                                     spacing)
        assert cuts == []
        np.testing.assert_array_equal(guarded, organ)


def _disc(shape, radius, centre):
    yy, xx = np.indices(shape)
    return (yy - centre[0]) ** 2 + (xx - centre[1]) ** 2 <= radius**2


def test_a_thin_strand_going_straight_on_is_stopped() -> None:
    """A round object painted up to slice 10 (radius 5 mm) that goes on as a thin strand
    through its own outline for 15 slices: inside the cone and not widening, but a tip stays
    thin for at most half the outline's radius (2 slices of 1 mm)."""
    shape = (30, 24, 24)
    mask = np.zeros(shape, np.uint8)
    for z in range(0, 11):
        mask[z][_disc(shape[1:], 5, (12, 12))] = 1
    for z in range(11, 26):
        mask[z][_disc(shape[1:], 1, (12, 12))] = 1
    slices = (0, 5, 10)
    guarded, cuts = guard_extent(mask, mask, _painted(shape, slices), 0, slices, (1.0, 1.0, 1.0))
    along = np.nonzero((guarded > 0).any(axis=(1, 2)))[0]
    assert along.max() == 12
    assert len(cuts) == 1
    assert (cuts[0].first, cuts[0].last) == (13, 25)
    assert "thin strand" in cuts[0].why


def test_a_real_lesion_that_narrows_and_widens_again_keeps_its_slices(shared_data) -> None:
    """The brain1 lesion (6.5 mm slices) narrows on slice 14 to 40 % of slice 13 and widens
    again to 984 voxels on 16: painted on slice 12 alone (524 voxels) or on 12, 14 and 16,
    its own labels as the network's lose nothing past the painted slices."""
    labels, spacing = _read(shared_data / "mri_lesion" / "brain1_label.nrrd")
    lesion = (labels > 0).astype(np.uint8)
    for slices in ((12,), (12, 14, 16)):
        guarded, cuts = guard_extent(lesion, lesion, _painted(lesion.shape, slices), 0, slices,
                                     spacing)
        assert cuts == [], slices
        np.testing.assert_array_equal(guarded, lesion)


def test_a_cross_section_that_swells_past_the_end_is_stopped() -> None:
    shape = (16, 32, 32)
    mask = np.zeros(shape, np.uint8)
    for z in range(0, 9):
        mask[z][_disc(shape[1:], 4, (16, 16))] = 1
    for z in range(9, 16):  # the end merges into something more than GROW times as wide
        mask[z][_disc(shape[1:], 4 * np.sqrt(GROW + 0.5), (16, 16))] = 1  # inside the cone
    slices = (0, 4, 8)
    spacing = (4.0, 1.0, 1.0)  # 4 mm slices: the cone opens 4 mm a slice
    guarded, cuts = guard_extent(mask, mask, _painted(shape, slices), 0, slices, spacing)
    assert not guarded[9:].any()
    assert cuts[0].first == 9
    assert "widens" in cuts[0].why


def test_pieces_that_never_touch_the_painted_end_are_not_the_guards_business() -> None:
    """A look-alike beyond the painted slices, not connected to the object, is left to the
    mask rules (``network`` keeps it, ``connected`` drops it); the guard cuts nothing."""
    shape = (20, 24, 24)
    mask = np.zeros(shape, np.uint8)
    mask[0:9][:, _disc(shape[1:], 4, (8, 8))] = 1
    mask[12:20][:, _disc(shape[1:], 3, (18, 18))] = 1
    slices = (0, 4, 8)
    guarded, cuts = guard_extent(mask, mask, _painted(shape, slices), 0, slices, (1.0,) * 3)
    assert cuts == []
    np.testing.assert_array_equal(guarded, mask)


def test_every_rule_is_stopped_and_the_cut_is_reported(adrenal_and_cava) -> None:
    """:func:`build_mask` stops the network-based rules past the ends, keeps the person's
    labels, and returns the cut for the status line; interpolation never reaches past."""
    gland, cava, spacing = adrenal_and_cava
    slices = (2, 5, 8)
    labeled = _painted(gland.shape, slices)
    annotation = Annotation(labels=gland.astype(np.uint8), labeled=labeled, axis=0,
                            slices=slices, spacing=spacing)
    network = (gland | cava).astype(np.uint8)
    for rule in ("network", "connected", "connected+interpolation"):
        mask, cuts = build_mask(rule, network, annotation)
        assert not mask[11:].any(), rule
        assert {c.first for c in cuts} >= {9}, rule
        np.testing.assert_array_equal(mask[labeled], gland[labeled].astype(np.uint8))
    mask, cuts = build_mask("interpolation", network, annotation)
    assert cuts == []
    assert not mask[9:].any()
