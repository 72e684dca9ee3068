"""Label-map clean-up after prediction: largest component, hole filling, small objects.

scipy.ndimage does the labelling and hole filling; these functions apply it per class.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
import numpy.typing as npt
from scipy import ndimage

from napari_medseg.options import option


@dataclass(kw_only=True)
class PostprocessOptions:
    """Per-class clean-up; every step is off by default.

    ``min_size`` is in voxels: connected components smaller than it become background.
    """

    largest_component: bool = option(
        False, label="largest component per class",
        help="keep the largest connected component of each class")
    fill_holes: bool = option(False, help="fill holes enclosed by a class, slice by slice")
    min_size: int = option(0, low=0, high=10**7,
                           help="drop connected components below N voxels")

    @property
    def any(self) -> bool:
        return self.largest_component or self.fill_holes or self.min_size > 0


def postprocess(
    labels: npt.NDArray[np.integer[Any]], options: PostprocessOptions
) -> npt.NDArray[np.integer[Any]]:
    """A cleaned copy of ``labels`` (the input is not modified)."""
    if not options.any:
        return labels
    out = labels.copy()
    for value in np.unique(labels):
        if value == 0:
            continue
        mask = out == value
        if options.min_size > 0 or options.largest_component:
            components, n = ndimage.label(mask)
            if n > 0:
                sizes = np.bincount(components.ravel())
                sizes[0] = 0
                keep = sizes >= max(options.min_size, 1)
                if options.largest_component:
                    keep = np.zeros_like(keep)
                    keep[int(np.argmax(sizes))] = True
                out[mask & ~keep[components]] = 0
                mask = out == value
        if options.fill_holes:
            filled = ndimage.binary_fill_holes(mask)
            out[filled & (out == 0)] = value
    return out
