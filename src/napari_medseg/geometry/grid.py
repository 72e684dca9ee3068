"""Voxel grids in physical space: extents, overlap, the "same grid" check, other spacings.

A *grid* is a :class:`~napari_medseg.scan.Geometry` plus an array shape.  Extents are
axis-aligned bounding boxes in world mm (LPS, listed ``(z, y, x)`` like the array axes),
taken over the voxel *corners* (centres +/- half a voxel), so a one-voxel scan has a
non-empty extent.  :func:`grid_at_spacing` is the grid inference and training resample a
scan onto for a checkpoint's ``target_spacing``; :func:`grid_oriented` the same box with its
axes flipped to run the way a checkpoint's ``orientation`` says.
"""

from __future__ import annotations

import itertools
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

from napari_medseg.errors import GeometryMismatchError
from napari_medseg.scan import Geometry, LabelMap, Scan


@dataclass(frozen=True)
class Grid:
    """A voxel grid: ``shape`` (array-axis order) placed in space by ``geometry``."""

    geometry: Geometry
    shape: tuple[int, ...]

    def __post_init__(self) -> None:
        shape = tuple(int(s) for s in self.shape)
        if len(shape) != self.geometry.ndim or any(s <= 0 for s in shape):
            msg = f"grid shape {shape} does not fit a {self.geometry.ndim}D geometry"
            raise ValueError(msg)
        object.__setattr__(self, "shape", shape)

    @classmethod
    def of(cls, item: Scan | LabelMap | Grid) -> Grid:
        """The grid of a scan or label map (a grid is returned as it is)."""
        if isinstance(item, Grid):
            return item
        return cls(geometry=item.geometry, shape=tuple(item.array.shape))

    @property
    def ndim(self) -> int:
        return len(self.shape)


@dataclass(frozen=True)
class Extent:
    """Axis-aligned physical bounding box, world mm ``(z, y, x)`` (``(y, x)`` in 2D)."""

    lower: tuple[float, ...]
    upper: tuple[float, ...]

    @property
    def size_mm(self) -> npt.NDArray[np.float64]:
        return np.asarray(self.upper) - np.asarray(self.lower)

    @property
    def volume(self) -> float:
        """Volume in mm^3 (area in mm^2 for 2D)."""
        return float(np.prod(np.clip(self.size_mm, 0.0, None)))

    def intersection(self, other: Extent) -> Extent:
        lower = np.maximum(self.lower, other.lower)
        upper = np.maximum(np.minimum(self.upper, other.upper), lower)
        return Extent(tuple(lower.tolist()), tuple(upper.tolist()))

    def describe(self) -> str:
        """e.g. ``z -90..90, y -126..90, x -72..108 mm``."""
        names = ("z", "y", "x")[-len(self.lower) :]
        bounds = zip(names, self.lower, self.upper, strict=True)
        parts = [f"{n} {lo:.1f}..{hi:.1f}" for n, lo, hi in bounds]
        return ", ".join(parts) + " mm"


def physical_extent(item: Scan | LabelMap | Grid) -> Extent:
    """Bounding box in world mm of all voxel corners of a scan, label map or grid."""
    grid = Grid.of(item)
    corners = np.array(
        list(itertools.product(*[(-0.5, s - 0.5) for s in grid.shape])), dtype=np.float64
    )
    world = grid.geometry.index_to_world(corners)
    return Extent(tuple(world.min(axis=0).tolist()), tuple(world.max(axis=0).tolist()))


def overlap_fraction(a: Scan | LabelMap | Grid, b: Scan | LabelMap | Grid) -> float:
    """Volume of the intersection of both extents over the volume of the smaller one (0..1)."""
    ea, eb = physical_extent(a), physical_extent(b)
    smaller = min(ea.volume, eb.volume)
    return ea.intersection(eb).volume / smaller if smaller > 0 else 0.0


def extent_similarity(a: Scan | LabelMap | Grid, b: Scan | LabelMap | Grid) -> float:
    """How alike the sizes of two physical boxes are, wherever they lie (0..1): the mean over
    the world axes of the smaller extent over the larger.  Two scans of one body region come
    near 1 (an abdominal CT and MR: 0.84); a chest CT and a brain MR do not (0.59)."""
    sa, sb = physical_extent(a).size_mm, physical_extent(b).size_mm
    if sa.shape != sb.shape:
        return 0.0
    larger = np.maximum(sa, sb)
    ratios = np.where(larger > 0, np.minimum(sa, sb) / np.where(larger > 0, larger, 1), 1.0)
    return float(np.mean(ratios))


def check_same_ndim(fixed: Scan | LabelMap | Grid, moving: Scan | LabelMap | Grid) -> None:
    """Raise :class:`GeometryMismatchError` when one is 2D and the other 3D."""
    gf, gm = Grid.of(fixed), Grid.of(moving)
    if gf.ndim != gm.ndim:
        msg = (
            f"the fixed scan is {gf.ndim}D {gf.shape} but the moving scan is {gm.ndim}D "
            f"{gm.shape}; both must be 2D or both 3D (extract a slice from the volume, or "
            "pick a volume for both)"
        )
        raise GeometryMismatchError(msg)


def check_overlap(
    fixed: Scan | LabelMap | Grid, moving: Scan | LabelMap | Grid, *, what: str = "scans"
) -> float:
    """Raise :class:`GeometryMismatchError` when the two extents do not overlap in space.

    Returns the overlap fraction (see :func:`overlap_fraction`) otherwise.
    """
    check_same_ndim(fixed, moving)
    fraction = overlap_fraction(fixed, moving)
    if fraction <= 0.0:
        msg = (
            f"the {what} do not overlap in physical space: fixed spans "
            f"{physical_extent(fixed).describe()}, moving spans "
            f"{physical_extent(moving).describe()}; check that the files belong together "
            "(origins/orientation in the headers), or register with an initialisation by "
            "moments (--register rigid --init moments) to bring their centres together"
        )
        raise GeometryMismatchError(msg)
    return fraction


def require_same_grid(items: Sequence[Scan | LabelMap], *, purpose: str) -> Grid:
    """The common grid of ``items``; :class:`GeometryMismatchError` naming what differs if not.

    ``purpose`` completes the message, e.g. ``"pixel-level fusion"``.
    """
    if not items:
        msg = f"{purpose} needs at least one scan"
        raise ValueError(msg)
    first = Grid.of(items[0])
    for k, item in enumerate(items[1:], start=1):
        grid = Grid.of(item)
        if grid.shape != first.shape or not grid.geometry.is_close(first.geometry):
            what = []
            if grid.shape != first.shape:
                what.append(f"shape {first.shape} vs {grid.shape}")
            if grid.geometry.ndim == first.geometry.ndim:
                diff = first.geometry.describe_difference(grid.geometry)
                if diff != "identical":
                    what.append(diff)
            else:
                what.append(f"{first.ndim}D vs {grid.ndim}D")
            msg = (
                f"{purpose} needs scans on one voxel grid, but scan 0 ({_name(items[0])}) and "
                f"scan {k} ({_name(item)}) differ: {'; '.join(what)}; register or resample "
                "them onto one grid first (napari-medseg fuse --register none|rigid|affine, or "
                "napari_medseg.geometry.resample_to)"
            )
            raise GeometryMismatchError(msg)
    return first


def grid_at_spacing(
    grid: Grid,
    spacing: Sequence[float] | None,
    *,
    slice_axis: int | None = 0,
    rtol: float = 0.02,
) -> Grid:
    """The grid covering ``grid``'s box at ``spacing`` (mm), or ``grid`` itself.

    The result keeps ``grid``'s origin and direction; each axis gets
    ``max(1, round(n * old / new))`` voxels (array-axis order throughout).  ``grid`` itself is
    returned (the same object, so ``is`` tells "nothing to resample") when ``spacing`` is
    ``None``, when it matches the current spacing within ``rtol``, or when its length fits no
    rule below.

    A spacing with as many values as the grid has axes sets every axis.  Two values on a 3D
    grid set the two in-plane axes, all but ``slice_axis`` (a 2D model's spacing on a volume
    sliced along that axis); with ``slice_axis=None`` that case keeps ``grid``.
    """
    if spacing is None:
        return grid
    current = list(grid.geometry.spacing)
    if len(spacing) == len(current):
        wanted = [float(s) for s in spacing]
    elif len(spacing) == 2 and len(current) == 3 and slice_axis is not None:
        wanted = list(current)
        in_plane = [a for a in range(3) if a != slice_axis]
        for axis, value in zip(in_plane, spacing, strict=True):
            wanted[axis] = float(value)
    else:
        return grid
    if np.allclose(wanted, current, rtol=rtol):
        return grid
    g = grid.geometry
    shape = tuple(
        max(1, round(n * s / t)) for n, s, t in zip(grid.shape, current, wanted, strict=True)
    )
    return Grid(
        geometry=Geometry(spacing=tuple(wanted), origin=g.origin, direction=g.direction),
        shape=shape,
    )


#: Orientations a checkpoint may ask for: the world direction (LPS, listed ``(z, y, x)``) each
#: array axis should run in.  ``"RAS"``: slices inferior -> superior, rows posterior ->
#: anterior, columns left -> right of the patient's, i.e. a NIfTI file with a positive
#: diagonal affine (nibabel's "closest canonical"); a DICOM series is stored the other way
#: in-plane (rows to posterior, columns to the patient's left).
ORIENTATIONS: dict[str, npt.NDArray[np.float64]] = {"RAS": np.diag([1.0, -1.0, -1.0])}


def grid_oriented(grid: Grid, orientation: str | None) -> Grid:
    """``grid``'s box with each array axis flipped where it runs against ``orientation``
    (:data:`ORIENTATIONS`), or ``grid`` itself (the same object) when none needs to be.

    Only flips: axes are never permuted (a sagittal-stored scan keeps its axis order, so a
    2D model's slice axis stays the one the person chose), and the voxels of the flipped grid
    sit exactly on the old ones, so resampling onto it moves values without interpolating.
    2D grids and ``orientation=None`` are returned unchanged.
    """
    if orientation is None or grid.ndim != 3:
        return grid
    if orientation not in ORIENTATIONS:
        msg = f"orientation must be one of {sorted(ORIENTATIONS)} or None, got {orientation!r}"
        raise ValueError(msg)
    target = ORIENTATIONS[orientation]
    direction = np.array(grid.geometry.direction, dtype=np.float64)
    flips = [axis for axis in range(3) if float(target[:, axis] @ direction[:, axis]) < 0]
    if not flips:
        return grid
    corner = [n - 1 if axis in flips else 0 for axis, n in enumerate(grid.shape)]
    for axis in flips:
        direction[:, axis] *= -1
    geometry = Geometry(spacing=grid.geometry.spacing,
                        origin=tuple(grid.geometry.index_to_world(corner)), direction=direction)
    return Grid(geometry=geometry, shape=grid.shape)


def _name(item: Scan | LabelMap) -> str:
    return item.name
