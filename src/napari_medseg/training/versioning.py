"""Save trained models as new, numbered checkpoints; never overwrite one.

``save_new_version(result, folder=..., name="brain-tissue-t1-ft")`` writes
``brain-tissue-t1-ft-v1.safetensors`` (then ``-v2``...) into ``folder`` (by default the user
models folder, where the Segment widget's model list looks); ``path=`` writes exactly that file
and refuses an existing one.  Writes are atomic (a temporary file renamed into place): a full
disk leaves no partial file and the previous models untouched.
"""

from __future__ import annotations

import re
from pathlib import Path

from napari_medseg.errors import CheckpointError, CheckpointExistsError, TrainingError
from napari_medseg.inference.catalog import SUFFIX, user_models_dir
from napari_medseg.models import save_checkpoint
from napari_medseg.training.trainer import TrainResult

_VERSION = re.compile(r"^(?P<base>.+)-v(?P<n>\d+)$")


def base_name(name: str) -> str:
    """``"liver-ft-v3"`` -> ``"liver-ft"``; other names unchanged."""
    match = _VERSION.match(name)
    return match.group("base") if match else name


def next_version_path(folder: Path, name: str) -> Path:
    """``folder / f"{base}-v{N}.safetensors"`` with ``N`` one more than the highest present."""
    base = base_name(name)
    highest = 0
    for path in folder.glob(f"{base}-v*{SUFFIX}"):
        match = _VERSION.match(path.name[: -len(SUFFIX)])
        if match and match.group("base") == base:
            highest = max(highest, int(match.group("n")))
    return folder / f"{base}-v{highest + 1}{SUFFIX}"


def save_new_version(result: TrainResult, *, path: Path | str | None = None,
                     folder: Path | str | None = None, name: str | None = None) -> Path:
    """Write ``result`` as a new checkpoint and return its path.

    ``path``: exactly this file (refused if it exists).  Otherwise the next free
    ``<name>-v<N>.safetensors`` in ``folder`` (default: the user models folder); ``name``
    defaults to the architecture.  Raises :class:`TrainingError` when the file cannot be
    written (full disk, no permission); nothing is overwritten in any case.
    """
    if path is not None:
        target = Path(path)
        if target.suffix != SUFFIX:
            msg = f"checkpoint paths end in {SUFFIX}, got {target.name}; e.g. {target.stem}{SUFFIX}"
            raise TrainingError(msg)
        if target.exists():
            msg = f"{target} exists; a trained model never replaces a checkpoint: choose a new name"
            raise CheckpointExistsError(msg)
        return _write(result, target)
    directory = Path(folder) if folder is not None else user_models_dir()
    try:
        directory.mkdir(parents=True, exist_ok=True)
    except OSError as error:
        msg = f"cannot create the models folder {directory} ({error}); choose another folder"
        raise TrainingError(msg) from None
    for _ in range(100):  # another process may take the same number: try the next one
        target = next_version_path(directory, name or result.spec.architecture)
        try:
            return _write(result, target)
        except CheckpointExistsError:
            continue
    msg = f"could not find a free version name for {name!r} in {directory}"
    raise TrainingError(msg)


def _write(result: TrainResult, target: Path) -> Path:
    if not target.parent.is_dir():
        msg = f"cannot save {target.name}: folder {target.parent} does not exist"
        raise TrainingError(msg)
    try:
        return save_checkpoint(result.model, result.spec, target, overwrite=False)
    except CheckpointExistsError:
        raise
    except (OSError, CheckpointError) as error:
        msg = (f"could not save the trained model to {target} ({error}); disk full or not "
               "writable? Nothing was overwritten and the previous model is still usable")
        raise TrainingError(msg) from None
