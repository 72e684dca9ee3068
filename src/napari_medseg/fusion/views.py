"""Views to judge an alignment: a checkerboard of fixed and moving, and their difference.

Both scans must lie on one grid (resample or register first); each is normalised on its own
(1st-99th percentile to ``[0, 1]`` by default) so that a CT and an MRI can be compared.
"""

from __future__ import annotations

import numpy as np

from napari_medseg.fusion.normalise import Normalisation, normalise
from napari_medseg.geometry.grid import require_same_grid
from napari_medseg.scan import Scan


def checkerboard(
    fixed: Scan, moving: Scan, *, squares: int = 8, normalisation: Normalisation = "percentile"
) -> Scan:
    """Alternating blocks of ``fixed`` and ``moving``, ``squares`` blocks along every axis.

    Edges that continue straight across block borders show a good alignment.  Axes shorter
    than ``squares`` voxels get one block per voxel.
    """
    if squares < 1:
        msg = f"squares must be >= 1, got {squares}"
        raise ValueError(msg)
    grid = require_same_grid([fixed, moving], purpose="a checkerboard view")
    parity = np.zeros(grid.shape, dtype=np.int64)
    for axis, size in enumerate(grid.shape):
        block = (np.arange(size) * min(squares, size)) // size
        shape = [1] * len(grid.shape)
        shape[axis] = size
        parity = parity + block.reshape(shape)
    out = normalise(fixed.array, normalisation)
    np.copyto(out, normalise(moving.array, normalisation), where=(parity % 2 == 1))
    return Scan(array=out, geometry=grid.geometry, metadata={"view": "checkerboard"})


def difference(fixed: Scan, moving: Scan, *, normalisation: Normalisation = "percentile") -> Scan:
    """``moving - fixed`` after normalising each (``float32``, about ``-1..1``).

    Show it with a diverging colormap (``"bwr"``) and contrast limits ``(-1, 1)``.
    """
    grid = require_same_grid([fixed, moving], purpose="a difference view")
    out = normalise(moving.array, normalisation)
    out -= normalise(fixed.array, normalisation)
    return Scan(array=out, geometry=grid.geometry, metadata={"view": "difference"})
