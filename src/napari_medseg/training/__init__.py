"""Training and fine-tuning from sparse labels, as generator jobs; corrections helpers.

Build :class:`LabeledVolume` objects, a :class:`Trainer` (``from_checkpoint`` /
``from_scratch``), drive ``trainer.job()`` and save the result with :func:`save_new_version`.
The names below are loaded when first used (PEP 562): the torch-free modules of this package
(the corrections journal, the annotation layout, the options) import without torch.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from napari_medseg.lazy import lazy_names

if TYPE_CHECKING:
    from napari_medseg.training.freeze import encoder_parameter_names, freeze_encoder
    from napari_medseg.training.labeled_volume import (
        LabeledVolume,
        PreparedVolume,
        prepare_volume,
    )
    from napari_medseg.training.losses import MaskedDiceCELoss
    from napari_medseg.training.options import AugmentOptions, TrainOptions
    from napari_medseg.training.trainer import Trainer, TrainResult
    from napari_medseg.training.versioning import next_version_path, save_new_version

_WHERE = {
    "encoder_parameter_names": "napari_medseg.training.freeze",
    "freeze_encoder": "napari_medseg.training.freeze",
    "LabeledVolume": "napari_medseg.training.labeled_volume",
    "PreparedVolume": "napari_medseg.training.labeled_volume",
    "prepare_volume": "napari_medseg.training.labeled_volume",
    "MaskedDiceCELoss": "napari_medseg.training.losses",
    "AugmentOptions": "napari_medseg.training.options",
    "TrainOptions": "napari_medseg.training.options",
    "Trainer": "napari_medseg.training.trainer",
    "TrainResult": "napari_medseg.training.trainer",
    "next_version_path": "napari_medseg.training.versioning",
    "save_new_version": "napari_medseg.training.versioning",
}
__all__ = [
    "AugmentOptions",
    "LabeledVolume",
    "MaskedDiceCELoss",
    "PreparedVolume",
    "TrainOptions",
    "TrainResult",
    "Trainer",
    "encoder_parameter_names",
    "freeze_encoder",
    "next_version_path",
    "prepare_volume",
    "save_new_version",
]

__getattr__, __dir__ = lazy_names(__name__, _WHERE)
