"""Segment a cohort: a manifest of cases, shared out over processes, restartable, summarised.

A *manifest* lists the cases (:func:`read_manifest`):

* a CSV file with a header: ``case_id`` (optional) and one or more columns whose names start
  with ``input`` (``input``, or ``input_t1,input_flair``: the channels, in column order);
* a JSON file: a list (or ``{"cases": [...]}``) of paths, or of objects
  ``{"case_id": "...", "inputs": ["t1.nii.gz", "flair.nii.gz"]}`` (``"input"`` for one);
* a text file (``.txt``): one scan path per line, ``#`` starts a comment;
* a folder: every scan file in it and every sub-folder (a DICOM series) is a case.

Relative paths are relative to the manifest's folder.  The case id (by default the first
input's name without its suffix) names the output, ``OUTPUT_DIR/<case_id>.nii.gz``.

Sharing out: case ``k`` (manifest order) belongs to shard ``k % n``; under ``torchrun`` each
rank is a shard, and an explicit ``i/n`` (a Slurm array task) combines with the ranks
(:func:`effective_shard`).  Restart: a case whose output exists is skipped; outputs are
written atomically (:mod:`napari_medseg.io.atomic`), so an existing output is complete, and a
case that failed or was cut off is simply done again.  A failing case (unreadable file,
channels that do not fit the model...) is recorded with its reason and the run goes on.

Summary: a single process writes ``summary.json`` and ``summary.csv`` in the output folder.
Several shards each write ``summary-shard-I-of-N.json``; under torchrun rank 0 merges them
after a barrier, otherwise the shard that finishes last (the one that finds every shard file
present) does.  Running any shard again (all its cases are skipped) merges again.
"""

from __future__ import annotations

import csv
import io
import json
import math
import socket
import time
from collections.abc import Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from napari_medseg import distributed
from napari_medseg.errors import MedsegError, OutputExistsError
from napari_medseg.events import FitFinding, Job, Log, ProgressClock, run_to_end
from napari_medseg.inference.fit import fit_job
from napari_medseg.inference.options import PredictOptions
from napari_medseg.inference.predictor import Predictor
from napari_medseg.io import read_scan, write_label_map
from napari_medseg.io.atomic import write_atomically
from napari_medseg.io.formats import READ_SUFFIXES, check_writable_suffix, suffix_of
from napari_medseg.scan import Scan

SUMMARY_FORMAT = "napari-medseg-cohort-summary"
#: Single files that are slices of a DICOM series, not cases of their own, in a folder.
_SLICE_SUFFIXES = (".dcm", ".dicom", ".ima")
_CSV_FIELDS = ("case_id", "status", "seconds", "voxels", "shape", "output", "inputs", "shard",
               "host", "error")


class CohortError(MedsegError):
    """The manifest, the shard or the output folder of a cohort run is not usable as given."""


@dataclass(frozen=True)
class Case:
    """One entry of a manifest: its id (names the output), its scans (the model's input
    channels, in order) and its position in the manifest (decides its shard)."""

    case_id: str
    inputs: tuple[Path, ...]
    index: int


@dataclass(kw_only=True)
class CohortOptions:
    """Where outputs go and which share of the cases this process takes.

    ``suffix``: output format (``.nii.gz``, ``.nrrd``, ``.mha``...); ``overwrite``: segment
    cases whose output exists instead of skipping them; ``series``: DICOM series to read
    when a folder holds several; ``shard``: ``(i, n)``, this process takes cases ``k`` with
    ``k % n == i``; ``models``: the checkpoints whose fit is checked on every case (as
    :func:`~napari_medseg.inference.segment.segment_job` does for one scan), ``strict``: a
    case a model does not fit fails instead of being segmented.
    """

    output_dir: Path
    suffix: str = ".nii.gz"
    overwrite: bool = False
    series: str | None = None
    shard: tuple[int, int] = (0, 1)
    models: tuple[str, ...] = ()
    strict: bool = False

    def __post_init__(self) -> None:
        self.output_dir = Path(self.output_dir)
        check_writable_suffix(Path("case" + self.suffix))
        check_shard(*self.shard)

    def output_path(self, case: Case) -> Path:
        return self.output_dir / f"{case.case_id}{self.suffix}"


@dataclass
class CaseResult:
    """What happened to one case: ``status`` ``"done"`` (segmented now), ``"skipped"`` (its
    output existed), or ``"failed"`` (``error`` says why); ``seconds`` from reading to
    written; ``started``/``finished`` are Unix times."""

    case_id: str
    index: int
    status: str
    output: str
    inputs: list[str]
    seconds: float = 0.0
    shape: list[int] = field(default_factory=list)
    voxels: int = 0
    error: str = ""
    #: the fit check's warnings on this case ("model: [rule] message")
    fit_warnings: list[str] = field(default_factory=list)
    shard: str = "0/1"
    host: str = ""
    device: str = ""
    started: float = 0.0
    finished: float = 0.0


# ---------------------------------------------------------------------- manifests
def read_manifest(source: str | Path) -> list[Case]:
    """The cases of a CSV / JSON / text manifest or of a folder of scans (see module doc)."""
    source = Path(source)
    if not source.exists():
        msg = f"manifest {source} does not exist; give a CSV, JSON or text file, or a folder"
        raise CohortError(msg)
    if source.is_dir():
        entries = _folder_entries(source)
    else:
        kind = source.suffix.lower()
        try:
            text = source.read_text(encoding="utf-8-sig")
        except (OSError, UnicodeDecodeError) as error:
            msg = f"cannot read the manifest {source} ({error})"
            raise CohortError(msg) from None
        if kind == ".csv":
            entries = _csv_entries(text, source)
        elif kind == ".json":
            entries = _json_entries(text, source)
        elif kind in (".txt", ".lst", ".list"):
            entries = [(None, [line.strip()]) for line in text.splitlines()
                       if line.strip() and not line.lstrip().startswith("#")]
        else:
            msg = (f"{source.name}: a manifest is a .csv, .json or .txt file or a folder of "
                   "scans")
            raise CohortError(msg)
    base = source if source.is_dir() else source.parent
    cases = []
    for index, (case_id, inputs) in enumerate(entries):
        paths = tuple(p if p.is_absolute() else base / p for p in (Path(i) for i in inputs))
        cases.append(Case(case_id=_check_id(case_id or _default_id(paths[0]), source),
                          inputs=paths, index=index))
    if not cases:
        msg = f"the manifest {source} lists no case"
        raise CohortError(msg)
    seen: dict[str, int] = {}
    duplicates = sorted({c.case_id for c in cases if seen.setdefault(c.case_id, c.index)
                         != c.index})
    if duplicates:
        msg = (f"case ids must be unique (they name the outputs); {source} repeats "
               f"{', '.join(duplicates[:5])}; add a case_id column or field")
        raise CohortError(msg)
    return cases


def _folder_entries(folder: Path) -> list[tuple[str | None, list[str]]]:
    entries: list[tuple[str | None, list[str]]] = []
    for path in sorted(folder.iterdir()):
        if path.name.startswith("."):
            continue
        suffix = suffix_of(path)
        if path.is_dir() or (suffix in READ_SUFFIXES and suffix not in _SLICE_SUFFIXES):
            entries.append((None, [path.name]))
    return entries


def _csv_entries(text: str, source: Path) -> list[tuple[str | None, list[str]]]:
    reader = csv.DictReader(io.StringIO(text))
    header = [(h or "").strip() for h in reader.fieldnames or []]
    reader.fieldnames = header
    columns = [h for h in header if h.lower().startswith("input")]
    if not columns:
        msg = (f"{source.name} has no input column (header: {', '.join(header) or 'none'}); "
               "give a header row with 'input' (or input_1, input_2... for several channels) "
               "and optionally 'case_id'")
        raise CohortError(msg)
    entries: list[tuple[str | None, list[str]]] = []
    for line, row in enumerate(reader, start=2):
        values = [(row.get(c) or "").strip() for c in columns]
        if not any(values) and not (row.get("case_id") or "").strip():
            continue
        if not all(values):
            empty = [c for c, v in zip(columns, values, strict=True) if not v]
            msg = f"{source.name} line {line}: no path in {', '.join(empty)}"
            raise CohortError(msg)
        entries.append(((row.get("case_id") or "").strip() or None, values))
    return entries


def _json_entries(text: str, source: Path) -> list[tuple[str | None, list[str]]]:
    try:
        data = json.loads(text)
    except json.JSONDecodeError as error:
        msg = f"{source.name} is not valid JSON ({error})"
        raise CohortError(msg) from None
    if isinstance(data, dict) and "cases" in data:
        data = data["cases"]
    if not isinstance(data, list):
        msg = f"{source.name}: give a JSON list of cases, or an object with a 'cases' list"
        raise CohortError(msg)
    entries: list[tuple[str | None, list[str]]] = []
    for number, item in enumerate(data):
        if isinstance(item, str):
            entries.append((None, [item]))
            continue
        inputs = item.get("inputs", item.get("input")) if isinstance(item, dict) else None
        if isinstance(inputs, str):
            inputs = [inputs]
        if not inputs or not all(isinstance(i, str) and i for i in inputs):
            msg = (f"{source.name} case {number}: give 'inputs' (a list of paths) or 'input' "
                   f"(one path), got {item!r:.120}")
            raise CohortError(msg)
        case_id = item.get("case_id", item.get("id")) if isinstance(item, dict) else None
        entries.append((None if case_id is None else str(case_id), list(inputs)))
    return entries


def _default_id(path: Path) -> str:
    suffix = suffix_of(path)
    name = path.name
    return name[: -len(suffix)] if suffix and name.lower().endswith(suffix) else name


def _check_id(case_id: str, source: Path) -> str:
    if case_id in ("", ".", "..") or any(c in case_id for c in "/\\\0"):
        msg = (f"{source.name}: case id {case_id!r} cannot name an output file; use letters, "
               "digits, '-', '_' or '.' (no folder separators)")
        raise CohortError(msg)
    return case_id


# ---------------------------------------------------------------------- shards
def parse_shard(text: str) -> tuple[int, int]:
    """``"i/n"`` -> ``(i, n)`` with ``0 <= i < n`` (e.g. ``$SLURM_ARRAY_TASK_ID/4``)."""
    index, slash, count = text.partition("/")
    try:
        shard = int(index), int(count)
    except ValueError:
        shard = (-1, 0)
    if not slash or not 0 <= shard[0] < shard[1]:
        msg = (f"--shard takes I/N with 0 <= I < N (this process's share of N), got {text!r}; "
               "e.g. --shard 0/4 ... --shard 3/4, or --shard $SLURM_ARRAY_TASK_ID/4")
        raise CohortError(msg)
    return shard


def check_shard(index: int, count: int) -> None:
    if not 0 <= index < count:
        msg = f"shard {index}/{count} does not exist: need 0 <= index < count"
        raise CohortError(msg)


def effective_shard(shard: tuple[int, int], context: distributed.Context) -> tuple[int, int]:
    """This process's shard: the ranks of a torchrun job split the given shard further."""
    index, count = shard
    return index * context.world_size + context.rank, count * context.world_size


def cases_of_shard(cases: Sequence[Case], shard: tuple[int, int]) -> list[Case]:
    """The cases of shard ``(i, n)``: every ``n``-th case of the manifest, from the ``i``-th."""
    index, count = shard
    check_shard(index, count)
    return [c for c in cases if c.index % count == index]


def shard_summary_name(shard: tuple[int, int]) -> str:
    return f"summary-shard-{shard[0]}-of-{shard[1]}.json"


# ---------------------------------------------------------------------- the run
@dataclass
class CohortReport:
    """What a process did (``results``, its own cases) and, when it wrote the cohort's
    summary (the only process, rank 0 of torchrun, or the last shard), ``summary`` with its
    totals and the path of ``summary.json``."""

    results: list[CaseResult]
    summary: dict[str, Any] | None = None
    summary_path: Path | None = None


def _read_case(case: Case, series: str | None) -> list[Scan]:
    return [read_scan(path, series=series) for path in case.inputs]


def segment_cohort(predictor: Predictor, cases: Sequence[Case], predict: PredictOptions,
                   options: CohortOptions) -> Job[CohortReport]:
    """Segment this process's share of ``cases`` with one loaded ``predictor``; a job.

    Yields a :class:`~napari_medseg.events.Progress` per case and a :class:`Log` per case
    written or failed; writes the summaries (see module doc) and returns a
    :class:`CohortReport`.  The next case is read in a background thread while the current
    one is segmented.
    """
    context = distributed.current()
    shard = options.shard
    mine = cases_of_shard(cases, shard)
    try:
        options.output_dir.mkdir(parents=True, exist_ok=True)
    except OSError as error:
        msg = f"cannot create the output folder {options.output_dir} ({error})"
        raise CohortError(msg) from None
    started = time.time()
    host = socket.gethostname()
    label = f"{shard[0]}/{shard[1]}"
    results: list[CaseResult] = []
    todo = []
    for case in mine:
        out = options.output_path(case)
        if out.exists() and not options.overwrite:
            results.append(_result(case, "skipped", out, label, host, started))
        else:
            todo.append(case)
    clock = ProgressClock("cohort", len(mine))
    if results:
        yield Log(f"shard {label}: {len(results)} of {len(mine)} case(s) already have an output "
                  "and are skipped")
        yield clock.event(len(results), f"{len(results)} skipped")
    with ThreadPoolExecutor(max_workers=1, thread_name_prefix="medseg-read") as pool:
        pending: Future[list[Scan]] | None = (
            pool.submit(_read_case, todo[0], options.series) if todo else None)
        for k, case in enumerate(todo):
            t0 = time.perf_counter()
            result = _result(case, "failed", options.output_path(case), label, host, time.time())
            reading, pending = pending, (pool.submit(_read_case, todo[k + 1], options.series)
                                         if k + 1 < len(todo) else None)
            try:
                assert reading is not None
                scans = reading.result()
                result.shape = list(scans[0].shape)
                result.voxels = math.prod(scans[0].shape)
                fit = fit_job(options.models, scans, strict=options.strict, suggest=False)
                result.fit_warnings = [f"{r.model}: [{w.rule}] {w.message}"
                                       for r in run_to_end(fit) for w in r.warnings]
                prediction = run_to_end(predictor.predict_job(scans, predict))
                del scans
                result.device = prediction.device
                write_label_map(prediction.labels, Path(result.output),
                                overwrite=options.overwrite)
                result.status = "done"
            except OutputExistsError:  # another process wrote it meanwhile
                result.status = "skipped"
            except Exception as error:  # one bad case must not stop a cohort
                result.error = (str(error) if isinstance(error, MedsegError)
                                else f"{type(error).__name__}: {error}")
            result.seconds = time.perf_counter() - t0
            result.finished = time.time()
            results.append(result)
            if result.status == "failed":
                yield Log(f"{case.case_id}: failed: {result.error}", level="warning")
            elif result.status == "done":
                yield Log(f"{case.case_id}: wrote {result.output} ({result.seconds:.1f} s)")
            for warning in result.fit_warnings:
                yield FitFinding(f"{case.case_id}: {warning}", level="warning", rule="cohort")
            yield clock.event(len(results), f"{case.case_id}: {result.status}")
    results.sort(key=lambda r: r.index)
    return _finish(results, options, context, started, time.time())


def _result(case: Case, status: str, output: Path, shard: str, host: str, started: float
            ) -> CaseResult:
    return CaseResult(case_id=case.case_id, index=case.index, status=status, output=str(output),
                      inputs=[str(p) for p in case.inputs], shard=shard, host=host,
                      started=started, finished=started)


# ---------------------------------------------------------------------- summaries
def summarise(results: Sequence[CaseResult], started: float, finished: float,
              shards: int = 1) -> dict[str, Any]:
    """The summary document: totals (throughput over the cases segmented now) and cases."""
    done = [r for r in results if r.status == "done"]
    wall = max(finished - started, 1e-9)
    voxels = sum(r.voxels for r in done)
    totals = {
        "cases": len(results),
        "done": len(done),
        "skipped": sum(r.status == "skipped" for r in results),
        "failed": sum(r.status == "failed" for r in results),
        "wall_seconds": round(wall, 3),
        "busy_seconds": round(sum(r.seconds for r in results), 3),
        "cases_per_min": round(len(done) / wall * 60, 3),
        "voxels_per_s": round(voxels / wall, 1),
    }
    return {"format": SUMMARY_FORMAT, "format_version": 1, "shards": shards,
            "started": started, "finished": finished, "totals": totals,
            "cases": [asdict(r) for r in sorted(results, key=lambda r: r.index)]}


def _write_text(path: Path, text: str) -> Path:
    def write(tmp: Path) -> None:
        tmp.write_text(text, encoding="utf-8")

    return write_atomically(path, write, overwrite=True)


def write_summary(summary: dict[str, Any], folder: Path) -> Path:
    """``summary.json`` and ``summary.csv`` (one row per case) in ``folder``, atomically."""
    rows = io.StringIO()
    writer = csv.DictWriter(rows, fieldnames=_CSV_FIELDS, extrasaction="ignore")
    writer.writeheader()
    for case in summary["cases"]:
        writer.writerow({**case, "seconds": f"{case['seconds']:.3f}",
                         "shape": "x".join(str(s) for s in case["shape"]),
                         "inputs": ";".join(case["inputs"])})
    _write_text(folder / "summary.csv", rows.getvalue())
    return _write_text(folder / "summary.json", json.dumps(summary, indent=1))


def merge_shard_summaries(folder: Path, count: int) -> dict[str, Any] | None:
    """The cohort's summary from ``summary-shard-*-of-{count}.json``, or ``None`` while one
    is missing."""
    parts = []
    for index in range(count):
        path = folder / shard_summary_name((index, count))
        if not path.is_file():
            return None
        try:
            parts.append(json.loads(path.read_text(encoding="utf-8")))
        except (OSError, json.JSONDecodeError) as error:
            msg = f"cannot read the shard summary {path} ({error}); run that shard again"
            raise CohortError(msg) from None
    results = [CaseResult(**case) for part in parts for case in part["cases"]]
    return summarise(results, min(p["started"] for p in parts),
                     max(p["finished"] for p in parts), shards=count)


def _finish(results: list[CaseResult], options: CohortOptions, context: distributed.Context,
            started: float, finished: float) -> CohortReport:
    shard = options.shard
    own = summarise(results, started, finished, shards=shard[1])
    if shard[1] == 1:
        return CohortReport(results, own, write_summary(own, options.output_dir))
    _write_text(options.output_dir / shard_summary_name(shard), json.dumps(own, indent=1))
    if context.is_distributed:  # torchrun: wait for every rank, then rank 0 merges
        distributed.barrier()
        if not context.is_main:
            return CohortReport(results)
    merged = merge_shard_summaries(options.output_dir, shard[1])
    if merged is None:  # other shards (e.g. Slurm array tasks) still running
        return CohortReport(results)
    return CohortReport(results, merged, write_summary(merged, options.output_dir))
