"""Which models and devices a widget offers: the one list every tab with a model control uses.

The models are the starter checkpoints, then the person's (``~/.napari-medseg/models``, marked
"(yours)"), optionally followed by "checkpoint file..." (then a file control chooses it); the
default for a scan is the checkpoint trained for its modality (read from checkpoint headers).
"""

from __future__ import annotations

from napari_medseg.inference import list_checkpoints
from napari_medseg.inference.catalog import CheckpointEntry, suggest_checkpoint

#: The model choice that means "the checkpoint file chosen below".
FROM_FILE = "checkpoint file..."


def model_choices(*, with_file: bool = True) -> list[tuple[str, str]]:
    """``(text, checkpoint path)`` of every usable checkpoint, starters first; with
    ``with_file``, :data:`FROM_FILE` last."""
    entries = [(f"{e.name}{'' if e.builtin else ' (yours)'}", str(e.path))
               for e in list_checkpoints()]
    return [*entries, (FROM_FILE, FROM_FILE)] if with_file else entries


def device_choices() -> list[str]:
    """``auto``, ``cpu`` and each CUDA device of this machine."""
    import torch

    choices = ["auto", "cpu"]
    if torch.cuda.is_available():
        choices += [f"cuda:{i}" for i in range(torch.cuda.device_count())]
    return choices


def model_for(modality: str, *, current: str = "") -> str | None:
    """The checkpoint (path) to choose for a scan of ``modality``: ``current`` while it was
    trained for that modality, else the first that was (starters first); ``None`` if none.

    Reads checkpoint headers only.
    """
    entries = list_checkpoints()
    chosen = [e for e in entries if str(e.path) == current]
    if chosen and suggest_checkpoint(modality, chosen) is not None:
        return current
    entry: CheckpointEntry | None = suggest_checkpoint(modality, entries)
    return str(entry.path) if entry is not None else None
