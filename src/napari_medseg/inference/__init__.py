"""Inference: sliding-window prediction with streaming argmax, TTA, ensembles, clean-up.

``Predictor.load(name_or_path).predict(scan, PredictOptions(...))`` from a script;
``predict_job`` is the same run as a generator of progress events for the GUI.
"""

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
