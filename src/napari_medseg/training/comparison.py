"""Before/after scores of a re-segmentation on the voxels a person labeled.

After a fine-tune the widget (and ``napari-medseg finetune --compare``) re-segments the scan
with the parent and the new model and shows Dice and IoU of each on the labeled voxels: the
only voxels where the truth is known.
"""

from __future__ import annotations

from dataclasses import dataclass

from napari_medseg.inference import PredictOptions, Predictor
from napari_medseg.metrics import Evaluation, evaluate_arrays
from napari_medseg.training.labeled_volume import LabeledVolume


@dataclass(frozen=True)
class BeforeAfter:
    """Scores of the parent (``before``) and the new model (``after``) on labeled voxels."""

    before: Evaluation
    after: Evaluation

    def summary(self) -> str:
        return (f"labeled voxels: Dice {self.before.mean('dice'):.3f} -> "
                f"{self.after.mean('dice'):.3f}, IoU {self.before.mean('iou'):.3f} -> "
                f"{self.after.mean('iou'):.3f}")


def score_on_labeled(predictor: Predictor, volume: LabeledVolume,
                     options: PredictOptions | None = None) -> Evaluation:
    """Segment ``volume``'s scans and score Dice/IoU (no surface metrics) on labeled voxels."""
    prediction = predictor.predict(volume.scans, options)
    classes = list(range(1, predictor.spec.out_channels))
    return evaluate_arrays(prediction.labels.array, volume.labels.array,
                           volume.grid.geometry.spacing, classes=classes,
                           class_names=dict(predictor.spec.class_names),
                           mask=volume.labeled_mask(), surface=False)


def before_after(before: Predictor, after: Predictor, volume: LabeledVolume,
                 options: PredictOptions | None = None) -> BeforeAfter:
    """Score both models on ``volume``'s labeled voxels."""
    return BeforeAfter(before=score_on_labeled(before, volume, options),
                       after=score_on_labeled(after, volume, options))
