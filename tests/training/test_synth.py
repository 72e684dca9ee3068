"""Domain randomisation: random T1-like scans drawn from tissue maps (training.synth)."""

from __future__ import annotations

import numpy as np
import pytest
from scipy import ndimage

from napari_medseg.training.synth import (
    CSF,
    GM,
    HEAD,
    WM,
    SynthOptions,
    grow_head,
    synthesize,
)

STEADY = SynthOptions(bias_strength=0.0, thick_slice_probability=0.0, noise=(0.0, 0.0),
                      agnostic_probability=0.0)


def _phantom(n: int = 40) -> tuple[dict[int, np.ndarray], np.ndarray]:
    """A ball brain: white matter inside r < 7, grey matter to r < 11, CSF to r < 12."""
    z, y, x = np.mgrid[:n, :n, :n] - n / 2 + 0.5
    r = np.sqrt(z * z + y * y + x * x)
    brain = r < 12
    probabilities = {WM: (r < 7).astype(np.float32), GM: ((r >= 7) & (r < 11)).astype(np.float32),
                     CSF: ((r >= 11) & (r < 12)).astype(np.float32)}
    return probabilities, brain


def test_labels_follow_the_tissue_maps_and_the_head_stays_outside_the_brain() -> None:
    probabilities, brain = _phantom()
    image, labels = synthesize(probabilities, brain, (2.0, 2.0, 2.0),
                               np.random.default_rng(0), skull=True)
    assert image.shape == labels.shape == brain.shape
    np.testing.assert_array_equal(labels[probabilities[WM] > 0], WM)
    np.testing.assert_array_equal(labels[probabilities[GM] > 0], GM)
    assert (labels[~brain] != GM).all()
    assert (labels[~brain] != WM).all()
    assert (labels == HEAD).sum() > 1000  # skull and scalp, all outside the brain
    assert not (brain & (labels == HEAD)).any()
    _, stripped = synthesize(probabilities, brain, (2.0, 2.0, 2.0),
                             np.random.default_rng(0), skull=False)
    assert set(np.unique(stripped[~brain])) == {0}  # a skull-stripped look: nothing outside


def test_t1_like_draws_keep_white_brighter_than_grey_brighter_than_csf() -> None:
    probabilities, brain = _phantom()
    for seed in range(5):
        image, labels = synthesize(probabilities, brain, (2.0, 2.0, 2.0),
                                   np.random.default_rng(seed), STEADY, skull=False)
        core = ndimage.binary_erosion(labels == GM, iterations=1)  # away from blurred edges
        wm, gm = image[labels == WM].mean(), image[core].mean()
        csf = image[labels == CSF].mean()
        assert wm > gm > csf


def test_draws_differ_by_seed_and_repeat_with_the_same_seed() -> None:
    probabilities, brain = _phantom()
    a, la = synthesize(probabilities, brain, (2.0, 2.0, 2.0), np.random.default_rng(3))
    b, lb = synthesize(probabilities, brain, (2.0, 2.0, 2.0), np.random.default_rng(3))
    c, _ = synthesize(probabilities, brain, (2.0, 2.0, 2.0), np.random.default_rng(4))
    np.testing.assert_array_equal(a, b)
    np.testing.assert_array_equal(la, lb)
    assert np.abs(a - c).mean() > 1.0


def test_a_real_brain_is_kept_inside_under_a_drawn_head() -> None:
    probabilities, brain = _phantom()
    real = np.random.default_rng(9).uniform(0.2, 0.9, brain.shape).astype(np.float32)
    image, labels = synthesize(probabilities, brain, (2.0, 2.0, 2.0), np.random.default_rng(1),
                               STEADY, real=real, skull=True)
    inside = ndimage.binary_erosion(brain, iterations=2)
    corr = np.corrcoef(image[inside], real[inside])[0, 1]
    assert corr > 0.5  # the real intensities survive (blurred a little, gamma-changed)
    assert (labels == HEAD).any()


def test_head_layers_grow_outwards_in_order() -> None:
    _, brain = _phantom()
    layers = grow_head(brain, (2.0, 2.0, 2.0), np.random.default_rng(0), neck=True)
    distance = ndimage.distance_transform_edt(~brain, sampling=(2.0, 2.0, 2.0))
    means = [distance[layers == k].mean() for k in range(1, 7)]
    assert means == sorted(means)
    assert (layers == 7).any()  # the neck/face mass, below the brain's middle only
    z = np.nonzero(layers == 7)[0]
    assert z.max() < np.nonzero(brain)[0].max()
    assert not (layers[brain] > 0).any()


@pytest.mark.parametrize("seed", [0, 1])
def test_images_are_finite_and_non_negative(seed: int) -> None:
    probabilities, brain = _phantom()
    image, _ = synthesize(probabilities, brain, (2.0, 2.0, 2.0), np.random.default_rng(seed))
    assert np.isfinite(image).all()
    assert image.min() >= 0
