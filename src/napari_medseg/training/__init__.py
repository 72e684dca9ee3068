"""Training and fine-tuning from sparse labels, as generator jobs; corrections helpers.

Importing this subpackage imports torch (never napari or Qt).  Build :class:`LabeledVolume`
objects, a :class:`Trainer` (``from_checkpoint`` / ``from_scratch``), drive ``trainer.job()``
and save the result with :func:`save_new_version`.
"""

from napari_medseg.training.freeze import encoder_parameter_names, freeze_encoder
from napari_medseg.training.labeled_volume import LabeledVolume, PreparedVolume, prepare_volume
from napari_medseg.training.losses import MaskedDiceCELoss
from napari_medseg.training.options import AugmentOptions, TrainOptions
from napari_medseg.training.trainer import Trainer, TrainResult
from napari_medseg.training.versioning import next_version_path, save_new_version

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
