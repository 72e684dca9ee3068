"""Segmentation metrics, spacing-aware: Dice/IoU, HD95/ASSD in mm, volumes in ml.

Pure numpy/scipy (no torch): ``evaluate(pred, truth)`` gives a per-class table.
"""

from napari_medseg.metrics.overlap import dice, iou, mean_dice
from napari_medseg.metrics.report import ClassMetrics, Evaluation, evaluate, evaluate_arrays
from napari_medseg.metrics.surface import assd, hd95, surface_distances
from napari_medseg.metrics.volumes import class_volumes_ml, voxel_volume_ml

__all__ = [
    "ClassMetrics",
    "Evaluation",
    "assd",
    "class_volumes_ml",
    "dice",
    "evaluate",
    "evaluate_arrays",
    "hd95",
    "iou",
    "mean_dice",
    "surface_distances",
    "voxel_volume_ml",
]
