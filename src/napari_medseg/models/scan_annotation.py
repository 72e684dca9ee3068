"""The annotation a model was trained from, kept in its checkpoint for that one scan.

A model learned from a few slices of one scan is, first of all, *that scan's* model: the
train job builds the scan's mask from the network and the annotation by the rule that scored
best on a held-back slice (:mod:`napari_medseg.inference.combine`).  So that ``napari-medseg
predict`` on that very scan gives the same mask, and not the network's look-alikes far from
the structure, the checkpoint keeps the annotated slices (their labels, zlib-compressed),
the rule and a content hash of the scan.  The predictor applies them only to a scan with the
same hash (values and geometry); any other scan gets the network's labels as they are.

Only annotations of whole slices are kept, up to :data:`MAX_BYTES` uncompressed; a dense label
map is not (it is the training set, not an annotation of the scan's mask).
"""

from __future__ import annotations

import base64
import math
import zlib
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import numpy.typing as npt

from napari_medseg.errors import CheckpointError

#: Largest annotation kept, uncompressed (bytes): a few slices of a clinical matrix fit.
MAX_BYTES = 64 * 2**20
#: The mask rules of :mod:`napari_medseg.inference.combine` (which imports them from here),
#: simplest first: a tie goes to the earlier one.
RULES = ("connected", "network", "connected+interpolation", "interpolation")


@dataclass(frozen=True)
class ScanAnnotation:
    """The annotated ``slices`` across array ``axis`` of the scan hashed ``scan_hash``
    (:func:`napari_medseg.provenance.content_hash` with its geometry), ``shape`` the scan's,
    ``values`` the slices' labels ``(len(slices), *plane)`` and ``rule`` how the network and
    the annotation make the scan's mask."""

    scan_hash: str
    axis: int
    slices: tuple[int, ...]
    shape: tuple[int, ...]
    rule: str
    values: npt.NDArray[np.integer]

    def __post_init__(self) -> None:
        if self.rule not in RULES:
            msg = f"unknown mask rule {self.rule!r}; known: {', '.join(RULES)}"
            raise CheckpointError(msg)
        if len(self.shape) != 3 or not 0 <= self.axis < 3 or any(n < 1 for n in self.shape):
            msg = f"a scan annotation needs a 3D shape and an axis 0-2, got {self.shape}"
            raise CheckpointError(msg)
        if not self.slices or any(not 0 <= s < self.shape[self.axis] for s in self.slices):
            msg = f"annotated slices {self.slices} lie outside the scan's {self.shape}"
            raise CheckpointError(msg)
        plane = tuple(n for i, n in enumerate(self.shape) if i != self.axis)
        if tuple(self.values.shape) != (len(self.slices), *plane):
            msg = (f"the annotation holds {tuple(self.values.shape)} values for "
                   f"{len(self.slices)} slices of {plane}")
            raise CheckpointError(msg)

    # ---------------------------------------------------------------- building
    @classmethod
    def of(cls, labels: npt.NDArray[np.integer], slices: Sequence[int], axis: int, *,
           scan_hash: str, rule: str) -> ScanAnnotation | None:
        """The record of ``slices`` of ``labels`` (``None`` when too large to keep)."""
        chosen = sorted({int(s) for s in slices})
        values = np.take(np.asarray(labels), chosen, axis=axis)
        values = np.moveaxis(values, axis, 0)
        dtype = np.uint8 if values.size == 0 or int(values.max()) < 256 else np.uint16
        values = values.astype(dtype)
        if values.nbytes > MAX_BYTES or labels.ndim != 3:
            return None
        return cls(scan_hash=scan_hash, axis=int(axis), slices=tuple(chosen),
                   shape=tuple(int(n) for n in labels.shape), rule=rule, values=values)

    def arrays(self) -> tuple[npt.NDArray[np.integer], npt.NDArray[np.bool_]]:
        """The annotation on the scan's grid: labels and the labeled (annotated) voxels."""
        labels = np.zeros(self.shape, dtype=self.values.dtype)
        labeled = np.zeros(self.shape, dtype=bool)
        index: list[Any] = [slice(None)] * 3
        index[self.axis] = list(self.slices)
        labels[tuple(index)] = np.moveaxis(self.values, 0, self.axis)
        labeled[tuple(index)] = True
        return labels, labeled

    # ---------------------------------------------------------------- (de)serialising
    def to_dict(self) -> dict[str, Any]:
        packed = base64.b64encode(zlib.compress(np.ascontiguousarray(self.values).tobytes(), 6))
        return {"scan_hash": self.scan_hash, "axis": self.axis, "slices": list(self.slices),
                "shape": list(self.shape), "rule": self.rule, "dtype": self.values.dtype.str,
                "values": packed.decode("ascii")}

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> ScanAnnotation:
        """Parse and check an untrusted record (sizes are checked before inflating)."""
        try:
            shape = tuple(int(n) for n in data["shape"])
            axis = int(data["axis"])
            slices = tuple(int(s) for s in data["slices"])
            dtype = np.dtype(str(data["dtype"]))
            if dtype not in (np.dtype("<u1"), np.dtype("<u2"), np.dtype("|u1")):
                msg = f"annotation values of type {dtype} are not label values"
                raise CheckpointError(msg)
            if len(shape) != 3 or not 0 <= axis < 3 or any(n < 1 for n in shape):
                msg = f"a scan annotation needs a 3D shape and an axis 0-2, got {shape}"
                raise CheckpointError(msg)
            plane = tuple(n for i, n in enumerate(shape) if i != axis)
            expected = len(slices) * math.prod(plane) * dtype.itemsize
            if expected > MAX_BYTES:
                msg = f"the scan annotation would take {expected} bytes (at most {MAX_BYTES})"
                raise CheckpointError(msg)
            inflater = zlib.decompressobj()
            raw = inflater.decompress(base64.b64decode(str(data["values"])), expected + 1)
            if len(raw) != expected:
                msg = "the scan annotation's values do not fit its slices"
                raise CheckpointError(msg)
            values = np.frombuffer(raw, dtype=dtype).reshape(len(slices), *plane).copy()
            return cls(scan_hash=str(data["scan_hash"]), axis=axis, slices=slices,
                       shape=shape, rule=str(data["rule"]), values=values)
        except CheckpointError:
            raise
        except (KeyError, TypeError, ValueError, zlib.error) as error:
            msg = f"the checkpoint's scan annotation is malformed: {error!r}"
            raise CheckpointError(msg) from None
