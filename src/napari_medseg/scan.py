"""The data contract every part of napari-medseg shares: :class:`Scan` and :class:`LabelMap`.

Axis order (stated once, used everywhere)
-----------------------------------------
* Arrays are indexed slowest axis first, as numpy, ``SimpleITK.GetArrayFromImage`` and napari
  do: ``(Z, Y, X)`` for a volume, ``(Y, X)`` for a 2D image.
* :class:`Geometry` lists everything in that same array-axis order: ``spacing[0]`` is the
  distance between slices, ``origin[0]`` the z coordinate of voxel ``(0, 0, 0)``.
* Physical coordinates are millimetres in the patient coordinate system of DICOM and ITK
  (LPS+: x towards the patient's Left, y Posterior, z Superior), listed in reversed order
  ``(z, y, x)`` so that they line up with the array axes.  napari's world coordinates are
  exactly these, which is why a CT and an MRI of one patient overlay in the viewer.
* ``direction[:, j]`` is the unit vector, in those world coordinates, along which array axis
  ``j`` runs.  An axis-aligned scan stored in LPS order has the identity; a NIfTI stored RAS
  has ``diag(1, -1, -1)``; an oblique DICOM series has a general rotation.

The mapping from a voxel index ``i`` (array-axis order) to world ``w`` is
``w = origin + direction @ (spacing * i)``  (:meth:`Geometry.index_to_world`).
ITK's own order is the reverse of ours; :meth:`Geometry.from_itk` / :meth:`Geometry.to_itk`
convert.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt

from napari_medseg.errors import GeometryMismatchError

#: Modalities napari-medseg knows by name (DICOM Modality codes); anything else is "unknown".
MODALITIES = ("CT", "MR", "PT", "US", "XR", "unknown")
#: MR contrasts (weightings) napari-medseg names; ``None`` stands for "not known".
MR_CONTRASTS = ("T1", "T2", "FLAIR", "PD")


@dataclass(frozen=True, eq=False)
class Geometry:
    """Where a voxel grid sits in physical space.

    Attributes
    ----------
    spacing
        Voxel size per array axis, in mm, ``(Z, Y, X)`` or ``(Y, X)``.
    origin
        World position (mm, LPS, reversed order) of the centre of voxel ``(0, ..., 0)``.
    direction
        ``(D, D)`` matrix; column ``j`` is the world direction of array axis ``j``.
    """

    spacing: tuple[float, ...]
    origin: tuple[float, ...]
    direction: npt.NDArray[np.float64]

    def __post_init__(self) -> None:
        spacing = tuple(float(s) for s in self.spacing)
        origin = tuple(float(o) for o in self.origin)
        direction = np.asarray(self.direction, dtype=np.float64).copy()
        ndim = len(spacing)
        if ndim not in (2, 3):
            msg = f"a Geometry has 2 or 3 axes, got spacing {spacing}"
            raise ValueError(msg)
        if len(origin) != ndim or direction.shape != (ndim, ndim):
            msg = (
                f"spacing {spacing}, origin {origin} and direction of shape {direction.shape} "
                "do not agree on the number of axes"
            )
            raise ValueError(msg)
        if not all(np.isfinite(s) and s > 0 for s in spacing):
            msg = f"spacing must be positive and finite (mm), got {spacing}"
            raise ValueError(msg)
        if not (np.all(np.isfinite(origin)) and np.all(np.isfinite(direction))):
            msg = "origin and direction must be finite"
            raise ValueError(msg)
        if abs(np.linalg.det(direction)) < 1e-6:
            msg = f"direction matrix is singular: {direction.tolist()}"
            raise ValueError(msg)
        direction.setflags(write=False)
        object.__setattr__(self, "spacing", spacing)
        object.__setattr__(self, "origin", origin)
        object.__setattr__(self, "direction", direction)

    # ------------------------------------------------------------------ construction
    @classmethod
    def identity(cls, ndim: int, spacing: Sequence[float] | None = None) -> Geometry:
        """Axis-aligned grid at the origin, 1 mm voxels unless ``spacing`` is given."""
        return cls(
            spacing=tuple(spacing) if spacing is not None else (1.0,) * ndim,
            origin=(0.0,) * ndim,
            direction=np.eye(ndim),
        )

    @classmethod
    def from_itk(
        cls, spacing: npt.ArrayLike, origin: npt.ArrayLike, direction: npt.ArrayLike
    ) -> Geometry:
        """From SimpleITK's ``GetSpacing()/GetOrigin()/GetDirection()`` (x, y, z order)."""
        s = np.asarray(spacing, dtype=np.float64).ravel()
        o = np.asarray(origin, dtype=np.float64).ravel()
        d = np.asarray(direction, dtype=np.float64).reshape(s.size, s.size)
        return cls(spacing=tuple(s[::-1]), origin=tuple(o[::-1]), direction=d[::-1, ::-1])

    def to_itk(self) -> tuple[tuple[float, ...], tuple[float, ...], tuple[float, ...]]:
        """``(spacing, origin, direction)`` in SimpleITK's (x, y, z) order, direction flattened."""
        d = self.direction[::-1, ::-1]
        return self.spacing[::-1], self.origin[::-1], tuple(float(v) for v in d.ravel())

    @classmethod
    def from_affine(cls, affine: npt.ArrayLike) -> Geometry:
        """From a ``(D+1, D+1)`` index-to-world matrix (the inverse of :attr:`affine`)."""
        a = np.asarray(affine, dtype=np.float64)
        ndim = a.shape[0] - 1
        linear = a[:ndim, :ndim]
        spacing = np.linalg.norm(linear, axis=0)
        return cls(spacing=tuple(spacing), origin=tuple(a[:ndim, ndim]), direction=linear / spacing)

    # ------------------------------------------------------------------ properties
    @property
    def ndim(self) -> int:
        return len(self.spacing)

    @property
    def affine(self) -> npt.NDArray[np.float64]:
        """``(D+1, D+1)`` homogeneous matrix mapping a voxel index to world mm."""
        a = np.eye(self.ndim + 1)
        a[: self.ndim, : self.ndim] = self.direction * np.asarray(self.spacing)
        a[: self.ndim, self.ndim] = self.origin
        return a

    @property
    def is_axis_aligned(self) -> bool:
        """True when the direction is the identity (no rotation, no flip)."""
        return bool(np.allclose(self.direction, np.eye(self.ndim), atol=1e-6))

    def index_to_world(self, index: npt.ArrayLike) -> npt.NDArray[np.float64]:
        """World mm of voxel indices ``(..., D)`` (array-axis order)."""
        idx = np.asarray(index, dtype=np.float64)
        return np.asarray(self.origin) + (idx * np.asarray(self.spacing)) @ self.direction.T

    def world_to_index(self, world: npt.ArrayLike) -> npt.NDArray[np.float64]:
        """Continuous voxel indices of world points ``(..., D)``."""
        w = np.asarray(world, dtype=np.float64) - np.asarray(self.origin)
        return np.linalg.solve(self.direction, w.T).T / np.asarray(self.spacing)

    # ------------------------------------------------------------------ comparison
    def is_close(self, other: Geometry, *, atol_mm: float = 1e-3, atol_dir: float = 1e-4) -> bool:
        """Same grid up to ``atol_mm`` in spacing/origin and ``atol_dir`` in direction."""
        return (
            self.ndim == other.ndim
            and np.allclose(self.spacing, other.spacing, atol=atol_mm, rtol=0)
            and np.allclose(self.origin, other.origin, atol=atol_mm, rtol=0)
            and np.allclose(self.direction, other.direction, atol=atol_dir, rtol=0)
        )

    def describe_difference(self, other: Geometry) -> str:
        """One line naming what differs between two geometries (for error messages)."""
        parts = []
        if self.ndim != other.ndim:
            return f"{self.ndim}D vs {other.ndim}D"
        if not np.allclose(self.spacing, other.spacing, atol=1e-3):
            parts.append(f"spacing {_fmt(self.spacing)} vs {_fmt(other.spacing)} mm")
        if not np.allclose(self.origin, other.origin, atol=1e-3):
            parts.append(f"origin {_fmt(self.origin)} vs {_fmt(other.origin)} mm")
        if not np.allclose(self.direction, other.direction, atol=1e-4):
            parts.append("direction differs")
        return "; ".join(parts) or "identical"

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Geometry) and self.is_close(other, atol_mm=0, atol_dir=0)

    def __hash__(self) -> int:
        return hash((self.spacing, self.origin, self.direction.tobytes()))

    # ------------------------------------------------------------------ (de)serialisation
    def to_dict(self) -> dict[str, Any]:
        return {
            "spacing": list(self.spacing),
            "origin": list(self.origin),
            "direction": self.direction.tolist(),
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Geometry:
        return cls(
            spacing=tuple(data["spacing"]),
            origin=tuple(data["origin"]),
            direction=np.asarray(data["direction"], dtype=np.float64),
        )


def _fmt(values: Sequence[float]) -> str:
    return "(" + ", ".join(f"{v:.4g}" for v in values) + ")"


@dataclass(eq=False)
class Scan:
    """A single-channel image with its place in physical space.

    Attributes
    ----------
    array
        Voxel values, ``(Z, Y, X)`` or ``(Y, X)``, any real dtype (CT stays in HU).
    geometry
        Spacing, origin and direction in array-axis order (see the module docstring).
    modality
        DICOM modality code (``"CT"``, ``"MR"``, ``"PT"``...) or ``"unknown"``.
    modality_reason
        How the modality was decided, for people (``"DICOM Modality"``, ``"file name
        'head_ct'"``, ``"intensities: ... air (-1000 HU) ..."``); empty when not recorded.
    mr_contrast
        MR weighting where a header or the name says: ``"T1"``, ``"T2"``, ``"FLAIR"``,
        ``"PD"``; ``None`` when not known.
    skull_stripped
        For brain MR: ``True`` skull-stripped, ``False`` not a skull-stripped brain, ``None``
        not known (see :mod:`napari_medseg.io.modality`).
    metadata
        Free-form header fields of the source (strings), e.g. DICOM tags.
    source
        File or folder the scan was read from, if any.
    display_name
        The name a person knows the scan by (a napari layer's name), if not its file's.
    """

    array: npt.NDArray[Any]
    geometry: Geometry
    modality: str = "unknown"
    metadata: dict[str, str] = field(default_factory=dict)
    source: Path | None = None
    display_name: str | None = None
    modality_reason: str = ""
    mr_contrast: str | None = None
    skull_stripped: bool | None = None

    def __post_init__(self) -> None:
        if self.array.ndim != self.geometry.ndim:
            msg = (
                f"array of shape {self.array.shape} does not match a {self.geometry.ndim}D "
                "geometry"
            )
            raise ValueError(msg)
        if self.modality not in MODALITIES:
            self.modality = "unknown"

    @property
    def shape(self) -> tuple[int, ...]:
        return tuple(self.array.shape)

    @property
    def ndim(self) -> int:
        return self.array.ndim

    @property
    def spacing(self) -> tuple[float, ...]:
        return self.geometry.spacing

    @property
    def name(self) -> str:
        """A short name for messages: ``display_name``, else the file name without its image
        extension, else ``"scan"``."""
        if self.display_name:
            return self.display_name
        if self.source is None:
            return "scan"
        return strip_image_suffix(self.source.name)

    def same_grid(self, other: Scan | LabelMap) -> bool:
        return self.shape == other.shape and self.geometry.is_close(other.geometry)


@dataclass(eq=False)
class LabelMap:
    """An integer label image on a scan's voxel grid.

    ``class_names`` maps a label value to its name; ``0`` is background by convention.
    ``source`` is the file it was read from, ``display_name`` the name a person knows it by
    (a napari layer's name), if any.
    """

    array: npt.NDArray[np.integer[Any]]
    geometry: Geometry
    class_names: dict[int, str] = field(default_factory=dict)
    source: Path | None = None
    display_name: str | None = None

    def __post_init__(self) -> None:
        if not np.issubdtype(self.array.dtype, np.integer) and self.array.dtype != np.bool_:
            msg = f"a label map holds integers, got dtype {self.array.dtype}"
            raise ValueError(msg)
        if self.array.ndim != self.geometry.ndim:
            msg = (
                f"label array of shape {self.array.shape} does not match a "
                f"{self.geometry.ndim}D geometry"
            )
            raise ValueError(msg)
        if not self.class_names:
            values = np.unique(self.array) if self.array.size else np.array([0])
            self.class_names = default_class_names(int(v) for v in values)

    @property
    def shape(self) -> tuple[int, ...]:
        return tuple(self.array.shape)

    @property
    def name(self) -> str:
        """``display_name``, else the file name without its image extension, else
        ``"labels"``."""
        if self.display_name:
            return self.display_name
        if self.source is None:
            return "labels"
        return strip_image_suffix(self.source.name)

    @classmethod
    def like(
        cls,
        scan: Scan,
        array: npt.NDArray[np.integer[Any]],
        class_names: Mapping[int, str] | None = None,
    ) -> LabelMap:
        """A label map on ``scan``'s grid; raises :class:`GeometryMismatchError` on shape."""
        if tuple(array.shape) != scan.shape:
            msg = f"labels of shape {array.shape} do not fit the scan's grid {scan.shape}"
            raise GeometryMismatchError(msg)
        return cls(array=array, geometry=scan.geometry, class_names=dict(class_names or {}))

    def check_matches(self, scan: Scan) -> None:
        """Raise :class:`GeometryMismatchError` unless this map lies on ``scan``'s grid."""
        if self.shape != scan.shape:
            msg = (
                f"label map {self.name!r} has shape {self.shape} but scan {scan.name!r} has "
                f"{scan.shape}; resample the labels onto the scan (napari-medseg fuse "
                "--register none) or pick the matching scan"
            )
            raise GeometryMismatchError(msg)
        if not self.geometry.is_close(scan.geometry):
            msg = (
                f"label map {self.name!r} and scan {scan.name!r} lie on different grids "
                f"({self.geometry.describe_difference(scan.geometry)}); resample the labels "
                "onto the scan or pick the matching scan"
            )
            raise GeometryMismatchError(msg)


def default_class_names(values: Any) -> dict[int, str]:
    """``{0: "background", k: "class k"}`` for the label values given."""
    names = {0: "background"}
    for v in values:
        if v != 0:
            names[int(v)] = f"class {int(v)}"
    return names


_IMAGE_SUFFIXES = (
    ".nii.gz",
    ".nii",
    ".nrrd",
    ".nhdr",
    ".mha",
    ".mhd",
    ".dcm",
    ".png",
    ".jpg",
    ".jpeg",
    ".tif",
    ".tiff",
)


def strip_image_suffix(name: str) -> str:
    """``"ct.nii.gz" -> "ct"``; names without a known image suffix are returned unchanged."""
    lower = name.lower()
    for suffix in _IMAGE_SUFFIXES:
        if lower.endswith(suffix):
            return name[: -len(suffix)]
    return name
