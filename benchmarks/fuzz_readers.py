"""The long fuzz run of the scan readers: counts per format and per outcome.

Cases are mutated crops of the real scans (NIfTI, NRRD, MetaImage, DICOM; see
``tests/io/fuzzing.py``) drawn by Hypothesis; every reader (``read_scan``,
``read_label_map``, the napari reader) runs on each in a sandboxed worker process with an
address-space limit and a per-call deadline.  A good run has only ``scan`` and
``clear_error`` outcomes.

    python benchmarks/fuzz_readers.py --cases 5000 [--seed 7] [--workers 2] [--json out.json]

To measure an older version of the readers, put its ``src`` first on ``PYTHONPATH``.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from collections import Counter, defaultdict
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from tests.io.fuzzing import (  # noqa: E402 - the repository root must be importable first
    FAIL_OUTCOMES,
    READERS,
    ReaderPool,
    Result,
    build_seeds,
    format_table,
    generate_cases,
    tally,
)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--cases", type=int, default=5000, help="mutated inputs (default 5000)")
    parser.add_argument("--seed", type=int, default=7, help="Hypothesis seed")
    parser.add_argument("--workers", type=int, default=2, help="worker processes")
    parser.add_argument("--deadline", type=float, default=20.0, help="seconds per reader call")
    parser.add_argument("--headroom-mib", type=int, default=2048,
                        help="address space a worker may add to its size after imports")
    parser.add_argument("--readers", nargs="+", choices=READERS, default=list(READERS),
                        help="readers to run (default: all three)")
    parser.add_argument("--json", type=Path, help="write counts and failures here")
    parser.add_argument("--all-results", type=Path,
                        help="write every (case, reader, outcome) here, one JSON per line")
    args = parser.parse_args()

    start = time.perf_counter()
    seeds = build_seeds()
    cases = generate_cases(seeds, args.cases, seed=args.seed)
    generated = time.perf_counter() - start
    print(f"{len(cases)} cases from {len(seeds)} seeds, drawn in {generated:.0f} s")
    results: list[Result] = []
    with ReaderPool(workers=args.workers, deadline_s=args.deadline,
                    memory_headroom=args.headroom_mib * 1024**2) as pool:
        for n, result in enumerate(pool.run(cases, readers=args.readers), 1):
            results.append(result)
            if n % 3000 == 0:
                print(f"  {n} reader calls, {time.perf_counter() - start:.0f} s", flush=True)
    seconds = time.perf_counter() - start
    counts = tally(results)
    per_format = Counter(seed.family for seed, _ in cases)
    print(format_table(counts, {**per_format, "all": len(cases)}))
    by_reader: dict[str, Counter[str]] = defaultdict(Counter)
    for r in results:
        by_reader[r.reader][r.outcome] += 1
    for reader, c in sorted(by_reader.items()):
        print(f"  {reader}: {dict(c)}")
    slowest = max(results, key=lambda r: r.seconds)
    print(f"{len(results)} reader calls in {seconds:.0f} s; slowest {slowest.seconds:.2f} s "
          f"({slowest.seed}, {slowest.reader}, {slowest.outcome})")
    failures = [r for r in results if r.outcome in FAIL_OUTCOMES]
    for r in failures[:30]:
        print(f"FAIL {r.outcome} {r.seed} {r.reader} {r.mutations!r}\n     {r.detail[:300]}")
    if args.all_results:
        with args.all_results.open("w") as out:
            for r in results:
                out.write(json.dumps({"seed": r.seed, "reader": r.reader, "outcome": r.outcome,
                                      "mutations": repr(r.mutations),
                                      "detail": r.detail[:300]}) + "\n")
    if args.json:
        args.json.write_text(json.dumps({
            "cases": len(cases), "seed": args.seed, "seconds": seconds,
            "counts": {k: dict(v) for k, v in counts.items()},
            "cases_per_format": dict(per_format),
            "failures": [{"seed": r.seed, "reader": r.reader, "outcome": r.outcome,
                          "mutations": repr(r.mutations), "detail": r.detail}
                         for r in failures],
        }, indent=1))
    return 1 if failures else 0


if __name__ == "__main__":
    raise SystemExit(main())
