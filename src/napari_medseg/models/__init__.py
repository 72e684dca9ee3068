"""The model zoo: every network of the seed papers, in 2D and 3D, behind one registry.

Importing this subpackage imports torch (never napari or Qt).  ``create_model(name, ...)``
builds a network that maps ``(B, C_in, *S)`` to logits ``(B, C_out, *S)`` for any ``S``;
checkpoints are single safetensors files with a JSON spec and never run code when loaded.
"""

from .checkpoint import (
    CheckpointSpec,
    ImportReport,
    IntensityContract,
    import_state_dict,
    load_checkpoint,
    save_checkpoint,
)
from .crf import crf_refine
from .export import export_onnx, export_torchscript
from .registry import ModelInfo, available_models, count_parameters, create_model, model_names

__all__ = [
    "CheckpointSpec",
    "ImportReport",
    "IntensityContract",
    "ModelInfo",
    "available_models",
    "count_parameters",
    "create_model",
    "crf_refine",
    "export_onnx",
    "export_torchscript",
    "import_state_dict",
    "load_checkpoint",
    "model_names",
    "save_checkpoint",
]
