"""Periodic training checkpoints, and resuming a run from the last one after a failure.

``RunCheckpoints(folder, every=50)`` given to a :class:`~napari_medseg.training.Trainer` writes
``folder/step-000050/`` every 50 steps, holding

* ``state.safetensors``: the current and the best weights, the optimiser's tensors (AdamW
  moments and step counts) and each rank's torch random states (``uint8`` tensors);
* ``state.json``: the loop's record (:class:`~napari_medseg.training.loop_state.LoopState`:
  phase, step, best Dice and its step, the loss history...), the optimiser's
  hyper-parameters and scalar state, the scheduler's state, each rank's numpy random state, and
  the run's *identity* (model spec, training options, hashes of the data).

Nothing is pickled.  A step folder is written under a temporary name beside its final one and
renamed into place, so a crash leaves the previous checkpoint or the new one, complete; older
step folders are removed once the new one is in place.  With ``resume=True`` the trainer
continues from the highest step found, after checking that the folder belongs to the same run
(:func:`run_identity`); without it a folder that already holds a checkpoint is refused, so no
earlier run is overwritten by accident.
"""

from __future__ import annotations

import json
import re
import shutil
import tempfile
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Any

import torch
from safetensors.torch import load_file, save_file

from napari_medseg.errors import TrainingError
from napari_medseg.models import CheckpointSpec
from napari_medseg.training.loop_state import LoopState
from napari_medseg.training.options import TrainOptions

FORMAT = "napari-medseg-train-state"
FORMAT_VERSION = 2  # 2: the loop's record (LoopState) as one "loop" entry
_STEP_FOLDER = re.compile(r"^step-(\d{6,})$")
#: Options that may change between a run and its resumption (where it runs, not what).
_FREE_OPTIONS = ("device", "threads")


@dataclass
class RandomState:
    """One rank's random streams: patch sampling (numpy), augmentation and torch's global one."""

    numpy: dict[str, Any]
    generator: torch.Tensor
    torch_global: torch.Tensor


@dataclass
class TrainState:
    """Everything a run needs to continue after ``loop.step`` as if it had never stopped: the
    loop's record (:class:`LoopState`: phase, best Dice, history...), the weights, the
    optimiser and scheduler, the run's identity and each rank's random streams."""

    loop: LoopState
    model: dict[str, torch.Tensor]
    optimizer: dict[str, Any]
    scheduler: dict[str, Any]
    identity: dict[str, Any]
    #: the best weights so far (during the fold-in: the best validated ones)
    best: dict[str, torch.Tensor] | None = None
    random: list[RandomState] = field(default_factory=list)

    @property
    def step(self) -> int:
        return self.loop.step


def run_identity(spec: CheckpointSpec, options: TrainOptions, provenance: dict[str, Any]
                 ) -> dict[str, Any]:
    """What must not change between a run and its resumption: the model spec (without
    provenance), the training options (except device and threads) and the data hashes."""
    record = {k: v for k, v in asdict(options).items() if k not in _FREE_OPTIONS}
    identity = {
        "spec": json.loads(replace(spec, provenance={}).to_json()),
        "options": record,
        "data": sorted(str(v) for v in (provenance.get("data") or {}).values()),
        "validation_data": sorted(str(v) for v in
                                  (provenance.get("validation_data") or {}).values()),
    }
    return json.loads(json.dumps(identity))  # tuples become lists, as after a round trip


def check_identity(saved: dict[str, Any], current: dict[str, Any], folder: Path) -> None:
    """Raise :class:`TrainingError` naming what differs between the two identities."""
    differences = []
    for key in sorted(set(saved) | set(current)):
        a, b = saved.get(key), current.get(key)
        if isinstance(a, dict) and isinstance(b, dict):
            differences += [f"{key}.{k}" for k in sorted(set(a) | set(b)) if a.get(k) != b.get(k)]
        elif a != b:
            differences.append(key)
    if differences:
        msg = (f"the checkpoint in {folder} was written by a different run (it differs in "
               f"{', '.join(differences[:8])}); resume with the same model, options and data, "
               "or choose another checkpoint folder")
        raise TrainingError(msg)


@dataclass(kw_only=True)
class RunCheckpoints:
    """Where and how often a run saves its state, and whether it resumes from there.

    ``every``: steps between two checkpoints (0: never; the final step is never saved, the
    finished model is).  ``keep``: the newest step folders kept.
    """

    folder: Path
    every: int = 50
    resume: bool = False
    keep: int = 1

    def __post_init__(self) -> None:
        self.folder = Path(self.folder)
        if self.every < 0:
            msg = f"checkpoint interval must be >= 0 steps, got {self.every}"
            raise TrainingError(msg)
        if self.keep < 1:
            msg = f"keep must be at least 1 checkpoint, got {self.keep}"
            raise TrainingError(msg)

    def due(self, step: int, last_step: int) -> bool:
        return self.every > 0 and step % self.every == 0 and step < last_step

    def step_folders(self) -> list[tuple[int, Path]]:
        """Complete step folders, oldest first."""
        if not self.folder.is_dir():
            return []
        found = []
        for path in self.folder.iterdir():
            match = _STEP_FOLDER.match(path.name)
            if match and (path / "state.json").is_file() and (
                    path / "state.safetensors").is_file():
                found.append((int(match.group(1)), path))
        return sorted(found)

    def latest(self) -> Path | None:
        folders = self.step_folders()
        return folders[-1][1] if folders else None

    def check_fresh(self) -> None:
        """Refuse to start a new run over the checkpoints of an earlier one."""
        latest = self.latest()
        if latest is not None:
            msg = (f"{self.folder} holds a checkpoint of an earlier run ({latest.name}); pass "
                   "--resume (resume=True) to continue it, or delete the folder to start over")
            raise TrainingError(msg)

    # ------------------------------------------------------------------ writing
    def save(self, state: TrainState) -> Path:
        """Write ``state`` as ``step-NNNNNN/`` atomically; remove older step folders."""
        target = self.folder / f"step-{state.step:06d}"
        tensors, record = _encode(state)
        try:
            self.folder.mkdir(parents=True, exist_ok=True)
            tmp = Path(tempfile.mkdtemp(prefix=".step-tmp-", dir=self.folder))
            try:
                save_file(tensors, str(tmp / "state.safetensors"),
                          metadata={"format": FORMAT, "format_version": str(FORMAT_VERSION)})
                (tmp / "state.json").write_text(json.dumps(record, indent=1))
                if target.exists():  # a run resumed before this step saves it again
                    shutil.rmtree(target)
                tmp.rename(target)
            finally:
                shutil.rmtree(tmp, ignore_errors=True)
        except OSError as error:
            msg = (f"could not write the training checkpoint {target} ({error}); disk full or "
                   "not writable? Free space or pass another checkpoint folder")
            raise TrainingError(msg) from None
        for _, old in self.step_folders()[: -self.keep]:
            shutil.rmtree(old, ignore_errors=True)
        return target

    def clear(self) -> None:
        """Remove the step folders (after the finished model is saved), and the folder if
        nothing else is in it."""
        for _, path in self.step_folders():
            shutil.rmtree(path, ignore_errors=True)
        if self.folder.is_dir():
            for leftover in self.folder.glob(".step-tmp-*"):
                shutil.rmtree(leftover, ignore_errors=True)
            if not any(self.folder.iterdir()):
                self.folder.rmdir()

    # ------------------------------------------------------------------ reading
    def load(self) -> TrainState | None:
        """The newest checkpoint, or ``None`` when the folder holds none."""
        latest = self.latest()
        if latest is None:
            return None
        try:
            record = json.loads((latest / "state.json").read_text())
            tensors = load_file(str(latest / "state.safetensors"), device="cpu")
        except (OSError, ValueError) as error:
            msg = (f"cannot read the training checkpoint {latest} ({error}); delete that step "
                   "folder to resume from an earlier one, or start over")
            raise TrainingError(msg) from None
        except Exception as error:  # safetensors raises its own error types
            msg = f"{latest}/state.safetensors is damaged ({error}); delete that step folder"
            raise TrainingError(msg) from None
        if record.get("format") != FORMAT or int(record.get("format_version", 0)) > FORMAT_VERSION:
            msg = (f"{latest}/state.json is not a napari-medseg training state this version "
                   f"reads (format {record.get('format')!r} v{record.get('format_version')})")
            raise TrainingError(msg)
        if int(record.get("format_version", 0)) < FORMAT_VERSION:
            msg = (f"{latest} was written by an older napari-medseg (training state format "
                   f"{record.get('format_version')}) that did not keep the loop's whole record; "
                   f"it cannot be resumed exactly: delete {self.folder} and start the run again")
            raise TrainingError(msg)
        return _decode(record, tensors)


# ---------------------------------------------------------------------- encoding
def _encode(state: TrainState) -> tuple[dict[str, torch.Tensor], dict[str, Any]]:
    def tensor(t: torch.Tensor) -> torch.Tensor:
        return t.detach().to("cpu").contiguous().clone()

    tensors = {f"model.{k}": tensor(v) for k, v in state.model.items()}
    if state.best is not None:
        tensors.update({f"best.{k}": tensor(v) for k, v in state.best.items()})
    scalars: dict[str, dict[str, Any]] = {}
    for index, entries in state.optimizer["state"].items():
        for key, value in entries.items():
            if isinstance(value, torch.Tensor):
                tensors[f"optimizer.{index}.{key}"] = tensor(value)
            else:
                scalars.setdefault(str(index), {})[key] = value
    random = []
    for rank, r in enumerate(state.random):
        tensors[f"random.{rank}.generator"] = tensor(r.generator)
        tensors[f"random.{rank}.torch"] = tensor(r.torch_global)
        random.append(r.numpy)
    record = {
        "format": FORMAT,
        "format_version": FORMAT_VERSION,
        "identity": state.identity,
        "optimizer": {"param_groups": state.optimizer["param_groups"], "scalars": scalars},
        "scheduler": state.scheduler,
        "has_best": state.best is not None,
        "loop": state.loop.to_json(),
        "numpy_random": random,
    }
    try:
        json.dumps(record)
    except (TypeError, ValueError) as error:
        msg = f"the optimiser or scheduler state cannot be stored as JSON ({error})"
        raise TrainingError(msg) from None
    return tensors, record


def _decode(record: dict[str, Any], tensors: dict[str, torch.Tensor]) -> TrainState:
    def section(prefix: str) -> dict[str, torch.Tensor]:
        return {k[len(prefix):]: v for k, v in tensors.items() if k.startswith(prefix)}

    optimizer_state: dict[int, dict[str, Any]] = {}
    for key, value in section("optimizer.").items():
        index, _, name = key.partition(".")
        optimizer_state.setdefault(int(index), {})[name] = value
    for index, entries in record["optimizer"]["scalars"].items():
        optimizer_state.setdefault(int(index), {}).update(entries)
    random = [
        RandomState(numpy=state, generator=tensors[f"random.{rank}.generator"],
                    torch_global=tensors[f"random.{rank}.torch"])
        for rank, state in enumerate(record["numpy_random"])
    ]
    return TrainState(
        loop=LoopState.from_json(record["loop"]),
        model=section("model."),
        optimizer={"state": optimizer_state, "param_groups": record["optimizer"]["param_groups"]},
        scheduler=record["scheduler"],
        identity=record["identity"],
        best=section("best.") if record["has_best"] else None,
        random=random,
    )
