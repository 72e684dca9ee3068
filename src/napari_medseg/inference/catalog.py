"""Where checkpoints are found: starter models shipped in the package, and a models folder.

A name (``brain-tissue-t1``) is looked up as ``<name>.safetensors`` in the package's
``weights/`` folder, then in the user's models folder (``$NAPARI_MEDSEG_MODELS``, default
``~/.napari-medseg/models``), where fine-tuning saves new versions.  Anything else must be a
path to a checkpoint file.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

from napari_medseg.errors import MedsegError

SUFFIX = ".safetensors"


class CheckpointNotFoundError(MedsegError):
    """A model name or path that leads to no checkpoint."""


def builtin_dir() -> Path:
    """The package folder of the starter checkpoints."""
    return Path(__file__).resolve().parents[1] / "weights"


def user_models_dir() -> Path:
    """The folder of the user's own checkpoints (fine-tuned versions land here)."""
    return Path(os.environ.get("NAPARI_MEDSEG_MODELS", Path.home() / ".napari-medseg" / "models"))


@dataclass(frozen=True)
class CheckpointEntry:
    name: str
    path: Path
    builtin: bool


def list_checkpoints(extra_dirs: tuple[Path, ...] = ()) -> list[CheckpointEntry]:
    """Starter models first, then the models folder(s), each sorted by name."""
    entries: list[CheckpointEntry] = []
    for folder, builtin in ((builtin_dir(), True), (user_models_dir(), False),
                            *((d, False) for d in extra_dirs)):
        if folder.is_dir():
            for path in sorted(folder.glob(f"*{SUFFIX}")):
                entries.append(CheckpointEntry(path.name[: -len(SUFFIX)], path, builtin))
    return entries


def find_checkpoint(name_or_path: str | Path) -> Path:
    """The checkpoint file for a path, or for the name of a starter/user model."""
    path = Path(name_or_path)
    if path.is_file():
        return path
    name = str(name_or_path)
    for entry in list_checkpoints():
        if entry.name == name:
            return entry.path
    known = ", ".join(e.name for e in list_checkpoints()) or "none installed"
    msg = (
        f"no checkpoint {name!r}: not a file, and not a known model name (known: {known}); "
        "give the path of a .safetensors checkpoint"
    )
    raise CheckpointNotFoundError(msg)
