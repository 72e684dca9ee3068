"""Helpers the DICOM-SEG tests share (io, cli, napari)."""

from __future__ import annotations

import shutil
from pathlib import Path


def foreground_checkpoint(path: Path, name: str = "liver") -> Path:
    """A tiny 3D U-Net for CT whose last bias makes every voxel class 1 (``name``): a model
    that always finds something, deterministically, in a fraction of a second."""
    import torch

    from napari_medseg.models import (
        CheckpointSpec,
        IntensityContract,
        create_model,
        save_checkpoint,
    )

    torch.manual_seed(0)
    model = create_model("unet", spatial_dims=3, in_channels=1, out_channels=2,
                         features=(4, 8, 16))
    last = [m for m in model.modules() if isinstance(m, torch.nn.Conv3d)][-1]
    with torch.no_grad():
        last.bias[1] += 50.0
    spec = CheckpointSpec(
        architecture="unet", spatial_dims=3, in_channels=1, out_channels=2,
        options={"features": [4, 8, 16]}, class_names={0: "background", 1: name},
        intensity=[IntensityContract(modality="CT", normalization="ct_window",
                                     window=(-160, 240))],
        provenance={"mode": "train", "steps": 1})
    return save_checkpoint(model, spec, path)


def copy_series(source: Path, target: Path, first: int, stop: int) -> Path:
    """Files ``first:stop`` (in name order) of a DICOM series folder, copied to ``target``."""
    target.mkdir(parents=True, exist_ok=True)
    for f in sorted(source.iterdir())[first:stop]:
        shutil.copy(f, target / f.name)
    return target
