"""Segmentation metrics, spacing-aware: Dice/IoU, HD95/ASSD in mm, volumes in ml.

Pure numpy/scipy (no torch): ``evaluate(pred, truth)`` gives a per-class table;
``evaluate_job`` is the same run as a generator job (a progress event per class).
"""

from napari_medseg.metrics.overlap import dice, iou, mean_dice
from napari_medseg.metrics.report import (
    ClassMetrics,
    EvaluateOptions,
    Evaluation,
    evaluate,
    evaluate_arrays,
    evaluate_job,
)
from napari_medseg.metrics.surface import assd, hd95, surface_distances
from napari_medseg.metrics.volumes import class_volumes_ml, voxel_volume_ml

__all__ = [
    "ClassMetrics",
    "EvaluateOptions",
    "Evaluation",
    "assd",
    "class_volumes_ml",
    "dice",
    "evaluate",
    "evaluate_arrays",
    "evaluate_job",
    "hd95",
    "iou",
    "mean_dice",
    "surface_distances",
    "voxel_volume_ml",
]
