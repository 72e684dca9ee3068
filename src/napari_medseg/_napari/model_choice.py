"""Which models and devices a widget offers: the one list every tab with a model control uses.

The models are the starter checkpoints, then the person's (``~/.napari-medseg/models``, marked
"(yours)"), optionally followed by "checkpoint file..." (then a file control chooses it); the
default for a scan is the checkpoint trained for its modality that fits it best (checkpoint
headers and the fit check).
"""

from __future__ import annotations

from collections.abc import Callable

from napari_medseg.inference import list_checkpoints
from napari_medseg.scan import Scan

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


def model_for(modality: str, *, current: str = "",
              scan: Scan | Callable[[], Scan] | None = None) -> str | None:
    """The checkpoint (path) to offer for a scan of ``modality``: the core's
    :func:`napari_medseg.inference.fit.choose_model` (the person's choice while it fits the
    modality, else the best fit for ``scan``, never another modality or body region)."""
    from napari_medseg.inference.fit import choose_model

    entry = choose_model(modality, scan=scan, current=current)
    return str(entry.path) if entry is not None else None
