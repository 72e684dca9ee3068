"""The training loop's own record: its phase and everything a resumed run needs besides
tensors and random streams, in one serialisable dataclass.

:class:`~napari_medseg.training.trainer.Trainer` keeps one :class:`LoopState` and changes
nothing about its run outside it; a checkpoint (:mod:`napari_medseg.training.resume`) stores it
whole as JSON and a resumed run starts from it as it was, so a field added here is saved and
restored without a second list to keep in step.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field
from enum import Enum
from typing import Any


class Phase(str, Enum):
    """Where a run is.  ``PLAIN``: nothing is held back, every step trains on every labeled
    voxel; ``VALIDATE``: held-back voxels measure the run and the best weights are kept;
    ``FOLD_IN``: the held-back voxels were given back and training continues from the best
    validated weights (which stay the run's ``best`` weights)."""

    PLAIN = "plain"
    VALIDATE = "validate"
    FOLD_IN = "fold-in"


@dataclass
class LoopState:
    """Everything about a run's progress that is not a tensor or a random stream."""

    phase: Phase = Phase.PLAIN
    #: steps done
    step: int = 0
    #: the last step of the current phase
    end_step: int = 0
    best_dice: float = float("nan")
    best_step: int = 0
    initial_dice: float = float("nan")
    bad_validations: int = 0
    #: the first fold-in step (0: the run has not folded in)
    fold_in_step: int = 0
    stopped_early: bool = False
    #: per-class Dice of the best weights on the held-back voxels
    best_per_class: dict[int, float] = field(default_factory=dict)
    #: per-class Dice of the starting weights on the annotated voxels (a fine-tune without
    #: held-back voxels is judged against it)
    initial_fit: dict[int, float] = field(default_factory=dict)
    history: list[dict[str, float]] = field(default_factory=list)

    def to_json(self) -> dict[str, Any]:
        """Plain JSON data (NaN as ``null``, class keys as strings)."""
        data = asdict(self)
        data["phase"] = self.phase.value
        for key in ("best_dice", "initial_dice"):
            data[key] = _finite_or_none(data[key])
        for key in ("best_per_class", "initial_fit"):
            data[key] = {str(k): _finite_or_none(v) for k, v in data[key].items()}
        data["history"] = [{k: _finite_or_none(v) for k, v in h.items()} for h in self.history]
        return data

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> LoopState:
        """The inverse of :meth:`to_json` (unknown keys are refused by the dataclass)."""
        values = dict(data)
        values["phase"] = Phase(values.get("phase", Phase.PLAIN.value))
        for key in ("best_dice", "initial_dice"):
            values[key] = _nan_if_none(values.get(key))
        for key in ("best_per_class", "initial_fit"):
            values[key] = {int(k): _nan_if_none(v) for k, v in (values.get(key) or {}).items()}
        values["history"] = [{k: _nan_if_none(v) for k, v in h.items()}
                             for h in values.get("history") or []]
        return cls(**values)


def _finite_or_none(value: float | None) -> float | None:
    return value if value is not None and math.isfinite(value) else None


def _nan_if_none(value: float | None) -> float:
    return float("nan") if value is None else float(value)
