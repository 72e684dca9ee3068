"""Which models and devices a widget offers: the one list every tab with a model control uses.

The models are the starter checkpoints, then the person's (``~/.napari-medseg/models``, marked
"(yours)"), optionally followed by "checkpoint file..." (then a file control chooses it); the
default for a scan is the checkpoint trained for its modality that fits it best (checkpoint
headers and the fit check).
"""

from __future__ import annotations

from collections.abc import Callable

from napari_medseg.errors import MedsegError
from napari_medseg.inference import list_checkpoints
from napari_medseg.inference.catalog import suggest_checkpoint
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
    """The checkpoint (path) to choose for a scan of ``modality``: ``current`` while it was
    trained for that modality, else the one of that modality that fits ``scan`` best (the
    fit check's ranking, :func:`napari_medseg.inference.fit.suggest_model`: the bundled
    abdominal CT gets the abdominal organ model, a head CT the head model), else the first
    that was (starters first); ``None`` if none.

    Reads checkpoint headers, and the scan's intensities (a fixed-size sample) only when
    several models of that modality are installed; ``scan`` may be a callable, so that a
    widget builds the scan only then.
    """
    entries = list_checkpoints()
    chosen = [e for e in entries if str(e.path) == current]
    if chosen and suggest_checkpoint(modality, chosen) is not None:
        return current
    candidates = [e for e in entries if suggest_checkpoint(modality, [e]) is not None]
    if not candidates:
        return None
    if len(candidates) > 1 and scan is not None:
        from napari_medseg.inference.fit import suggest_model

        try:
            best = suggest_model(scan() if callable(scan) else scan, candidates).entry
        except MedsegError:  # a layer that is no scan: the first of the modality will do
            best = None
        if best is not None:
            return str(best.path)
    return str(candidates[0].path)
