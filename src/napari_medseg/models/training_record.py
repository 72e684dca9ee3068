"""What a checkpoint was trained on: the record the fit check compares a scan with.

A :class:`TrainingDataRecord` lives in the checkpoint spec (``CheckpointSpec.training_data``)
and holds, over the training scans: their number, per input channel the modality, MR
contrast and skull stripping (where known) and the percentiles of the raw and of the
normalised intensities inside the body, the voxel spacing, the field of view and the size of
the body (across its two largest extents).  Each quantity is a :class:`Spread`: median, lowest and
highest over the scans.

It is made by :func:`napari_medseg.inference.fit.describe_training_data`, which computes the
statistics with the same code the fit check applies to a scan.  It is plain data (JSON
numbers and strings), checked when read, since a checkpoint may come from anyone.
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from napari_medseg.scan import MODALITIES, MR_CONTRASTS

#: Percentile levels (in %) of the intensity statistics.
PERCENTILE_LEVELS = (1.0, 5.0, 25.0, 50.0, 75.0, 95.0, 99.0)
_MAX_LEVELS = 32
_MAX_CHANNELS = 1024
_MAX_SCANS = 10**7
_MAX_ABS = 1e12


class RecordError(ValueError):
    """A training-data record that is malformed (the message says which field)."""


def _floats(value: Any, where: str, *, lengths: Sequence[int] | None = None) -> tuple[float, ...]:
    if not isinstance(value, list | tuple) or len(value) > _MAX_LEVELS:
        msg = f"{where} must be a list of at most {_MAX_LEVELS} numbers"
        raise RecordError(msg)
    out = []
    for v in value:
        if isinstance(v, bool) or not isinstance(v, int | float) or not math.isfinite(v) or (
                abs(v) > _MAX_ABS):
            msg = f"{where} holds {v!r}; finite numbers only"
            raise RecordError(msg)
        out.append(float(v))
    if lengths is not None and len(out) not in lengths:
        msg = f"{where} has {len(out)} values; expected {' or '.join(map(str, lengths))}"
        raise RecordError(msg)
    return tuple(out)


@dataclass(frozen=True)
class Spread:
    """A quantity over the training scans: per element its median, lowest and highest.

    One element per axis (spacing, extent, in mm, array-axis order), per percentile level
    (intensities) or a single one (body size).
    """

    median: tuple[float, ...]
    low: tuple[float, ...]
    high: tuple[float, ...]

    def __post_init__(self) -> None:
        if not len(self.median) == len(self.low) == len(self.high):
            msg = (f"a spread needs as many lows and highs as medians, got {len(self.median)}, "
                   f"{len(self.low)}, {len(self.high)}")
            raise RecordError(msg)
        if any(lo > hi for lo, hi in zip(self.low, self.high, strict=True)):
            msg = f"a spread's lows {self.low} must not exceed its highs {self.high}"
            raise RecordError(msg)

    @classmethod
    def of(cls, values: Sequence[Sequence[float]]) -> Spread:
        """The spread of one vector per scan (all of one length)."""
        stacked = np.asarray(values, dtype=np.float64).reshape(len(values), -1)
        return cls(median=tuple(float(v) for v in np.median(stacked, axis=0)),
                   low=tuple(float(v) for v in stacked.min(axis=0)),
                   high=tuple(float(v) for v in stacked.max(axis=0)))

    def to_dict(self) -> dict[str, list[float]]:
        return {"median": list(self.median), "low": list(self.low), "high": list(self.high)}

    @classmethod
    def from_dict(cls, data: Any, where: str, *, lengths: Sequence[int] | None = None
                  ) -> Spread:
        if not isinstance(data, Mapping) or set(data) != {"median", "low", "high"}:
            msg = f"{where} must be an object with median, low and high"
            raise RecordError(msg)
        return cls(**{k: _floats(data[k], f"{where}.{k}", lengths=lengths)
                      for k in ("median", "low", "high")})


@dataclass(frozen=True)
class ChannelRecord:
    """One input channel of the training data.

    ``raw`` and ``normalised`` hold one element per :attr:`TrainingDataRecord.levels`: the
    percentiles of the voxels inside the body, as stored (HU for CT) and after the channel's
    intensity contract.  ``mr_contrast`` / ``skull_stripped`` are ``None`` when not known or
    mixed.
    """

    modality: str
    raw: Spread
    normalised: Spread
    mr_contrast: str | None = None
    skull_stripped: bool | None = None

    def __post_init__(self) -> None:
        if self.modality not in MODALITIES:
            msg = f"modality {self.modality!r} is not one of {', '.join(MODALITIES)}"
            raise RecordError(msg)
        if self.mr_contrast is not None and self.mr_contrast not in MR_CONTRASTS:
            msg = f"mr_contrast {self.mr_contrast!r} is not one of {', '.join(MR_CONTRASTS)}"
            raise RecordError(msg)

    def to_dict(self) -> dict[str, Any]:
        return {"modality": self.modality, "mr_contrast": self.mr_contrast,
                "skull_stripped": self.skull_stripped, "raw": self.raw.to_dict(),
                "normalised": self.normalised.to_dict()}

    @classmethod
    def from_dict(cls, data: Any, where: str, n_levels: int) -> ChannelRecord:
        if not isinstance(data, Mapping):
            msg = f"{where} must be an object"
            raise RecordError(msg)
        stripped = data.get("skull_stripped")
        contrast = data.get("mr_contrast")
        if stripped is not None and not isinstance(stripped, bool):
            msg = f"{where}.skull_stripped must be true, false or null"
            raise RecordError(msg)
        if contrast is not None and not isinstance(contrast, str):
            msg = f"{where}.mr_contrast must be a string or null"
            raise RecordError(msg)
        return cls(modality=str(data.get("modality", "unknown")), mr_contrast=contrast,
                   skull_stripped=stripped,
                   raw=Spread.from_dict(data.get("raw"), f"{where}.raw", lengths=[n_levels]),
                   normalised=Spread.from_dict(data.get("normalised"), f"{where}.normalised",
                                               lengths=[n_levels]))


@dataclass(frozen=True)
class TrainingDataRecord:
    """What a model was trained on, over its ``n_scans`` training scans.

    Attributes
    ----------
    n_scans
        Number of training scans (cases).
    channels
        One :class:`ChannelRecord` per input channel.
    spacing_mm
        Voxel spacing per array axis, mm.
    extent_mm
        Field of view per array axis (shape x spacing), mm.
    body_mm
        Size of the body (the largest connected foreground): the geometric mean of its two
        largest extents, mm; one element.
    levels
        Percentile levels (%) of the channels' ``raw`` and ``normalised`` statistics.
    regions
        The body regions the training scans show (``head``, ``chest``, ``abdomen``; see
        :mod:`napari_medseg.inference.body_region`); empty when not known.
    """

    n_scans: int
    channels: tuple[ChannelRecord, ...]
    spacing_mm: Spread
    extent_mm: Spread
    body_mm: Spread
    levels: tuple[float, ...] = PERCENTILE_LEVELS
    regions: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        levels = self.levels
        if not 3 <= len(levels) <= _MAX_LEVELS or not all(
                0 <= a < b <= 100 for a, b in itertools.pairwise(levels)):
            msg = f"levels must be 3 to {_MAX_LEVELS} increasing percentiles in 0..100"
            raise RecordError(msg)
        if not 1 <= self.n_scans <= _MAX_SCANS:
            msg = f"n_scans={self.n_scans} is outside 1..{_MAX_SCANS}"
            raise RecordError(msg)
        if not 1 <= len(self.channels) <= _MAX_CHANNELS:
            msg = f"a record has 1 to {_MAX_CHANNELS} channels, got {len(self.channels)}"
            raise RecordError(msg)
        if len(self.spacing_mm.median) not in (2, 3) or (
                len(self.extent_mm.median) != len(self.spacing_mm.median)):
            msg = "spacing_mm and extent_mm need one element per axis (2 or 3)"
            raise RecordError(msg)
        if len(self.body_mm.median) != 1:
            msg = "body_mm has one element (the body's size)"
            raise RecordError(msg)
        for channel in self.channels:
            if len(channel.raw.median) != len(self.levels):
                msg = f"channel statistics need one value per level {self.levels}"
                raise RecordError(msg)

    @property
    def modalities(self) -> tuple[str, ...]:
        return tuple(c.modality for c in self.channels)

    def to_dict(self) -> dict[str, Any]:
        return {"n_scans": self.n_scans, "levels": list(self.levels),
                "channels": [c.to_dict() for c in self.channels],
                "spacing_mm": self.spacing_mm.to_dict(), "extent_mm": self.extent_mm.to_dict(),
                "body_mm": self.body_mm.to_dict(),
                **({"regions": list(self.regions)} if self.regions else {})}

    @classmethod
    def from_dict(cls, data: Any) -> TrainingDataRecord:
        """Parse and check; :class:`RecordError` names the malformed field."""
        where = "training_data"
        if not isinstance(data, Mapping):
            msg = f"{where} must be an object"
            raise RecordError(msg)
        known = {"n_scans", "levels", "channels", "spacing_mm", "extent_mm", "body_mm",
                 "regions"}
        unknown = sorted(set(data) - known)
        if unknown:
            msg = f"{where} has unknown fields {unknown}; known: {sorted(known)}"
            raise RecordError(msg)
        n_scans = data.get("n_scans")
        if isinstance(n_scans, bool) or not isinstance(n_scans, int):
            msg = f"{where}.n_scans must be a whole number"
            raise RecordError(msg)
        levels = _floats(data.get("levels", list(PERCENTILE_LEVELS)), f"{where}.levels")
        channels = data.get("channels")
        if not isinstance(channels, list) or len(channels) > _MAX_CHANNELS:
            msg = f"{where}.channels must be a list of at most {_MAX_CHANNELS} objects"
            raise RecordError(msg)
        return cls(
            n_scans=n_scans, levels=levels,
            channels=tuple(ChannelRecord.from_dict(c, f"{where}.channels[{i}]", len(levels))
                           for i, c in enumerate(channels)),
            spacing_mm=Spread.from_dict(data.get("spacing_mm"), f"{where}.spacing_mm",
                                        lengths=[2, 3]),
            extent_mm=Spread.from_dict(data.get("extent_mm"), f"{where}.extent_mm",
                                       lengths=[2, 3]),
            body_mm=Spread.from_dict(data.get("body_mm"), f"{where}.body_mm", lengths=[1]),
            regions=_regions(data.get("regions", []), f"{where}.regions"))


#: Body regions a record may name (as :data:`napari_medseg.inference.body_region.REGIONS`).
REGION_NAMES = ("head", "chest", "abdomen")


def _regions(value: Any, where: str) -> tuple[str, ...]:
    if not isinstance(value, list) or any(v not in REGION_NAMES for v in value):
        msg = f"{where} must be a list of {', '.join(REGION_NAMES)}"
        raise RecordError(msg)
    return tuple(value)
