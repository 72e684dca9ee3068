"""The segment verb as one core job: checkpoint(s) in, scans in, a :class:`Prediction` out.

``napari-medseg predict`` and the Segment widget both run :func:`segment_job`; they only turn
files or layers into :class:`~napari_medseg.scan.Scan` objects and :class:`SegmentOptions`,
and the prediction into files or layers.  A :class:`PredictorCache` keeps loaded checkpoints
between runs (the widget keeps one; a script may too).

>>> prediction = run_to_end(segment_job(scan, SegmentOptions(models=("head-ct-tissue",))))

With ``made_by`` the job also builds the run's provenance record (``prediction.provenance``,
see :func:`segment_record`): the scan is hashed in the job, so a front end that runs it in a
worker keeps that work off its event loop.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

from napari_medseg.errors import MedsegError
from napari_medseg.events import Job, Progress
from napari_medseg.inference.fit import fit_job
from napari_medseg.inference.options import PredictOptions
from napari_medseg.inference.predictor import InferenceError, Prediction, Predictor
from napari_medseg.inference.records import prediction_record
from napari_medseg.options import option
from napari_medseg.provenance import ProvenanceRecord, unknown_record
from napari_medseg.scan import LabelMap, Scan

COMBINE = ("mean", "vote")


@dataclass(kw_only=True)
class SegmentOptions:
    """What to segment with and how.

    Attributes
    ----------
    models
        Starter-model names or checkpoint paths; several form an ensemble (they must share
        dims, input channels and classes).
    combine
        How ensemble members are combined: ``"mean"`` of probabilities or ``"vote"``.
    strict
        Refuse (:class:`~napari_medseg.inference.fit.FitError`) when the fit check warns.
    predict
        How the windows run (tile, overlap, TTA, device, clean-up...).
    """

    models: tuple[str, ...]
    combine: str = option("mean", choices=COMBINE, gui=False,
                          help="how ensemble members are combined")
    strict: bool = option(False, help="refuse to run when the model does not fit the scan "
                                      "(another modality or body part, ...)")
    predict: PredictOptions = field(default_factory=PredictOptions)

    def __post_init__(self) -> None:
        self.models = tuple(str(m) for m in ([self.models] if isinstance(self.models, str | Path)
                                             else self.models))
        if not self.models or any(not m.strip() for m in self.models):
            msg = "choose a model (a starter-model name or a checkpoint file)"
            raise InferenceError(msg)
        if self.combine not in COMBINE:
            msg = f"combine must be one of {COMBINE}, got {self.combine!r}"
            raise ValueError(msg)

    @property
    def model_name(self) -> str:
        """A short name of the model(s) for layer names and messages (``"head-ct-tissue"``,
        ``"a+b"`` for an ensemble)."""
        return "+".join(Path(m).name.removesuffix(".safetensors") for m in self.models)


class PredictorCache:
    """Loaded predictors by (checkpoints, device, combine): a checkpoint is read once."""

    def __init__(self) -> None:
        self._predictors: dict[tuple[tuple[str, ...], str, str], Predictor] = {}

    def get(self, options: SegmentOptions) -> Predictor:
        key = (options.models, options.predict.device, options.combine)
        if key not in self._predictors:
            self._predictors[key] = Predictor.load(
                list(options.models), device=options.predict.device, combine=options.combine)
        return self._predictors[key]

    def __len__(self) -> int:
        return len(self._predictors)


def segment_record(scans: Scan | Sequence[Scan], options: SegmentOptions, labels: LabelMap,
                   *, made_by: str) -> ProvenanceRecord:
    """The provenance record of a :func:`segment_job` run that made ``labels``: the first
    scan (its voxels and grid hashed, its DICOM identity), the models, the window options
    (``options.predict``), the software and the labels' hash.

    Never fails: a record that cannot be completed (a checkpoint gone since it was loaded...)
    says so in its note instead.
    """
    scans = [scans] if isinstance(scans, Scan) else list(scans)
    try:
        return prediction_record(scans, options.models, options.predict, made_by=made_by,
                                 labels=labels)
    except (MedsegError, OSError, ValueError) as error:
        return unknown_record(made_by=made_by,
                              note=f"segmented with {options.model_name}; the record could "
                                   f"not be completed ({error})")


def segment_job(scans: Scan | Sequence[Scan], options: SegmentOptions, *,
                cache: PredictorCache | None = None,
                made_by: str | None = None) -> Job[Prediction]:
    """Load the model(s) (or take them from ``cache``) and segment ``scans`` (one per input
    channel, on one grid); a generator job.

    First the fit check of every model on the scans (:func:`~napari_medseg.inference.fit.fit_job`:
    a :class:`~napari_medseg.events.FitFinding` per finding; ``options.strict`` refuses a
    model that does not fit, before any work).  Yields a ``"load model"`` :class:`Progress`,
    then the engine's progress per batch of windows (see :meth:`Predictor.predict_job`);
    returns the :class:`Prediction` (labels on the first scan's grid) with the fit reports
    (``prediction.fit``) and its provenance record (:func:`segment_record`) when ``made_by``
    names who ran it.  Closing it between two events leaves nothing behind.
    """
    reports = yield from fit_job(options.models, scans, strict=options.strict)
    yield Progress(stage="load model", done=0, total=1, message="loading the model")
    predictor = (cache or PredictorCache()).get(options)
    prediction = yield from predictor.predict_job(scans, options.predict)
    prediction.fit = reports
    if made_by is not None:
        prediction.provenance = segment_record(scans, options, prediction.labels,
                                               made_by=made_by)
    return prediction
