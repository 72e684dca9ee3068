"""Does a model fit a scan?  The record of what a model was trained on, and the check.

Two sides, one code: :func:`describe_training_data` summarises the training scans into the
:class:`~napari_medseg.models.training_record.TrainingDataRecord` a checkpoint keeps, and
:func:`check_fit` computes the same statistics on a scan and compares them with it.  Each
difference is a :class:`Finding` with a rule id, a severity and a message saying what
differs and what to do:

================== ======== ==============================================================
rule               severity when
================== ======== ==============================================================
``fit-unknown``    info     the checkpoint carries no training-data record (older files)
``modality-unknown`` warning the scan's modality could not be told
``other-modality`` warning  the scan's modality is not the one the model was trained on
``other-contrast`` warning  MR contrast (T1/T2/FLAIR/PD) differs, where both are known
``skull``          warning  trained on skull-stripped brains, the scan is not one (info the
                            other way round)
``intensity``      warning  body intensities after the model's normalisation lie far from
                            the training data's (info when somewhat off)
``spacing``        warning  the scan's coarsest voxel edge is over twice the training's
``field-of-view``  warning  the body is over 1.3x the largest training body (another body
                            region); info when under half the smallest (a crop)
``body-region``    warning  the scan shows another body region (head, chest, abdomen:
                            :mod:`.body_region`) than the training scans did
================== ======== ==============================================================

:func:`suggest_model` ranks the installed checkpoints for a scan (never one of another
modality) and says so when none fits.  Everything here reads arrays and checkpoint headers
only: no network is built.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from napari_medseg.errors import MedsegError
from napari_medseg.events import FitFinding, Job
from napari_medseg.inference.body_region import (
    _sample,
    body_region,
    body_size_mm,
    body_threshold,
)
from napari_medseg.inference.catalog import CheckpointEntry, find_checkpoint, list_checkpoints
from napari_medseg.inference.preprocess import normalize
from napari_medseg.models import CheckpointSpec, IntensityContract
from napari_medseg.models.training_record import (
    PERCENTILE_LEVELS,
    ChannelRecord,
    Spread,
    TrainingDataRecord,
)
from napari_medseg.scan import Scan

SEVERITIES = ("info", "warning")
RULES = ("fit-unknown", "modality-unknown", "other-modality", "other-contrast", "skull",
         "intensity", "spacing", "field-of-view", "body-region")
#: Intensity distance (in units of the training's 5-95 % range) above which a scan is
#: "far" (warning) or "somewhat off" (info).  Measured with brain-tissue-t1's percentile
#: normalisation: another skull-stripped T1 (Colin27 ch2bet) 0.01, T1 with skull 0.6-0.7,
#: PD 0.5, breast MR 0.8.
INTENSITY_FAR, INTENSITY_OFF = 0.25, 0.12
SPACING_FACTOR = 2.0
BODY_LARGER, BODY_SMALLER = 1.3, 0.5
_TRAIN_HINT = "train a model on your own labelled scans (Train tab, or napari-medseg train)"


# --------------------------------------------------------------------------- statistics
def body_percentiles(scan: Scan, contract: IntensityContract | None, *,
                     levels: Sequence[float] = PERCENTILE_LEVELS, modality: str | None = None
                     ) -> tuple[tuple[float, ...], tuple[float, ...]]:
    """Percentiles (``levels``, %) of the body voxels of ``scan``: raw, and normalised by
    ``contract`` (the raw ones again without a contract).

    The body is told from the raw values with :func:`body_threshold` for ``modality``
    (default: the contract's, else the scan's); normalisation sees the whole scan, as the
    network's input does.
    """
    modality = modality or (contract.modality if contract else scan.modality)
    x = _sample(scan.array)
    body = x > body_threshold(x, modality)
    if not body.any():
        body = np.ones_like(body)
    raw = tuple(float(v) for v in np.percentile(x[body], levels))
    if contract is None:
        return raw, raw
    normalised = normalize(x, contract)[body]
    return raw, tuple(float(v) for v in np.percentile(normalised, levels))


def _extent(scan: Scan) -> tuple[float, ...]:
    return tuple(n * s for n, s in zip(scan.shape, scan.spacing, strict=True))


def describe_training_data(scans: Sequence[Scan] | Sequence[Sequence[Scan]], *,
                           intensity: Sequence[IntensityContract] = (),
                           levels: Sequence[float] = PERCENTILE_LEVELS) -> TrainingDataRecord:
    """The record of what a model is trained on, for its checkpoint spec.

    Parameters
    ----------
    scans
        The training scans: one :class:`Scan` per case, or per case a sequence with one
        scan per input channel (all cases with the same number of channels).
    intensity
        The checkpoint's intensity contracts (``spec.intensity``), one per channel; the
        normalised statistics apply them.  Empty: the raw values are used.
    levels
        Percentile levels (%) of the intensity statistics.

    The modality, MR contrast and skull stripping of a channel are those of its scans
    (``Scan.modality`` ...) when all agree, else ``"unknown"`` / ``None``.  Spacing, field of
    view and body size come from the first channel.  Call it as the training starts, e.g.
    ``spec.training_data = describe_training_data([v.scans for v in volumes],
    intensity=spec.intensity)``.
    """
    cases = [[s] if isinstance(s, Scan) else list(s) for s in scans]
    if not cases or not cases[0]:
        msg = "describe_training_data needs at least one training scan"
        raise ValueError(msg)
    n_channels = len(cases[0])
    if any(len(case) != n_channels for case in cases):
        msg = "every training case needs the same number of channel scans"
        raise ValueError(msg)
    if intensity and len(intensity) != n_channels:
        msg = f"{len(intensity)} intensity contracts for {n_channels} channel(s)"
        raise ValueError(msg)
    channels = []
    for c in range(n_channels):
        contract = intensity[c] if intensity else None
        per_scan = [body_percentiles(case[c], contract, levels=levels) for case in cases]
        channel_scans = [case[c] for case in cases]
        channels.append(ChannelRecord(
            modality=_common([s.modality for s in channel_scans]) or "unknown",
            mr_contrast=_common([s.mr_contrast for s in channel_scans]),
            skull_stripped=_common([s.skull_stripped for s in channel_scans]),
            raw=Spread.of([raw for raw, _ in per_scan]),
            normalised=Spread.of([norm for _, norm in per_scan])))
    first = [case[0] for case in cases]
    return TrainingDataRecord(
        n_scans=len(cases), channels=tuple(channels), levels=tuple(float(v) for v in levels),
        spacing_mm=Spread.of([s.spacing for s in first]),
        extent_mm=Spread.of([_extent(s) for s in first]),
        body_mm=Spread.of([[body_size_mm(s)] for s in first]),
        regions=tuple(sorted({r.name for r in map(body_region, first) if r.known})))


def _common(values: list[Any]) -> Any:
    return values[0] if values and all(v == values[0] for v in values) else None


# --------------------------------------------------------------------------- the check
@dataclass(frozen=True)
class Finding:
    """One way a scan differs from what a model was trained on.

    ``rule`` is one of :data:`RULES`, ``severity`` ``"info"`` or ``"warning"`` (``--strict``
    refuses warnings); ``message`` says what differs and what to do.
    """

    rule: str
    severity: str
    message: str

    def __post_init__(self) -> None:
        if self.rule not in RULES or self.severity not in SEVERITIES:
            msg = f"unknown rule {self.rule!r} or severity {self.severity!r}"
            raise ValueError(msg)

    def line(self) -> str:
        return f"{self.severity}: [{self.rule}] {self.message}"


@dataclass
class FitReport:
    """What :func:`check_fit` found for a model (``model``) on a scan (``scan``).

    ``distance`` is the largest intensity distance over the channels (``None`` where it
    could not be measured); ``suggestion`` a line naming a better-fitting model, or saying
    that none fits (filled by :func:`check_model`).
    """

    model: str
    scan: str
    findings: list[Finding] = field(default_factory=list)
    distance: float | None = None
    suggestion: str | None = None

    @property
    def warnings(self) -> list[Finding]:
        return [f for f in self.findings if f.severity == "warning"]

    @property
    def fits(self) -> bool:
        """No warning (notes may remain)."""
        return not self.warnings

    def lines(self) -> list[str]:
        """One line per finding, then the suggestion, for a terminal or a status bar."""
        return [f.line() for f in self.findings] + (
            [f"suggestion: {self.suggestion}"] if self.suggestion else [])

    def refusal(self, flag: str = "strict") -> str:
        """The error message when ``flag`` refuses to run with warnings."""
        rules = ", ".join(sorted({f.rule for f in self.warnings}))
        return (f"{flag}: {self.model} does not fit {self.scan} ({rules}): "
                f"{self.warnings[0].message}" + (f"; {self.suggestion}" if self.suggestion
                                                 else "") + f"; run without {flag} to "
                "segment anyway")

    def to_dict(self) -> dict[str, Any]:
        """JSON-able record for a prediction's metadata (the Labels layer's ``medseg_fit``)."""
        return {"model": self.model, "scan": self.scan, "fits": self.fits,
                "distance": self.distance, "suggestion": self.suggestion,
                "findings": [{"rule": f.rule, "severity": f.severity, "message": f.message}
                             for f in self.findings]}


def expected_modalities(spec: CheckpointSpec) -> list[str] | None:
    """Per input channel, the modality a model was trained on (record, else contract)."""
    if spec.training_data is not None:
        return list(spec.training_data.modalities)
    if spec.intensity:
        return [c.modality for c in spec.intensity]
    return None


def check_fit(spec: CheckpointSpec, scans: Scan | Sequence[Scan], *, model: str = "the model",
              scan_name: str | None = None) -> FitReport:
    """Compare ``scans`` (one per input channel, as for prediction) with what the model of
    ``spec`` was trained on; ``model`` and ``scan_name`` (default: the first scan's
    :attr:`~napari_medseg.scan.Scan.name`, e.g. a layer's name in napari) name them in the
    messages."""
    channels = [scans] if isinstance(scans, Scan) else list(scans)
    if not channels:
        msg = "check_fit needs a scan"
        raise ValueError(msg)
    first = channels[0]
    names = [scan_name or first.name] + [c.name for c in channels[1:]]
    report = FitReport(model=model, scan=names[0])
    record = spec.training_data
    add = report.findings.append
    if record is None:
        add(Finding("fit-unknown", "info",
                    f"{model} carries no record of its training data (made by an older "
                    "napari-medseg): only its modality and spacing are checked; judge its "
                    "output with care, or fine-tune it on your scans to record them"))
    expected = expected_modalities(spec)  # one per input scan (2.5D: not per slice)
    distances = []
    for k, scan in enumerate(channels):
        wanted = expected[k] if expected and k < len(expected) else None
        same = _check_modality(scan, names[k], wanted, model, add)
        if record is not None and k < len(record.channels):
            channel = record.channels[k]
            if same:
                _check_contrast(scan, names[k], channel, model, add)
            contract = spec.intensity[k] if k < len(spec.intensity) else None
            if same or wanted is None or scan.modality == "unknown":
                distances.append(_check_intensity(scan, names[k], channel, contract,
                                                  record.levels, model, add))
    report.distance = max(distances) if distances else None
    _check_spacing(first, names[0], spec, model, add)
    if record is not None:
        _check_body(first, names[0], record, model,
                    wanted_modality=expected[0] if expected else None, add=add)
        _check_region(first, names[0], record, model, add)
    return report


def _check_region(scan: Scan, name: str, record: TrainingDataRecord, model: str, add: Any
                  ) -> None:
    if not record.regions:
        return
    region = body_region(scan)
    if region.known and region.name not in record.regions:
        trained = " and ".join(record.regions)
        add(Finding("body-region", "warning",
                    f"{name} looks like a {region.name} {scan.modality} ({region.reason}); "
                    f"{model} was trained on the {trained}: its labels here would name the "
                    f"wrong organs; use a model trained on the {region.name}, or train one"))


def _check_modality(scan: Scan, name: str, wanted: str | None, model: str, add: Any
                    ) -> bool:
    """Add a modality finding; True when the scan has the modality the model wants."""
    if wanted is None or wanted == "unknown":
        return True
    how = f" ({scan.modality_reason})" if scan.modality_reason else ""
    if scan.modality == "unknown":
        add(Finding("modality-unknown", "warning",
                    f"the modality of {name} could not be told{how}; {model} was trained "
                    f"on {wanted}: set the scan's modality (Scan tab, or --modality) if you "
                    "know it"))
        return False
    if scan.modality != wanted:
        add(Finding("other-modality", "warning",
                    f"{name} is {scan.modality}{how} but {model} was trained on "
                    f"{wanted} scans: its labels would be meaningless; choose a model trained "
                    f"on {scan.modality}, or {_TRAIN_HINT}; if the modality is wrong, set it "
                    "(Scan tab, or --modality)"))
        return False
    return True


def _check_contrast(scan: Scan, name: str, channel: ChannelRecord, model: str, add: Any
                    ) -> None:
    if channel.modality == "MR" and channel.mr_contrast and scan.mr_contrast and (
            channel.mr_contrast != scan.mr_contrast):
        add(Finding("other-contrast", "warning",
                    f"{name} is a {scan.mr_contrast} MR but {model} was trained on "
                    f"{channel.mr_contrast}: tissue intensities are ordered differently; "
                    f"choose a {scan.mr_contrast} model or {_TRAIN_HINT}"))
    if channel.skull_stripped is True and scan.skull_stripped is False:
        add(Finding("skull", "warning",
                    f"{model} was trained on skull-stripped brains and {name} is not one "
                    "(its foreground is larger than a brain): a head keeps scalp and skull "
                    "that it will mislabel; strip the skull first (e.g. SynthStrip, HD-BET, "
                    "FSL BET) or choose a model trained with the skull"))
    elif channel.skull_stripped is False and scan.skull_stripped is True:
        add(Finding("skull", "info",
                    f"{name} looks skull-stripped; {model} was trained on heads with "
                    "their skull"))


def intensity_distance(scan_levels: Sequence[float], train: Spread) -> float:
    """Mean distance of a scan's 5-95 % percentiles from the training's, beyond the spread
    between training scans, in units of the training's median 5-95 % range.

    0 means within the training scans' own variation; 1 means off by a whole range.
    """
    idx = _inner(len(scan_levels))
    median = np.asarray(train.median)
    half_spread = (np.asarray(train.high) - np.asarray(train.low)) / 2
    scale = max(float(median[idx[-1]] - median[idx[0]]), 1e-6)
    off = np.abs(np.asarray(scan_levels)[idx] - median[idx]) - half_spread[idx]
    return float(np.mean(np.maximum(off, 0.0)) / scale)


def _inner(n: int) -> list[int]:
    """Indices of the 5, 25, 50, 75 and 95 % levels of :data:`PERCENTILE_LEVELS` (all
    levels but the outermost otherwise)."""
    return list(range(1, n - 1)) if n > 2 else list(range(n))


def _check_intensity(scan: Scan, name: str, channel: ChannelRecord,
                     contract: IntensityContract | None, levels: Sequence[float], model: str,
                     add: Any) -> float:
    _, normalised = body_percentiles(scan, contract, levels=levels,
                                     modality=contract.modality if contract else None)
    distance = intensity_distance(normalised, channel.normalised)
    if distance > INTENSITY_OFF:
        mid = len(levels) // 2
        what = (f"the body intensities of {name}, after {model}'s normalisation, have "
                f"median {normalised[mid]:.2f} and {levels[1]:g}-{levels[-2]:g} % range "
                f"{normalised[1]:.2f}-{normalised[-2]:.2f}; its training scans "
                f"{channel.normalised.median[mid]:.2f} and {channel.normalised.median[1]:.2f}-"
                f"{channel.normalised.median[-2]:.2f} (distance {distance:.2f})")
        if distance > INTENSITY_FAR:
            add(Finding("intensity", "warning",
                        f"{what}: far from what it learned, expect wrong labels; check the "
                        "modality and contrast, strip the skull if it expects that, or "
                        "fine-tune it on this scan"))
        else:
            add(Finding("intensity", "info", f"{what}: somewhat off; check the result"))
    return distance


def _check_spacing(scan: Scan, name: str, spec: CheckpointSpec, model: str, add: Any
                   ) -> None:
    record = spec.training_data
    coarsest = max(scan.spacing)
    if record is not None:
        limit, what = max(record.spacing_mm.high), "its training scans' coarsest"
    elif spec.target_spacing is not None:
        limit, what = max(spec.target_spacing), "the spacing it works at,"
    else:
        return
    if coarsest > SPACING_FACTOR * limit:
        add(Finding("spacing", "warning",
                    f"{name} has voxels up to {coarsest:.3g} mm (spacing "
                    f"{_mm(scan.spacing)}), {what} {limit:.3g} mm: {model} sees it "
                    "interpolated, so thin structures blur and boundaries along that axis are "
                    "coarse; use a scan with thinner slices, or a model trained on such "
                    "spacings"))


def _check_body(scan: Scan, name: str, record: TrainingDataRecord, model: str, *,
                wanted_modality: str | None, add: Any) -> None:
    body = body_size_mm(scan, wanted_modality if scan.modality == "unknown" else None)
    low, high = record.body_mm.low[0], record.body_mm.high[0]
    trained = f"{low:.0f} mm" if abs(high - low) < 1 else f"{low:.0f}-{high:.0f} mm"
    if body > BODY_LARGER * high:
        add(Finding("field-of-view", "warning",
                    f"the body in {name} measures {body:.0f} mm across, in {model}'s "
                    f"training scans {trained}: a larger region, probably another body part "
                    f"than it learned; choose a model trained on this region, or "
                    f"{_TRAIN_HINT}"))
    elif 0 < body < BODY_SMALLER * low:
        add(Finding("field-of-view", "info",
                    f"the body in {name} measures {body:.0f} mm across, in {model}'s "
                    f"training scans {trained}: a crop or a smaller body part; it may lack "
                    "context"))


def _mm(values: Sequence[float]) -> str:
    return " x ".join(f"{v:.3g}" for v in values) + " mm"


# --------------------------------------------------------------------------- front ends
def _name_of(source: str | Path) -> str:
    name = Path(str(source)).name
    return name.removesuffix(".safetensors") or str(source)


def check_model(source: str | Path, scans: Scan | Sequence[Scan], *, suggest: bool = True,
                entries: list[CheckpointEntry] | None = None, scan_name: str | None = None
                ) -> FitReport:
    """:func:`check_fit` for a checkpoint name or path (its header is read, no weights), and
    with ``suggest`` a better model (or "none fits") when there are warnings."""
    from napari_medseg.models.checkpoint import read_header

    path = find_checkpoint(source)
    _, spec = read_header(path)
    report = check_fit(spec, scans, model=_name_of(source), scan_name=scan_name)
    if suggest and report.warnings:
        better = suggest_model(scans, entries, exclude=path)
        report.suggestion = better.message
    return report


@dataclass
class Suggestion:
    """The best-fitting checkpoint for a scan (``entry`` ``None`` when none fits) and a
    line saying so."""

    entry: CheckpointEntry | None
    report: FitReport | None
    message: str


def suggest_model(scans: Scan | Sequence[Scan], entries: list[CheckpointEntry] | None = None,
                  *, exclude: Path | None = None) -> Suggestion:
    """The installed checkpoint that fits ``scans`` best: trained on their modality (never
    another), then fewest warnings, then closest intensities; starters first on ties.

    Reads headers only; unreadable checkpoints and ones taking another number of channels
    are skipped.
    """
    from napari_medseg.models.checkpoint import read_header

    channels = [scans] if isinstance(scans, Scan) else list(scans)
    modality = channels[0].modality
    if modality == "unknown":
        return Suggestion(None, None,
                          f"the modality of {channels[0].name} is unknown, so no model is "
                          "suggested: set it (Scan tab, or --modality)")
    ranked = []
    other_region = False
    for order, entry in enumerate(entries if entries is not None else list_checkpoints()):
        if exclude is not None and entry.path.resolve() == Path(exclude).resolve():
            continue
        try:
            _, spec = read_header(entry.path)
        except MedsegError:
            continue
        wanted = expected_modalities(spec)
        if spec.scan_channels != len(channels) or not wanted or any(
                m != s.modality for m, s in zip(wanted, channels, strict=False)):
            continue
        report = check_fit(spec, channels, model=entry.name)
        if any(f.rule == "body-region" for f in report.warnings):
            other_region = True
            continue  # never offered for another body region (a heart is no liver)
        distance = report.distance if report.distance is not None else math.inf
        ranked.append((len(report.warnings), distance, order, entry, report))
    if not ranked:
        other = " other" if exclude is not None else ""
        region = body_region(channels[0]) if other_region else None
        where = f"{region.name} " if region is not None and region.known else ""
        return Suggestion(None, None, f"no{other} installed model was trained on {where}"
                                      f"{modality} scans: {_TRAIN_HINT}")
    n_warnings, _, _, entry, report = min(ranked, key=lambda r: r[:3])
    if n_warnings:
        rules = ", ".join(sorted({f.rule for f in report.warnings}))
        return Suggestion(entry, report,
                          f"{entry.name} is the closest installed {modality} model but does "
                          f"not fit well either ({rules}): {_TRAIN_HINT}")
    return Suggestion(entry, report, f"{entry.name} was trained on {modality} scans like this "
                                     "one: use it instead")


def models_of_modality(modality: str, entries: list[CheckpointEntry] | None = None
                       ) -> list[CheckpointEntry]:
    """The installed checkpoints trained on ``modality`` for their first input channel, in
    catalog order (starters first); none for an ``"unknown"`` modality.  Headers only;
    unreadable files are skipped."""
    from napari_medseg.models.checkpoint import read_header

    if modality == "unknown":
        return []
    found = []
    for entry in entries if entries is not None else list_checkpoints():
        try:
            _, spec = read_header(entry.path)
        except MedsegError:
            continue
        wanted = expected_modalities(spec)
        if wanted and wanted[0] == modality:
            found.append(entry)
    return found


def choose_model(modality: str, *, scan: Scan | Callable[[], Scan] | None = None,
                 current: str = "", entries: list[CheckpointEntry] | None = None
                 ) -> CheckpointEntry | None:
    """The model a front end offers by default for a scan of ``modality``: ``current`` while
    it was trained on that modality (the person chose it); else, with ``scan``, the one that
    fits it best (:func:`suggest_model`: never another modality or body region, so a chest CT
    is offered no abdominal model); without a scan, the first of that modality; ``None`` when
    none qualifies.  ``scan`` may be a callable, built only when several models compete."""
    candidates = models_of_modality(modality, entries)
    chosen = [e for e in candidates if str(e.path) == current]
    if chosen:
        return chosen[0]
    if not candidates or scan is None:
        return candidates[0] if candidates else None
    try:
        return suggest_model(scan() if callable(scan) else scan, candidates).entry
    except MedsegError:  # a layer that is no scan: the first of the modality will do
        return candidates[0]


class FitError(MedsegError):
    """A strict run refused a model that does not fit the scan (the message says why)."""


def fit_job(models: Sequence[str | Path], scans: Scan | Sequence[Scan], *,
            strict: bool = False, suggest: bool = True, scan_name: str | None = None
            ) -> Job[list[FitReport]]:
    """The fit check of every model on ``scans``, as a job: a :class:`FitFinding` event per
    finding (and one, ``rule="suggestion"``, naming a better model), the reports as its result; with
    ``strict`` a model with a warning raises :class:`FitError` before any work.

    Every front end meets it through :func:`~napari_medseg.inference.segment.segment_job`
    (and the cohort job), so the CLI, the Segment tab and cohorts check alike.
    """
    reports = []
    for model in models:
        report = check_model(model, scans, suggest=suggest, scan_name=scan_name)
        for finding in report.findings:
            yield FitFinding(finding.message, level=finding.severity, rule=finding.rule,
                             model=report.model)
        if report.suggestion and not report.fits:
            yield FitFinding(report.suggestion, rule="suggestion", model=report.model)
        if strict and report.warnings:
            raise FitError(report.refusal("strict"))
        reports.append(report)
    return reports
