"""Domain randomisation for brain MRI: random T1-like scans drawn from tissue maps.

A network trained on one template sees one contrast, one bias field, one resolution and no
skull.  Following SynthSeg (Billot et al. 2023, *Medical Image Analysis* 86:102789), each
training scan here is *generated* from tissue maps: every tissue gets a random mean and
spread, partial volume comes from the tissue probabilities, and a random bias field, gamma,
blur (thick slices), and noise follow.  A random head is grown around the brain (extra-axial
CSF, inner table, diploe, outer table, scalp, and with some chance a neck/face mass of
random tissue), so the network learns to call everything outside the brain "non-brain"
instead of grey matter.  What is ours and not SynthSeg's: the head is synthetic (SynthSeg
draws it from label maps of real heads, which ``../shared/data`` does not have), and most
draws keep a T1-like ordering of tissue intensities (WM > GM > CSF) with wide jitter, a
smaller share are contrast-agnostic.

Everything is numpy/scipy on one volume at a time; :func:`synthesize` returns the image and
its label map (:data:`CLASSES`).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import numpy.typing as npt
from scipy import ndimage

#: Label values of the generated maps (and of the ``brain-tissue-t1`` starter).
CLASSES = {0: "background", 1: "grey matter", 2: "white matter", 3: "cerebrospinal fluid",
           4: "non-brain head"}
BACKGROUND, GM, WM, CSF, HEAD = 0, 1, 2, 3, 4


@dataclass(frozen=True)
class SynthOptions:
    """Ranges of the random draws (intensities on a 0..1 scale, lengths in mm)."""

    skull_probability: float = 0.7
    neck_probability: float = 0.6
    agnostic_probability: float = 0.15
    bias_strength: float = 0.35
    thick_slice_probability: float = 0.4
    thick_slice_mm: tuple[float, float] = (3.0, 7.0)
    noise: tuple[float, float] = (0.0, 0.04)


def _smooth_noise(shape: tuple[int, ...], rng: np.random.Generator, cells: int = 4
                  ) -> npt.NDArray[np.float32]:
    """Low-frequency noise in about [-1, 1]: a coarse random grid, upsampled smoothly."""
    coarse = rng.uniform(-1, 1, size=(cells,) * len(shape))
    zoom = [s / cells for s in shape]
    field = ndimage.zoom(coarse, zoom, order=3, mode="nearest")
    return field[tuple(slice(0, s) for s in shape)].astype(np.float32)


def grow_head(brain: npt.NDArray[np.bool_], spacing: tuple[float, ...],
              rng: np.random.Generator, *, neck: bool) -> npt.NDArray[np.uint8]:
    """Layers around a brain mask: 1 extra-axial CSF, 2 inner table, 3 diploe, 4 outer
    table, 5 scalp fat, 6 skin/muscle, 7 neck/face mass; 0 air.  Layer thicknesses are
    random and vary smoothly around the head.  Axis 0 must run inferior -> superior."""
    outside = ndimage.distance_transform_edt(~brain, sampling=spacing).astype(np.float32)
    outside = outside + 2.0 * _smooth_noise(brain.shape, rng, cells=5)
    thickness = [rng.uniform(0.5, 3.0), rng.uniform(1.0, 3.0), rng.uniform(1.5, 5.0),
                 rng.uniform(1.0, 3.0), rng.uniform(3.0, 10.0), rng.uniform(1.0, 4.0)]
    layers = np.zeros(brain.shape, np.uint8)
    edge = 0.0
    for value, t in enumerate(thickness, start=1):
        layers[(outside > edge) & (outside <= edge + t) & ~brain] = value
        edge += t
    if neck:
        # a mass below the brain's middle: neck, face and whatever else a head scan holds
        extra = rng.uniform(10.0, 35.0)
        z = np.arange(brain.shape[0], dtype=np.float32)[:, None, None]
        zs = np.nonzero(brain.any(axis=(1, 2)))[0]
        middle = zs.min() + rng.uniform(0.3, 0.6) * (zs.max() - zs.min())
        below = np.broadcast_to(z < middle, brain.shape)
        layers[(outside > edge) & (outside <= edge + extra) & below] = 7
    return layers


def _blur_axis(image: npt.NDArray[np.float32], axis: int, sigma: float
               ) -> npt.NDArray[np.float32]:
    return ndimage.gaussian_filter1d(image, sigma, axis=axis, mode="nearest")


def synthesize(probabilities: dict[int, npt.NDArray[np.floating]],
               brain: npt.NDArray[np.bool_], spacing: tuple[float, ...],
               rng: np.random.Generator, options: SynthOptions | None = None,
               *, real: npt.NDArray[np.floating] | None = None, skull: bool | None = None
               ) -> tuple[npt.NDArray[np.float32], npt.NDArray[np.uint8]]:
    """One random scan and its labels (:data:`CLASSES`).

    ``probabilities``: ``{GM: p, WM: p, CSF: p}`` inside ``brain`` (0..1, summing to ~1
    there).  ``real``: a real image of that brain on a 0..1 scale, used inside the brain
    instead of drawn intensities (the head is still synthetic).  ``skull``: force a head
    (True) or a skull-stripped look (False); random by default.
    """
    opts = options or SynthOptions()
    shape = brain.shape
    with_head = rng.random() < opts.skull_probability if skull is None else skull
    agnostic = real is None and rng.random() < opts.agnostic_probability

    def mean(low: float, high: float) -> float:
        return float(rng.uniform(0, 1) if agnostic else rng.uniform(low, high))

    gm = mean(0.35, 0.6)
    wm = mean(min(gm + 0.1, 0.95), min(gm + 0.4, 1.0))
    csf = mean(0.05, 0.3)
    image = np.zeros(shape, np.float32)
    if real is not None:
        image[brain] = np.asarray(real, np.float32)[brain]
    else:
        for value, mu in ((GM, gm), (WM, wm), (CSF, csf)):
            image += np.asarray(probabilities[value], np.float32) * np.float32(mu)
        image *= brain
        spread = rng.uniform(0.01, 0.05)
        image += brain * rng.normal(0, spread, shape).astype(np.float32)
    labels = np.zeros(shape, np.uint8)
    stack = np.stack([probabilities[CSF], probabilities[GM], probabilities[WM]])
    labels[brain] = np.array([CSF, GM, WM], np.uint8)[np.argmax(stack, axis=0)][brain]
    if with_head:
        layers = grow_head(brain, spacing, rng, neck=rng.random() < opts.neck_probability)
        means = {1: mean(0.02, 0.3), 2: mean(0.0, 0.12), 3: mean(0.2, 0.75),
                 4: mean(0.0, 0.12), 5: mean(0.6, 1.0), 6: mean(0.2, 0.55)}
        for value, mu in means.items():
            part = layers == value
            image[part] = mu + rng.normal(0, rng.uniform(0.01, 0.06), int(part.sum()))
        mass = layers == 7
        if mass.any():  # random tissue patches: muscle, fat, fluid, anything
            texture = _smooth_noise(shape, rng, cells=int(rng.integers(6, 14)))
            bins = np.quantile(texture[mass], [1 / 3, 2 / 3])
            kinds = np.digitize(texture, bins)
            tissue = rng.uniform(0.0, 1.0, 3).astype(np.float32)
            image[mass] = tissue[kinds[mass]] + rng.normal(0, 0.03, int(mass.sum()))
        labels[(layers == 1)] = CSF
        labels[(layers >= 2)] = HEAD
    image = ndimage.gaussian_filter(image, rng.uniform(0.0, 0.7)).astype(np.float32)
    # bias field, gamma, thick slices, noise
    image *= np.exp(opts.bias_strength * rng.uniform(0, 1) * _smooth_noise(shape, rng))
    image = np.clip(image, 0, None) ** np.float32(np.exp(rng.normal(0, 0.2)))
    if rng.random() < opts.thick_slice_probability:
        axis = int(rng.integers(len(shape)))
        thickness = rng.uniform(*opts.thick_slice_mm)
        image = _blur_axis(image, axis, thickness / 2.355 / spacing[axis])
    image += rng.normal(0, rng.uniform(*opts.noise), shape).astype(np.float32)
    image = np.clip(image, 0, None)
    return (image * np.float32(255.0)).astype(np.float32), labels
