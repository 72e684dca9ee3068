"""Fuzzing every reader with mutated real scans: a valid scan or our clear error, nothing else.

Each case runs in a worker process under an address-space limit with a per-call deadline
(see ``tests/io/fuzzing.py``), so a segfault, a hang or an absurd allocation is counted
instead of taking the test run down.  CI runs a short derandomised sample; the long run is
``python benchmarks/fuzz_readers.py --cases 5000`` (or ``pytest -m slow`` here).
"""

from __future__ import annotations

import os
from collections import Counter

import pytest

from tests.data_root import missing_reason
from tests.io.fuzzing import (
    FAIL_OUTCOMES,
    OK_OUTCOMES,
    SAMPLE_VOLUMES,
    SHARED_DATA,
    ReaderPool,
    Result,
    Seed,
    build_seeds,
    format_table,
    generate_cases,
    tally,
)

#: Cases in the CI run (3 reader calls each); MEDSEG_FUZZ_CASES overrides.
CI_CASES = int(os.environ.get("MEDSEG_FUZZ_CASES", "500"))
WORKERS = min(2, os.cpu_count() or 1)


@pytest.fixture(scope="module")
def seeds() -> list[Seed]:
    if not (SHARED_DATA.is_dir() and SAMPLE_VOLUMES.is_dir()):
        pytest.skip(missing_reason())
    return build_seeds()


@pytest.fixture(scope="module")
def pool():
    with ReaderPool(workers=WORKERS, deadline_s=20.0) as running:
        yield running


def _by_name(seeds: list[Seed], name: str) -> Seed:
    return next(s for s in seeds if s.name == name)


def _report(results: list[Result]) -> str:
    failures = [r for r in results if r.outcome not in OK_OUTCOMES]
    lines = [f"{r.outcome} {r.seed} {r.reader} {r.mutations!r}: {r.detail[:400]}"
             for r in failures[:10]]
    return "\n".join(lines)


def test_every_seed_reads_as_a_scan(seeds, pool) -> None:
    """The unmutated seeds are valid scans for every reader (else the fuzzing proves nothing);
    only read_label_map refuses the scans that hold fractional values."""
    results = list(pool.run([(seed, ()) for seed in seeds]))
    bad = [r for r in results if r.outcome != "scan" and r.reader != "read_label_map"]
    assert not bad, _report(bad)
    assert {r.family for r in results} == {"nifti", "nrrd", "mha", "dicom"}


#: Inputs that crashed, hung, exhausted memory or raised a foreign exception before the
#: readers were fixed; each must now end in a clear error.
REGRESSIONS = [
    # MetaIO segfaulted on a header listing NDims twice
    ("mha-ct-raw", (("text_dup", "NDims", "-1"),)),
    # MetaIO parsed a header line with a non-ASCII key and crashed on a bad NDims
    ("mha-ct-raw", (("overwrite", 0.7, True, "e5"), ("text_set", "NDims", (32767, 7, 7)))),
    # NDims = 0 reached SimpleITK's Image constructor (RuntimeError)
    ("mhd-ct", (("text_set", "NDims", "0"),)),
    # CompressedDataSize is allocated by MetaIO as given
    ("mha-ct-zlib", (("text_set", "CompressedDataSize", "100000000000"),)),
    # a data file name with a NUL byte (ValueError from our own header check, found by the
    # long run)
    ("mhd-ct", (("text_set", "BinaryDataByteOrderMSB", "0 0 0"), ("overwrite", 1.0, True, "00"))),
    # a NRRD whose detached data is /dev/urandom with 10^9 voxels (a hang, then 2 GB), and a
    # gzip NRRD claiming 10^9 voxels (2 GB allocated and zeroed before the stream ran out)
    ("nhdr-mr", (("text_set", "data file", "/dev/urandom"),
                 ("text_set", "sizes", (1000, 1000, 1000)))),
    ("nrrd-mr-gzip", (("text_set", "sizes", (1000, 1000, 1000)),)),
    # a .nii.gz claiming 10^9 voxels allocated 2-8 GB before inflating (MemoryError)
    ("nifti-ct-gz", (("nifti_dims", (1000, 1000, 1000), 3),)),
    ("nifti2-ct-gz", (("nifti_dims", (2147483647, 2, 1), 3),)),
    # a non-ASCII descrip field (UnicodeDecodeError) and a singular direction (ValueError)
    ("nifti-2d", (("overwrite", 0.31, True, "c3c3c3"),)),
    ("nifti-2d", (("nifti_field", "srow", 1, 3060331), ("nifti_field", "pixdim", 0, -1.0))),
    # GDCM allocated 1.3 GB for a zero-length Rows element (seconds per 9 KB file)
    ("dicom-mr-series", (("dicom_length", "rows", 0, -1),)),
    # ... and 0.7 GB for an unknown VR ("UY") in the file meta information
    ("dicom-mr-series", (("overwrite", 0.31640625, True, "5559", 1),)),
    # InstanceNumber 'nan' (ValueError), a position of 1e308 (infinite spacing)
    ("dicom-mr-series", (("dicom_set", "instance_number", "nan", 2),
                         ("dicom_set", "position", "RGB", -1))),
    ("dicom-mr-series", (("dicom_set", "position", "1e308", 0),)),
    # a JPEG 2000 frame whose pixel data length is absurd
    ("dicom-ct-jpeg2000", (("dicom_length", "pixel_data", 3, -1),)),
    ("dicom-ct-jpeg2000", (("dicom_set", "rows", 65535, -1), ("dicom_set", "columns", 65535, -1))),
]


def test_inputs_that_used_to_crash_now_get_a_clear_error(seeds) -> None:
    """Run with only 512 MiB of address space to spare: reading a few KB must not need it."""
    cases = [(_by_name(seeds, name), mutations) for name, mutations in REGRESSIONS]
    with ReaderPool(workers=WORKERS, deadline_s=20.0, memory_headroom=512 * 1024**2) as pool:
        results = list(pool.run(cases))
    assert len(results) == 3 * len(REGRESSIONS)
    failures = [r for r in results if r.outcome not in OK_OUTCOMES]
    assert not failures, _report(failures)
    assert sum(r.outcome == "clear_error" for r in results) >= 2 * len(REGRESSIONS)
    assert max(r.seconds for r in results) < 10, "a reader took longer than 10 s"


def _fuzz(seeds: list[Seed], pool: ReaderPool, n: int, seed: int) -> list[Result]:
    cases = generate_cases(seeds, n, seed=seed)
    assert len(cases) == n
    return list(pool.run(cases))


def test_fuzzed_inputs_end_in_a_scan_or_a_clear_error(seeds, pool) -> None:
    """A short derandomised run: every reader, every format, no crash/hang/foreign error."""
    results = _fuzz(seeds, pool, CI_CASES, seed=2026)
    counts = tally(results)
    cases = Counter(r.family for r in results if r.reader == "read_scan")
    table = format_table(counts, cases)
    assert all(cases[f] >= CI_CASES // 10 for f in ("nifti", "nrrd", "mha", "dicom")), table
    failed = sum(counts["all"][o] for o in FAIL_OUTCOMES)
    assert failed == 0, table + "\n" + _report(results)
    # the mutations are not all refused at the door: some still read as scans
    assert counts["all"]["scan"] > 0
    assert counts["all"]["clear_error"] > 0


@pytest.mark.slow
def test_fuzzed_inputs_long_run(seeds, pool) -> None:
    """The long run (5,000 cases, 15,000 reader calls); ``pytest -m slow``."""
    results = _fuzz(seeds, pool, 5000, seed=7)
    counts = tally(results)
    cases = Counter(r.family for r in results if r.reader == "read_scan")
    failed = sum(counts["all"][o] for o in FAIL_OUTCOMES)
    assert failed == 0, format_table(counts, cases) + "\n" + _report(results)
