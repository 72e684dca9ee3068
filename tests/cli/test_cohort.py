"""``napari-medseg predict --input-list``: manifests, shards, restart, failures, torchrun."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

from napari_medseg.cli import main
from napari_medseg.distributed import Context
from napari_medseg.inference import Predictor
from napari_medseg.inference.cohort import (
    CohortError,
    cases_of_shard,
    effective_shard,
    parse_shard,
    read_manifest,
)
from napari_medseg.io import read_label_map, read_scan, write_scan
from napari_medseg.scan import Scan
from tests.conftest import save_tiny_ct_checkpoint

GOOD = ("abdomen_a", "abdomen_b", "head_a", "head_b")


@pytest.fixture(scope="module")
def cohort(shared_data, tmp_path_factory) -> Path:
    """Crops of two real CTs (4 cases), a tiny CT model, and manifests: ``good.csv`` (the 4),
    ``all.json`` (+ an unreadable file and a two-channel case for a one-channel model)."""
    folder = tmp_path_factory.mktemp("cohort")
    scans = folder / "scans"
    scans.mkdir()
    abdomen = read_scan(shared_data / "ct_abdomen" / "example_ct_sm.nii.gz")
    head = read_scan(shared_data / "ct_head" / "head_ct.nii.gz")
    crops = {
        "abdomen_a": (abdomen, np.s_[:16, 20:68, 30:78]),
        "abdomen_b": (abdomen, np.s_[14:30, 40:88, 40:88]),
        "head_a": (head, np.s_[40:56, 80:176:2, 80:176:2]),
        "head_b": (head, np.s_[70:86, 60:156:2, 60:156:2]),
    }
    for name, (scan, region) in crops.items():
        write_scan(Scan(scan.array[region].copy(), scan.geometry, "CT"),
                   scans / f"{name}.nii.gz")
    (scans / "broken.nii.gz").write_bytes(b"\x1f\x8bnot a real gzip stream" * 8)
    save_tiny_ct_checkpoint(folder / "tiny.safetensors", {0: "background", 1: "soft", 2: "bone"},
                            patch_size=(16, 32, 32))
    (folder / "good.csv").write_text(
        "case_id,input\n" + "".join(f"{name},scans/{name}.nii.gz\n" for name in GOOD))
    (folder / "all.json").write_text(json.dumps([
        *(f"scans/{name}.nii.gz" for name in GOOD), "scans/broken.nii.gz",
        {"case_id": "two_channels", "inputs": ["scans/head_a.nii.gz"] * 2}]))
    return folder


@pytest.fixture
def one_thread():
    """In-process runs use one torch thread (fast on a busy machine); restored afterwards."""
    threads = torch.get_num_threads()
    yield ["--threads", "1"]
    torch.set_num_threads(threads)


def _predict(cohort: Path, manifest: str, out: Path, *extra: str) -> int:
    return main(["predict", "--model", str(cohort / "tiny.safetensors"), "--input-list",
                 str(cohort / manifest), "--output-dir", str(out), "--device", "cpu",
                 "--quiet", *extra])


def _summary(out: Path) -> dict:
    return json.loads((out / "summary.json").read_text())


# ---------------------------------------------------------------------- manifests and shards
def test_manifest_formats_resolve_paths_and_name_cases(tmp_path) -> None:
    (tmp_path / "a.nii.gz").write_bytes(b"x")
    (tmp_path / "csv.csv").write_text("case_id,input_t1,input_t2\np1,a.nii.gz,/abs/b.nrrd\n\n")
    cases = read_manifest(tmp_path / "csv.csv")
    assert [(c.case_id, c.inputs) for c in cases] == [
        ("p1", (tmp_path / "a.nii.gz", Path("/abs/b.nrrd")))]
    (tmp_path / "list.json").write_text(json.dumps(
        {"cases": ["x/ct.nii.gz", {"id": "two", "inputs": ["c.mha", "d.mha"]},
                   {"input": "e.nrrd"}]}))
    cases = read_manifest(tmp_path / "list.json")
    assert [c.case_id for c in cases] == ["ct", "two", "e"]
    assert cases[1].inputs == (tmp_path / "c.mha", tmp_path / "d.mha")
    assert [c.index for c in cases] == [0, 1, 2]
    (tmp_path / "list.txt").write_text("# cohort\nf.nii\n\n g.nhdr \n")
    assert [c.case_id for c in read_manifest(tmp_path / "list.txt")] == ["f", "g"]
    folder = tmp_path / "scans"
    (folder / "dicom_case").mkdir(parents=True)
    for name in ("b.nrrd", "a.nii.gz", "slice.dcm", ".hidden.nii.gz", "notes.md"):
        (folder / name).write_bytes(b"x")
    assert [c.case_id for c in read_manifest(folder)] == ["a", "b", "dicom_case"]


@pytest.mark.parametrize(("text", "name", "message"), [
    ("case_id,path\np,a.nii\n", "m.csv", "no input column"),
    ("input\na.nii\n\"\"\nb.nii\n", "m.csv", None),
    ("case_id,input_1,input_2\np,a.nii,\n", "m.csv", "line 2: no path in input_2"),
    ("input\nx/ct.nii.gz\ny/ct.nii.gz\n", "m.csv", "repeats ct"),
    ("case_id,input\n../up,a.nii\n", "m.csv", "cannot name an output"),
    ('[{"case_id": "p"}]', "m.json", "give 'inputs'"),
    ("{not json", "m.json", "not valid JSON"),
    ("a.nii\n", "m.yaml", "a manifest is a .csv, .json or .txt"),
    ("case_id,input\n", "m.csv", "lists no case"),
])
def test_bad_manifests_say_what_to_fix(tmp_path, text, name, message) -> None:
    (tmp_path / name).write_text(text)
    if message is None:  # blank rows are skipped
        assert [c.case_id for c in read_manifest(tmp_path / name)] == ["a", "b"]
        return
    with pytest.raises(CohortError, match=message):
        read_manifest(tmp_path / name)


def test_shards_partition_the_manifest(tmp_path) -> None:
    (tmp_path / "m.txt").write_text("\n".join(f"c{i}.nii" for i in range(11)))
    cases = read_manifest(tmp_path / "m.txt")
    for n in (1, 2, 3, 4, 11, 12):
        taken = [c.case_id for i in range(n) for c in cases_of_shard(cases, (i, n))]
        assert sorted(taken) == sorted(c.case_id for c in cases)  # each exactly once
    assert parse_shard("3/4") == (3, 4)
    for bad in ("4/4", "-1/2", "1", "a/b", "1/0"):
        with pytest.raises(CohortError, match="--shard takes I/N"):
            parse_shard(bad)
    # torchrun ranks split an explicit shard further: 2 array tasks x 2 ranks = 4 shards
    shards = {effective_shard((i, 2), Context(rank=r, world_size=2)) for i in (0, 1)
              for r in (0, 1)}
    assert shards == {(0, 4), (1, 4), (2, 4), (3, 4)}


# ---------------------------------------------------------------------- in-process runs
def test_shards_0_and_1_of_2_segment_every_case_once(cohort, tmp_path, one_thread) -> None:
    out = tmp_path / "out"
    assert _predict(cohort, "good.csv", out, "--shard", "0/2", *one_thread) == 0
    assert not (out / "summary.json").exists()  # shard 1 has not run yet
    assert sorted(p.name for p in out.glob("*.nii.gz")) == ["abdomen_a.nii.gz", "head_a.nii.gz"]
    assert _predict(cohort, "good.csv", out, "--shard", "1/2", *one_thread) == 0
    summary = _summary(out)  # the last shard to finish merged both
    assert summary["shards"] == 2
    assert [c["case_id"] for c in summary["cases"]] == list(GOOD)
    assert [c["shard"] for c in summary["cases"]] == ["0/2", "1/2", "0/2", "1/2"]
    assert summary["totals"]["done"] == 4
    assert summary["totals"]["failed"] == 0
    assert summary["totals"]["cases_per_min"] > 0
    header = (out / "summary.csv").read_text().splitlines()[0]
    assert header == "case_id,status,seconds,voxels,shape,output,inputs,shard,host,error"
    scan = read_scan(cohort / "scans" / "head_b.nii.gz")
    assert read_label_map(out / "head_b.nii.gz", like=scan).shape == scan.shape


def test_failures_are_reported_and_a_restart_skips_finished_cases(
        cohort, tmp_path, one_thread, monkeypatch, capsys) -> None:
    loads = []
    original = Predictor.load

    def counting_load(*args, **kwargs):
        loads.append(args)
        return original(*args, **kwargs)

    monkeypatch.setattr(Predictor, "load", counting_load)
    out = tmp_path / "out"
    assert _predict(cohort, "all.json", out, *one_thread) == 1  # some cases failed
    assert len(loads) == 1  # the model is loaded once for the whole cohort
    err = capsys.readouterr().err
    assert "failed: broken:" in err
    summary = _summary(out)
    status = {c["case_id"]: c for c in summary["cases"]}
    assert [status[name]["status"] for name in GOOD] == ["done"] * 4
    assert status["broken"]["status"] == "failed"
    assert "broken.nii.gz" in status["broken"]["error"]
    assert status["two_channels"]["status"] == "failed"
    assert "takes 1 input channel(s) but got 2" in status["two_channels"]["error"]
    assert (summary["totals"]["done"], summary["totals"]["failed"]) == (4, 2)
    csv_rows = (out / "summary.csv").read_text().splitlines()
    assert len(csv_rows) == 1 + 6
    assert not (out / "broken.nii.gz").exists()

    # restart after a "crash" that lost one output: only that case (and the failures) run
    finished = {name: (out / f"{name}.nii.gz").stat().st_mtime_ns for name in GOOD}
    (out / "head_b.nii.gz").unlink()
    assert _predict(cohort, "all.json", out, *one_thread) == 1
    status = {c["case_id"]: c["status"] for c in _summary(out)["cases"]}
    assert status == {"abdomen_a": "skipped", "abdomen_b": "skipped", "head_a": "skipped",
                      "head_b": "done", "broken": "failed", "two_channels": "failed"}
    for name in ("abdomen_a", "abdomen_b", "head_a"):
        assert (out / f"{name}.nii.gz").stat().st_mtime_ns == finished[name]
    assert (out / "head_b.nii.gz").exists()


def test_cohort_usage_errors_are_one_line(cohort, tmp_path, capsys) -> None:
    model = str(cohort / "tiny.safetensors")
    assert main(["predict", "--model", model, "--input-list", str(cohort / "good.csv")]) == 1
    assert "needs both --input-list MANIFEST and --output-dir" in capsys.readouterr().err
    assert main(["predict", "--model", model]) == 1
    assert "give --input SCAN and --output LABELS" in capsys.readouterr().err
    scan = str(cohort / "scans" / "head_a.nii.gz")
    assert main(["predict", "--model", model, "--input", scan, "--output",
                 str(tmp_path / "x.nii.gz"), "--shard", "0/2"]) == 1
    assert "share out a cohort" in capsys.readouterr().err
    assert main(["predict", "--model", model, "--input-list", str(cohort / "good.csv"),
                 "--output-dir", str(tmp_path), "--shard", "2/2"]) == 1
    assert "--shard takes I/N" in capsys.readouterr().err
    assert main(["predict", "--model", model, "--input-list", str(cohort / "scans"),
                 "--output-dir", str(cohort / "scans")]) == 1
    assert "must not be the folder of input scans" in capsys.readouterr().err


# ---------------------------------------------------------------------- torchrun
def torchrun(args: list[str], cwd: Path, timeout: float = 240) -> subprocess.CompletedProcess:
    """``torchrun --standalone --nproc_per_node 2 -m napari_medseg ARGS`` (a free port)."""
    command = [sys.executable, "-m", "torch.distributed.run", "--standalone",
               "--nproc_per_node", "2", "-m", "napari_medseg", *args]
    return subprocess.run(command, cwd=cwd, capture_output=True, text=True, timeout=timeout,
                          check=False)


def test_two_processes_share_the_cohort_and_rank_0_merges(cohort, tmp_path) -> None:
    out = tmp_path / "out"
    done = torchrun(["predict", "--model", str(cohort / "tiny.safetensors"), "--input-list",
                     str(cohort / "good.csv"), "--output-dir", str(out), "--device", "cpu"],
                    cwd=tmp_path)
    assert done.returncode == 0, done.stderr[-3000:]
    assert "4 case(s) segmented" in done.stdout
    summary = _summary(out)
    assert [(c["case_id"], c["shard"], c["status"]) for c in summary["cases"]] == [
        ("abdomen_a", "0/2", "done"), ("abdomen_b", "1/2", "done"),
        ("head_a", "0/2", "done"), ("head_b", "1/2", "done")]
    assert (out / "summary-shard-0-of-2.json").is_file()
    assert (out / "summary-shard-1-of-2.json").is_file()
    # the same labels as one process (up to float rounding at class boundaries)
    predictor = Predictor.load(cohort / "tiny.safetensors", device="cpu")
    scan = read_scan(cohort / "scans" / "abdomen_b.nii.gz")
    single = predictor.predict(scan).labels.array
    shared = read_label_map(out / "abdomen_b.nii.gz", like=scan).array
    assert np.mean(single == shared) > 0.999
