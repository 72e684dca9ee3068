"""The engine: prompts in a crop -> one object, by a graph cut on a learned likelihood.

What each part does, and which library does it:

* **likelihood** (ours): kernel density estimates of the object's and the surroundings'
  intensities, on the scan's intensities mapped to ``[0, 1]`` (:class:`IntensityMapping`). The
  object's samples come from around the positive prompts and, once a person has accepted
  objects of the same kind, from those objects (the session's :class:`~.memory.Memory`); the
  surroundings' from the crop outside the current object, negative prompts weighted up.
* **boundary** (PyMaxflow, the Boykov-Kolmogorov max-flow of the C++ ``maxflow`` library):
  a graph cut between the likelihood terms and contrast-sensitive smoothness between
  neighbours (the GrabCut weights, spacing-aware), prompts as hard constraints.
* **previous object** (ours): the object before this interaction is a soft prior, so a click
  changes the region it is about, not the whole object (as nnInteractive feeds its previous
  mask back); a distance prior (scipy's Euclidean distance transform in mm) keeps the object
  near its prompts.
* Only the parts connected to a positive prompt are kept (scipy ``ndimage.label``).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt
from scipy import ndimage

#: Bins of the intensity look-up tables over [0, 1].
BINS = 256
#: Likelihood floor (a bin nobody sampled is unlikely, not impossible).
FLOOR = 1e-4
HARD = 1e9
#: A negative prompt pushes the object back within this distance (mm) of itself.
NEGATIVE_REACH_MM = 25.0
#: The largest disks around a negative and a positive click taken as certain (mm).
NEGATIVE_DISK_MM = 10.0
POSITIVE_DISK_MM = 4.0
#: Beyond this distance (mm) from the newest prompt the previous object holds fully.
FOCUS_MM = 30.0
#: Separate positive prompts whose intensities are modelled each on its own (at most).
MAX_COMPONENTS = 24


@dataclass(frozen=True)
class IntensityMapping:
    """Scan intensities -> ``[0, 1]``: CT by a fixed HU range (comparable across scans), any
    other modality by its 0.5-99.5th percentiles."""

    low: float
    high: float

    @classmethod
    def for_scan(cls, array: npt.NDArray, modality: str) -> IntensityMapping:
        if modality == "CT":
            return cls(-1024.0, 1976.0)
        sample = np.asarray(array).ravel()[:: max(1, array.size // 1_000_000)]
        low, high = np.percentile(sample.astype(np.float32), [0.5, 99.5])
        return cls(float(low), float(max(high, low + 1e-3)))

    def __call__(self, array: npt.NDArray) -> npt.NDArray[np.float32]:
        out = (np.asarray(array, np.float32) - self.low) / (self.high - self.low)
        return np.clip(out, 0.0, 1.0, out=out)


#: Bins per axis of the learned appearance (intensity x surroundings' intensity).
APPEARANCE_BINS = 96
#: The surroundings' scale of the second appearance feature (mm).
CONTEXT_MM = 4.0


def smoothed(image: npt.NDArray[np.float32], spacing: Sequence[float]
             ) -> npt.NDArray[np.float32]:
    """The image lightly smoothed (Gaussian, half the finest voxel edge): what the engine
    models intensities on, and the first appearance feature."""
    if image.size <= 1:
        return image
    return ndimage.gaussian_filter(image, [0.5 * min(spacing) / s for s in spacing]
                                   ).astype(np.float32)


def surroundings(image: npt.NDArray[np.float32], spacing: Sequence[float]
                 ) -> npt.NDArray[np.float32]:
    """The mean intensity of each voxel's surroundings (Gaussian, :data:`CONTEXT_MM`): the
    second appearance feature."""
    return ndimage.gaussian_filter(image, [CONTEXT_MM / s for s in spacing]).astype(np.float32)


def features(image: npt.NDArray[np.float32], spacing: Sequence[float]
             ) -> tuple[npt.NDArray[np.float32], npt.NDArray[np.float32]]:
    """The two appearance features of every voxel: :func:`smoothed` and
    :func:`surroundings`."""
    return smoothed(image, spacing), surroundings(image, spacing)


def appearance_bins(fine: npt.NDArray[np.float32], wide: npt.NDArray[np.float32]
                    ) -> npt.NDArray[np.int64]:
    b = APPEARANCE_BINS
    return (np.minimum((fine * b).astype(np.int64), b - 1) * b
            + np.minimum((wide * b).astype(np.int64), b - 1))


def appearance_counts(fine: npt.NDArray[np.float32], wide: npt.NDArray[np.float32],
                      fg: npt.NDArray[np.bool_], bg: npt.NDArray[np.bool_]
                      ) -> npt.NDArray[np.float32]:
    """``(2, B, B)`` counts of the object's (``fg``) and its surroundings' (``bg``) voxels."""
    index = appearance_bins(fine, wide)
    size = APPEARANCE_BINS**2
    out = np.stack([np.bincount(index[fg], minlength=size), np.bincount(index[bg],
                                                                        minlength=size)])
    return out.reshape(2, APPEARANCE_BINS, APPEARANCE_BINS).astype(np.float32)


def learned_ratio(counts: npt.NDArray[np.float32], fine: npt.NDArray[np.float32],
                  wide: npt.NDArray[np.float32]) -> npt.NDArray[np.float32]:
    """log p(surroundings) - log p(object) of every voxel under taught ``counts``."""
    smooth = [ndimage.gaussian_filter(c.astype(np.float64), 1.5) for c in counts]
    dens = [c / max(c.sum(), 1e-9) for c in smooth]
    floor = 1.0 / APPEARANCE_BINS**2 * 1e-2
    table = (np.log(dens[1] + floor) - np.log(dens[0] + floor)).ravel()
    return table[appearance_bins(fine, wide)].astype(np.float32)


def noise_level(image: npt.NDArray[np.float32]) -> float:
    """The image noise (standard deviation, robust: from neighbour differences along the last
    axis, median absolute deviation)."""
    d = np.diff(image, axis=-1).ravel()
    if d.size == 0:
        return 0.0
    return float(1.4826 * np.median(np.abs(d - np.median(d))) / np.sqrt(2.0))


def density(samples: npt.NDArray[np.float32], weights: npt.NDArray | None = None, *,
            min_bandwidth: float = 0.0) -> npt.NDArray[np.float64]:
    """A kernel density estimate of ``samples`` (in ``[0, 1]``) on :data:`BINS` bins,
    bandwidth by Silverman's rule, at least ``min_bandwidth`` (intensity units) and one bin;
    sums to 1."""
    if samples.size == 0:
        return np.full(BINS, 1.0 / BINS)
    hist = np.bincount(np.minimum((samples * BINS).astype(np.int64), BINS - 1),
                       weights=weights, minlength=BINS).astype(np.float64)
    std = float(np.std(samples)) if samples.size > 1 else 0.0
    iqr = float(np.subtract(*np.percentile(samples, [75, 25]))) if samples.size > 3 else 0.0
    spread = min(std, iqr / 1.34) if iqr > 0 else std
    bandwidth = 0.9 * spread * samples.size ** -0.2 * BINS
    smooth = ndimage.gaussian_filter1d(hist, max(bandwidth, min_bandwidth * BINS, 1.0),
                                       mode="constant")
    return smooth / max(smooth.sum(), 1e-12)


@dataclass
class Prompts:
    """Prompts rasterised in a crop: hard object / background voxels and soft hints."""

    positive: npt.NDArray[np.bool_]
    negative: npt.NDArray[np.bool_]
    outside: npt.NDArray[np.bool_] | None = None  # voxels a box or lasso excludes
    hint: npt.NDArray[np.bool_] | None = None  # voxels a box or lasso suggests (soft)
    core: npt.NDArray[np.bool_] | None = None  # the inside of a mask being refined (hard)
    focus: npt.NDArray[np.bool_] | None = None  # the newest prompt: the object changes near it


@dataclass(frozen=True)
class EngineOptions:
    """The engine's weights (set on the benchmark's two tuning objects, see the docs)."""

    smoothness: float = 2.0  # contrast-sensitive pairwise weight
    tolerance: float = 2.5  # an intensity within this many standard deviations is object-like
    prior: float = 0.3  # the previous object's pull per voxel (log units)
    reach_mm: float = 15.0  # the object pays 1 unit per this many mm away from its prompts
    competition_mm: float = 5.0  # nearer a negative prompt than a positive one: 1 unit per mm
    seed_radius_mm: float = 2.5  # the ball around a click taken as the object's sample
    iterations: int = 1  # rounds: the object's intensity re-estimated from the result
    contrast: float = 3.0  # weight of the object-vs-surroundings intensity log ratio
    taught: float = 1.0  # weight of the appearance learned from accepted objects
    locality: float = 4.0  # how much more the previous object holds far from the newest prompt
    disk: float = 3.0  # a click's certain disk reaches 1/disk of the way to the other sign


def robust_stats(values: npt.NDArray[np.float32], floor: float) -> tuple[float, float]:
    """Median and robust standard deviation (MAD), at least ``floor``."""
    if values.size == 0:
        return 0.5, 1.0
    mu = float(np.median(values))
    sd = float(1.4826 * np.median(np.abs(values - mu)))
    return mu, max(sd, floor)


def _ball_dilate(mask: npt.NDArray[np.bool_], spacing: Sequence[float],
                 radius_mm: float) -> npt.NDArray[np.bool_]:
    if not mask.any():
        return mask
    dist = ndimage.distance_transform_edt(~mask, sampling=spacing)
    return np.asarray(dist <= radius_mm)


def _pairwise(image: npt.NDArray[np.float32], spacing: Sequence[float],
              weight: float) -> list[npt.NDArray[np.float64]]:
    """Contrast-sensitive weights to the next voxel along each axis (GrabCut's beta)."""
    diffs = [np.diff(image, axis=a) for a in range(image.ndim)]
    mean_sq = np.mean([float(np.mean(d * d)) for d in diffs if d.size]) if diffs else 0.0
    beta = 1.0 / (2.0 * mean_sq) if mean_sq > 0 else 0.0
    smallest = min(spacing)
    out = []
    for axis, d in enumerate(diffs):
        w = weight * np.exp(-beta * d.astype(np.float64) ** 2) * smallest / spacing[axis]
        pad = [(0, 0)] * image.ndim
        pad[axis] = (0, 1)
        out.append(np.pad(w, pad))
    return out


def graph_cut(image: npt.NDArray[np.float32], cost_fg: npt.NDArray[np.float64],
              cost_bg: npt.NDArray[np.float64], spacing: Sequence[float],
              smoothness: float) -> npt.NDArray[np.bool_]:
    """Minimum cut: True where labelling the voxel object is cheaper overall."""
    import maxflow

    graph = maxflow.Graph[float]()
    nodes = graph.add_grid_nodes(image.shape)
    for axis, w in enumerate(_pairwise(image, spacing, smoothness)):
        structure = np.zeros((3,) * image.ndim)
        centre = [1] * image.ndim
        centre[axis] = 2
        structure[tuple(centre)] = 1
        graph.add_grid_edges(nodes, weights=w, structure=structure, symmetric=True)
    graph.add_grid_tedges(nodes, cost_bg, cost_fg)
    graph.maxflow()
    return ~graph.get_grid_segments(nodes)


@dataclass
class Result:
    """The object in a crop, and the log-likelihood ratio that decided it (``> 0``: object
    more likely; near 0: unsure)."""

    mask: npt.NDArray[np.bool_]
    margin: npt.NDArray[np.float32]
    used_taught: bool = False


def segment(image: npt.NDArray[np.float32], spacing: Sequence[float], prompts: Prompts, *,
            previous: npt.NDArray[np.bool_] | None, known_fg: npt.NDArray[np.float32],
            options: EngineOptions, taught: npt.NDArray[np.float32] | None = None) -> Result:
    """The object in a crop: ``image`` in ``[0, 1]``, ``known_fg`` intensity samples of the
    same kind of object taught earlier (may be empty), ``taught`` their appearance counts
    (:func:`appearance_counts`, summed)."""
    pos = prompts.positive
    spread = _spread(pos, spacing)
    if prompts.core is not None:
        pos = pos | prompts.core
    if not pos.any():
        return Result(np.zeros(image.shape, bool), np.zeros(image.shape, np.float32))
    radius = max(options.seed_radius_mm, 1.5 * max(spacing[-2:]))
    seeds = _ball_dilate(pos, spacing, radius) & ~prompts.negative
    noise = noise_level(image)
    smooth_image = smoothed(image, spacing)
    d_pos = ndimage.distance_transform_edt(~pos, sampling=spacing)
    reach = max(options.reach_mm, spread)
    base_fg = d_pos / reach
    base_bg = np.zeros(image.shape)
    hard_bg = prompts.negative.copy()
    if prompts.negative.any():
        d_neg = ndimage.distance_transform_edt(~prompts.negative, sampling=spacing)
        nearer = np.clip(d_pos - d_neg, 0, None) / options.competition_mm
        base_fg += np.minimum(nearer, 4.0) * (d_neg < NEGATIVE_REACH_MM)
        # a click's surroundings, up to a third of the way to the nearest prompt of the
        # other sign, belong with it (the disks click-based networks are given)
        hard_bg |= (d_neg * options.disk < d_pos) & (d_neg < NEGATIVE_DISK_MM)
        pos = pos | ((d_pos * options.disk < d_neg) & (d_pos < POSITIVE_DISK_MM))
    else:
        pos = pos | (d_pos < POSITIVE_DISK_MM / 2)
    if previous is not None and previous.any():
        pull = options.prior * (3.0 if prompts.core is not None else 1.0)
        if prompts.focus is not None and prompts.focus.any():
            d_focus = ndimage.distance_transform_edt(~prompts.focus, sampling=spacing)
            pull = pull * (1.0 + options.locality * np.clip(d_focus / FOCUS_MM, 0.0, 1.0))
        base_fg += np.where(previous, 0.0, pull)
        base_bg += np.where(previous, pull, 0.0)
    if prompts.hint is not None:
        base_bg += np.where(prompts.hint, 0.5, 0.0)
    used_taught = False
    if taught is not None and taught[0].sum() > 0:
        ratio_taught = np.clip(learned_ratio(taught, smooth_image,
                                             surroundings(image, spacing)), -5.0, 5.0)
        # only where the prompted object looks like what was taught (a contrast CT's liver
        # is not the non-contrast liver learned on another scan)
        if float(np.median(ratio_taught[seeds])) < 0.0:
            base_fg += options.taught * np.clip(ratio_taught, 0.0, None)
            base_bg += options.taught * np.clip(-ratio_taught, 0.0, None)
            used_taught = True
    floor = 1.5 * noise + 1e-3
    if known_fg.size and not _agrees(known_fg, smooth_image[seeds], floor):
        known_fg = known_fg[:0]  # the taught intensities are not this object's
    samples = np.concatenate([smooth_image[seeds], known_fg])
    neg_zone = _ball_dilate(prompts.negative, spacing, radius)
    lut = np.minimum((smooth_image * BINS).astype(np.int64), BINS - 1)
    mask = None
    result = np.zeros(image.shape, bool)
    components = _click_components(seeds, smooth_image, floor, known_fg)
    for _ in range(max(1, options.iterations)):
        inner = samples if mask is None else np.concatenate(
            [samples, smooth_image[ndimage.binary_erosion(mask) if mask.sum() > 50 else mask]])
        stats = components if mask is None else [*components, robust_stats(inner, floor)]
        z2 = np.full(image.shape, 25.0)
        for mu, sd in stats:  # the object may hold several tissues: the nearest one counts
            np.minimum(z2, ((smooth_image - mu) / sd) ** 2, out=z2)
        around = ~(seeds if mask is None else ndimage.binary_dilation(mask, iterations=2))
        weights = np.where(neg_zone[around], 20.0, 1.0)
        p_fg = density(inner, min_bandwidth=noise)[lut]
        p_bg = density(smooth_image[around], weights, min_bandwidth=noise)[lut]
        ratio = np.clip(np.log(p_bg + FLOOR) - np.log(p_fg + FLOOR), 0.0, 10.0)
        cost_fg = 0.5 * z2 + options.contrast * ratio + base_fg
        cost_bg = 0.5 * options.tolerance**2 + base_bg
        cost_fg[pos] = 0.0
        cost_bg = np.where(pos, HARD, cost_bg)
        cost_fg[hard_bg] = HARD
        cost_bg[hard_bg] = 0.0
        if prompts.outside is not None:
            cost_fg[prompts.outside] = HARD
            cost_bg[prompts.outside] = 0.0
        result = graph_cut(smooth_image, cost_fg, cost_bg, spacing, options.smoothness)
        result = connected_to(result, pos)
        mask = result if result.any() else None
    margin = np.clip(cost_bg - cost_fg, -50, 50).astype(np.float32)
    return Result(result, margin, used_taught)


def _click_components(seeds: npt.NDArray[np.bool_], image: npt.NDArray[np.float32],
                      floor: float, known: npt.NDArray[np.float32]
                      ) -> list[tuple[float, float]]:
    """Intensity (median, robust SD) of each separate positive prompt's surroundings, and of
    the taught objects when they agree with the prompts: an object of several tissues (a
    stomach's wall and air, a lesion's rim and core) keeps each one."""
    labels, n = ndimage.label(seeds)
    out = []
    if n:
        index = np.arange(1, n + 1)
        for k in index[: MAX_COMPONENTS]:
            out.append(robust_stats(image[labels == k], floor))
    if known.size:
        out.append(robust_stats(known, floor))
    return out or [(0.5, 1.0)]


def _agrees(known: npt.NDArray[np.float32], prompted: npt.NDArray[np.float32],
            floor: float) -> bool:
    """Whether the prompted voxels' intensity lies within the taught objects' spread."""
    mu, sd = robust_stats(known, floor)
    low, high = np.percentile(known, [5, 95])
    centre = float(np.median(prompted)) if prompted.size else mu
    return bool(low - 0.5 * sd <= centre <= high + 0.5 * sd)


def _spread(pos: npt.NDArray[np.bool_], spacing: Sequence[float]) -> float:
    """Half the largest distance between positive prompts (mm)."""
    pts = np.argwhere(pos) * np.asarray(spacing)
    if len(pts) < 2:
        return 0.0
    return float(np.ptp(pts, axis=0).max() / 2)


def connected_to(mask: npt.NDArray[np.bool_], seeds: npt.NDArray[np.bool_]
                 ) -> npt.NDArray[np.bool_]:
    """The parts of ``mask`` that hold a seed."""
    labels, n = ndimage.label(mask)
    if n <= 1:
        return mask
    keep = np.unique(labels[seeds & mask])
    keep = keep[keep > 0]
    return np.isin(labels, keep)
