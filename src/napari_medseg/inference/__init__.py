"""Inference: sliding-window prediction with streaming argmax, TTA, ensembles, clean-up.

``Predictor.load(name_or_path).predict(scan, PredictOptions(...))`` from a script;
``predict_job`` is the same run as a generator of progress events for the GUI.

The names below are loaded when first used (PEP 562): importing a torch-free part (the model
catalog, the options) does not import torch, so a napari tab that lists models opens at once.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from napari_medseg.lazy import lazy_names

if TYPE_CHECKING:
    from napari_medseg.inference.catalog import (
        CheckpointNotFoundError,
        find_checkpoint,
        list_checkpoints,
        user_models_dir,
    )
    from napari_medseg.inference.options import PredictOptions
    from napari_medseg.inference.postprocess import PostprocessOptions, postprocess
    from napari_medseg.inference.predictor import InferenceError, Prediction, Predictor
    from napari_medseg.models.device import resolve_device

_WHERE = {
    "CheckpointNotFoundError": "napari_medseg.inference.catalog",
    "find_checkpoint": "napari_medseg.inference.catalog",
    "list_checkpoints": "napari_medseg.inference.catalog",
    "user_models_dir": "napari_medseg.inference.catalog",
    "PredictOptions": "napari_medseg.inference.options",
    "PostprocessOptions": "napari_medseg.inference.postprocess",
    "postprocess": "napari_medseg.inference.postprocess",
    "InferenceError": "napari_medseg.inference.predictor",
    "Prediction": "napari_medseg.inference.predictor",
    "Predictor": "napari_medseg.inference.predictor",
    "resolve_device": "napari_medseg.models.device",
}
__all__ = [
    "CheckpointNotFoundError",
    "InferenceError",
    "PostprocessOptions",
    "PredictOptions",
    "Prediction",
    "Predictor",
    "find_checkpoint",
    "list_checkpoints",
    "postprocess",
    "resolve_device",
    "user_models_dir",
]

__getattr__, __dir__ = lazy_names(__name__, _WHERE)
