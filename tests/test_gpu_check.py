"""The prepared GPU check runs every step; without a GPU as a short CPU dry run (so it cannot
rot), saying plainly that no GPU was found."""

from __future__ import annotations

import json
import subprocess

import torch

from tests.conftest import REPO


def test_the_gpu_check_dry_run_runs_every_step(tmp_path) -> None:
    out = tmp_path / "gpu"
    proc = subprocess.run(["bash", str(REPO / "benchmarks" / "gpu_check.sh"), str(out),
                           "--dry"], capture_output=True, text=True, cwd=REPO, timeout=600)
    report = json.loads((out / "report.json").read_text())
    failed = {k: v.get("error") for k, v in report["steps"].items() if not v.get("ok")}
    assert proc.returncode == 0, failed
    assert set(report["steps"]) == {"env", "pytest_gpu", "inference", "train", "interactive",
                                    "torchrun"}
    summary = (out / "summary.txt").read_text()
    if not torch.cuda.is_available():
        assert "no GPU was found" in summary.splitlines()[0]
    inference = report["steps"]["inference"]
    assert inference["ours_fp32_agreement_with_monai"] > 0.99
    assert report["steps"]["train"]["steps"] > 0
    assert report["steps"]["interactive"]["median_ms"] > 0
