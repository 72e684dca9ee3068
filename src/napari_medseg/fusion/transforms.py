"""Spatial transforms: saving, loading and applying them to points.

Transforms are SimpleITK (ITK) transforms.  Like ITK, they map a point of the *fixed* space
to the *moving* space (that is what resampling needs: for each output voxel, where to read
in the moving scan).  ITK works in (x, y, z) order; :func:`transform_points` takes and returns
our ``(z, y, x)`` world order in mm.  Files are ITK transform files (``.tfm``/``.txt`` text,
``.h5``/``.hdf5`` HDF5, ``.mat`` Matlab), readable by 3D Slicer, ANTs and ITK-SNAP.
"""

from __future__ import annotations

import contextlib
from pathlib import Path

import numpy as np
import numpy.typing as npt
import SimpleITK as sitk

from napari_medseg.errors import FusionError
from napari_medseg.io.atomic import write_atomically

#: File suffixes ITK's transform IO understands.
TRANSFORM_SUFFIXES = (".tfm", ".txt", ".h5", ".hdf5", ".mat")


def identity_transform(ndim: int) -> sitk.Transform:
    """The identity transform in ``ndim`` (2 or 3) dimensions."""
    return sitk.Transform(ndim, sitk.sitkIdentity)


def transform_points(transform: sitk.Transform, points: npt.ArrayLike) -> npt.NDArray[np.float64]:
    """Map world points ``(..., D)`` in mm, ``(z, y, x)`` order, from fixed to moving space."""
    pts = np.asarray(points, dtype=np.float64)
    flat = pts.reshape(-1, pts.shape[-1])
    out = np.array([transform.TransformPoint(tuple(p[::-1].tolist()))[::-1] for p in flat])
    return out.reshape(pts.shape)


def _check_suffix(path: Path) -> None:
    if path.suffix.lower() not in TRANSFORM_SUFFIXES:
        msg = (
            f"{path.name}: a transform file must end in one of {', '.join(TRANSFORM_SUFFIXES)} "
            "(ITK transform formats)"
        )
        raise FusionError(msg)


def save_transform(transform: sitk.Transform, path: str | Path, *, overwrite: bool = False) -> Path:
    """Write ``transform`` atomically (temporary file + rename); refuse to overwrite unless asked.

    Raises :class:`OutputExistsError` when ``path`` exists and ``overwrite`` is false, and
    :class:`ScanWriteError` when ITK cannot write it; nothing is left half-written.
    """
    path = Path(path)
    _check_suffix(path)
    return write_atomically(path, lambda tmp: sitk.WriteTransform(transform, str(tmp)),
                            overwrite=overwrite)


def load_transform(path: str | Path) -> sitk.Transform:
    """Read an ITK transform file (as written by :func:`save_transform`, Slicer or ANTs)."""
    path = Path(path)
    _check_suffix(path)
    if not path.is_file():
        msg = f"transform file {path} does not exist"
        raise FusionError(msg)
    try:
        transform = sitk.ReadTransform(str(path))
    except RuntimeError as exc:
        msg = f"{path.name} could not be read as an ITK transform: {str(exc).strip()[-300:]}"
        raise FusionError(msg) from exc
    with contextlib.suppress(RuntimeError, AttributeError):
        transform = transform.Downcast()
    return transform
