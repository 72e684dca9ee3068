"""Which torch device a job runs on: one answer for segmenting, training and the CLI."""

from __future__ import annotations

import torch

from napari_medseg.errors import MedsegError, setting


class DeviceError(MedsegError):
    """The asked-for device does not exist or is not available here."""


def resolve_device(name: str = "auto") -> torch.device:
    """``"auto"``: CUDA when present, then Apple MPS, then CPU; otherwise the named device."""
    if name == "auto":
        if torch.cuda.is_available():
            return torch.device("cuda")
        if getattr(torch.backends, "mps", None) is not None and torch.backends.mps.is_available():
            return torch.device("mps")
        return torch.device("cpu")
    try:
        device = torch.device(name)
    except RuntimeError as exc:
        msg = f"unknown device {name!r}; use auto, cpu, cuda, cuda:N or mps"
        raise DeviceError(msg) from exc
    if device.type == "cuda" and not torch.cuda.is_available():
        msg = (f"device {name!r} asked for but no CUDA GPU is available; use "
               f"{setting('device', 'cpu')}")
        raise DeviceError(msg)
    return device
