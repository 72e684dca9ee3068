"""Feature-level fusion: co-registered modalities stacked as the channels of one input.

A multi-channel model (e.g. ``in_channels=2`` for T1 + T2) takes ``(C, Z, Y, X)``; this module
builds that array from scans that share one voxel grid.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import numpy.typing as npt

from napari_medseg.fusion.normalise import Normalisation, normalise
from napari_medseg.geometry.grid import require_same_grid
from napari_medseg.scan import Scan


def stack_channels(
    scans: Sequence[Scan], *, normalisation: Normalisation = "none"
) -> npt.NDArray[np.float32]:
    """``(C, *spatial)`` ``float32`` array, channel ``c`` from ``scans[c]``.

    Raises :class:`~napari_medseg.errors.GeometryMismatchError` naming what differs when the
    scans are not on one grid (register or resample them first).  ``normalisation`` is
    applied per channel; ``"none"`` keeps the original units (a model's own intensity
    preprocessing then applies per channel).
    """
    grid = require_same_grid(scans, purpose="stacking modalities as channels")
    out = np.empty((len(scans), *grid.shape), dtype=np.float32)
    for c, scan in enumerate(scans):
        out[c] = scan.array if normalisation == "none" else normalise(scan.array, normalisation)
    return out
