"""Window placement, Gaussian weights and the slab accumulator."""

from __future__ import annotations

import itertools

import numpy as np
import pytest
import torch

from napari_medseg.inference.tiling import (
    SlabAccumulator,
    TilePlan,
    gaussian_importance,
    window_starts,
)


@pytest.mark.parametrize(("size", "window", "overlap"), [(100, 32, 0.5), (33, 32, 0.25),
                                                          (32, 32, 0.5), (7, 32, 0.5),
                                                          (257, 96, 0.5), (50, 1, 0.5)])
def test_windows_cover_the_axis_without_sticking_out(size, window, overlap):
    starts = window_starts(size, window, overlap)
    w = min(window, size)
    assert starts[0] == 0
    assert starts[-1] + w == size
    assert all(b > a for a, b in itertools.pairwise(starts))
    assert all(b - a <= max(1, int(w * (1 - overlap))) for a, b in itertools.pairwise(starts))


def test_gaussian_is_centred_positive_and_peaks_at_one():
    g = gaussian_importance((9, 16, 16))
    assert g.shape == (9, 16, 16)
    assert float(g.max()) == pytest.approx(1.0)
    assert float(g.min()) > 0
    assert float(g[4, 7, 7]) > float(g[0, 0, 0])


def test_slab_accumulator_equals_dense_blending():
    rng = np.random.default_rng(0)
    shape, window = (20, 13, 11), (8, 6, 5)
    plan = TilePlan.build(shape, window, 0.5, slab_axis=0)
    acc = SlabAccumulator(plan, channels=2, device="cpu")
    dense = torch.zeros((2, *shape))
    dense_w = torch.zeros(shape)
    imp = gaussian_importance(plan.window)
    out = torch.zeros((2, *shape))
    for i, s in enumerate(plan.slab_starts):
        for tile in plan.tiles_in_slab(s):
            scores = torch.from_numpy(rng.normal(size=(2, *plan.window)).astype(np.float32))
            acc.add(tile, scores)
            dense[(slice(None), *tile.slices())] += scores * imp
            dense_w[tile.slices()] += imp
        end = plan.slab_starts[i + 1] if i + 1 < len(plan.slab_starts) else shape[0]
        scores, weights = acc.finish(end)
        out[:, s:end] = scores / weights
    torch.testing.assert_close(out, dense / dense_w)
    assert plan.n_tiles == len(plan.starts[0]) * len(plan.starts[1]) * len(plan.starts[2])
