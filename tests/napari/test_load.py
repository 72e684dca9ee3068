"""A long session does not leak: 20 segmentations in a row, memory growth bounded.

Runs ``benchmarks/bench_load.py`` in a child process (its own RSS, on the virtual screen
pytest-xvfb provides) with the result layer removed after each run, as a person tidying up
would.  Slow (about a minute on 2 cores): ``pytest -m slow``.
"""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

from tests.conftest import REPO

pytestmark = [pytest.mark.gui, pytest.mark.slow]

#: Growth of resident memory allowed from run 5 to run 20 (MiB).  Allocator noise is about
#: +-30 MiB; a kept result layer costs about 10 MiB, so a leak of one per run would add 150.
MAX_GROWTH_MIB = 100


def test_twenty_segmentations_in_a_row_do_not_grow_memory(tmp_path):
    out = tmp_path / "load.json"
    done = subprocess.run(
        [sys.executable, str(REPO / "benchmarks" / "bench_load.py"), "--runs", "20",
         "--mode", "remove", "--json", str(out)],
        cwd=REPO, capture_output=True, text=True, timeout=900, check=False)
    assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-2000:]
    (result,) = json.loads(out.read_text())
    assert len(result["rss_mib"]) == 20
    assert result["growth_run5_to_last_mib"] < MAX_GROWTH_MIB, result
