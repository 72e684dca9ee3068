"""Killing a process (SIGKILL) at any moment loses no recorded work and leaves no half file.

Each test runs the real core code in a child Python process, kills it at random moments
(``kill -9``: no cleanup, no ``finally``), and checks what a restarted session finds:

* a correction session: every acknowledged edit is restored from the journal, and the
  journal keeps working after any number of crashes (a torn last line is repaired);
* a fine-tune saving versions: every checkpoint on disk loads, the parent is untouched, and
  training resumes from the last good version;
* label maps and checkpoints written over an old version: the file is absent, the complete
  old one or the complete new one, never a mix.

The correction widget forwards every paint event and review mark to the same
:class:`~napari_medseg.training.journal.CorrectionJournal` at once (``_napari/corrections.py``),
so the journal is tested here at core level; ``tests/napari/test_cancel_reentrancy.py``
checks that forwarding on a real napari Labels layer.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

# (the children import this module: it imports nothing heavy at the top, so that a child
# starts in a fraction of a second)
REPO = Path(__file__).resolve().parents[1]
SHAPE = (12, 64, 64)


def _start(code: str, *args: object) -> subprocess.Popen[str]:
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONUNBUFFERED": "1"}
    return subprocess.Popen([sys.executable, "-c", code, *map(str, args)], cwd=REPO,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env)


def _read_until(child: subprocess.Popen[str], n_lines: int, timeout: float = 120) -> list[str]:
    """Acknowledgement lines of the child, ``n_lines`` of them (fewer if it exits)."""
    lines: list[str] = []
    deadline = time.monotonic() + timeout
    assert child.stdout is not None
    while len(lines) < n_lines and time.monotonic() < deadline:
        line = child.stdout.readline()
        if not line:
            break
        lines.append(line.strip())
    return lines


def _kill(child: subprocess.Popen[str], delay: float) -> int:
    time.sleep(delay)
    child.send_signal(signal.SIGKILL)
    code = child.wait()
    for stream in (child.stdout, child.stderr):
        assert stream is not None
        stream.close()
    return code


# ---------------------------------------------------------------------- corrections journal
JOURNAL_CHILD = r"""
import sys
import numpy as np
from napari_medseg.training.journal import CorrectionJournal
from tests.test_crash_safety import SHAPE, edit_for

path, session = sys.argv[1], int(sys.argv[2])
journal = CorrectionJournal(path, SHAPE, scan="ct.nii.gz")
for i in range(10**6):
    flat, value = edit_for(session, i)
    journal.record_edit(flat, value)
    print(i, flush=True)  # acknowledged: fsync'd before this line
"""


def edit_for(session: int, i: int) -> tuple[np.ndarray, int]:
    """The ``i``-th edit of a session: a deterministic stroke, large enough (up to ~0.5 MB of
    JSON) that a kill often lands in the middle of writing it."""
    rng = np.random.default_rng(1000 * session + i)
    n = int(rng.integers(1, 40_000))
    flat = rng.integers(0, int(np.prod(SHAPE)), n).astype(np.int64)
    return flat, int(session * 10 + i % 7 + 1) % 250


def _expected(counts: list[int]) -> tuple[np.ndarray, np.ndarray]:
    labels = np.zeros(SHAPE, np.uint8)
    edited = np.zeros(SHAPE, bool)
    for session, count in enumerate(counts):
        for i in range(count):
            flat, value = edit_for(session, i)
            labels.flat[flat] = value
            edited.flat[flat] = True
    return labels, edited


def _edit_records(path: Path) -> int:
    return sum(1 for line in path.read_bytes().split(b"\n") if b'"kind":"edit"' in line)


def test_corrections_survive_repeated_sigkill(tmp_path: Path) -> None:
    from napari_medseg.training.journal import CorrectionJournal

    path = tmp_path / "ct.corrections.jsonl"
    rng = np.random.default_rng(0)
    counts: list[int] = []
    before = 0
    for session in range(5):
        child = _start(JOURNAL_CHILD, path, session)
        acked = _read_until(child, int(rng.integers(1, 12)))
        assert acked, child.stderr.read() if child.stderr else ""
        assert _kill(child, float(rng.uniform(0, 0.02))) == -signal.SIGKILL
        # restart: the journal opens (a torn last line is repaired) and replays
        journal = CorrectionJournal(path, SHAPE)
        recorded = _edit_records(path) - before
        assert recorded >= len(acked), "an acknowledged edit was lost"
        assert recorded <= len(acked) + 1
        counts.append(recorded)
        before += recorded
        state = journal.replay(np.zeros(SHAPE, np.uint8))
        labels, edited = _expected(counts)
        np.testing.assert_array_equal(state.labels, labels)
        np.testing.assert_array_equal(state.edited, edited)
    assert path.read_bytes().endswith(b"\n")


def test_a_torn_last_line_is_repaired_at_every_cut(tmp_path: Path) -> None:
    """Cut the last record at every kind of place: the journal reopens, keeps the whole
    records, drops the torn one, and stays readable after the next session appends."""
    from napari_medseg.training.journal import CorrectionJournal, JournalError

    path = tmp_path / "scan.corrections.jsonl"
    journal = CorrectionJournal(path, SHAPE)
    for i in range(3):
        journal.record_edit(*edit_for(0, i))
    whole = path.read_bytes()
    last_start = whole.rstrip(b"\n").rfind(b"\n") + 1
    for cut in sorted({last_start + 1, last_start + 20, len(whole) - 100, len(whole) - 2,
                       len(whole) - 1}):
        path.write_bytes(whole[:cut])
        reopened = CorrectionJournal(path, SHAPE)
        kept = 3 if cut == len(whole) - 1 else 2  # only the newline missing: record kept
        assert _edit_records(path) == kept
        reopened.record_edit(*edit_for(1, 0))
        state = CorrectionJournal(path, SHAPE).replay(np.zeros(SHAPE, np.uint8))
        labels, _ = _expected([kept, 1])
        np.testing.assert_array_equal(state.labels, labels)
    path.write_bytes(b'{"kind":"head')  # torn header: a fresh journal
    assert CorrectionJournal(path, SHAPE).replay(np.zeros(SHAPE, np.uint8)).edited.sum() == 0
    path.write_bytes(whole[:last_start] + b"garbage\n" + whole[last_start:])
    with pytest.raises(JournalError, match="damaged at line"):
        CorrectionJournal(path, SHAPE)  # damage that is not a torn tail is still refused
    path.write_bytes(whole + b'{"kind":"edit","index":"not base64","value":7}\n')
    with pytest.raises(JournalError, match="damaged at record 5"):  # JSON, but not ours
        CorrectionJournal(path, SHAPE).replay(np.zeros(SHAPE, np.uint8))


# ---------------------------------------------------------------------- atomic writes
WRITER_CHILD = r"""
import sys
import numpy as np
from napari_medseg.scan import Geometry, LabelMap
from napari_medseg.io import write_label_map
from tests.test_crash_safety import versions

kind, target = sys.argv[1], sys.argv[2]
print("ready", flush=True)
for i in range(10**6):
    if kind == "labels":
        array = versions()[i % 2]
        write_label_map(LabelMap(array, Geometry.identity(3, (2.0, 1.0, 1.0))), target,
                        overwrite=True)
    else:
        import torch
        from napari_medseg.models import create_model, save_checkpoint
        from tests.test_crash_safety import checkpoint_spec
        torch.manual_seed(i % 2)
        model = create_model("unet", spatial_dims=3, in_channels=1, out_channels=2,
                             features=(8, 16, 32))
        save_checkpoint(model, checkpoint_spec(), target, overwrite=True)
    print(i, flush=True)
"""


def versions() -> list[np.ndarray]:
    """Two label volumes that differ everywhere (old and new), a few MB each."""
    rng = np.random.default_rng(5)
    a = rng.integers(0, 5, (40, 128, 128)).astype(np.uint8)
    return [a, (a + 1).astype(np.uint8)]


def checkpoint_spec():  # type: ignore[no-untyped-def]
    from napari_medseg.models import CheckpointSpec

    return CheckpointSpec(architecture="unet", spatial_dims=3, in_channels=1, out_channels=2,
                          options={"features": [8, 16, 32]})


def _check_labels(target: Path) -> str:
    from napari_medseg.io import read_label_map

    if not target.exists():
        return "absent"
    array = read_label_map(target).array
    for i, version in enumerate(versions()):
        if np.array_equal(array, version):
            return f"version {i}"
    pytest.fail(f"{target.name} holds neither the old nor the new label map")


def _check_checkpoint(target: Path) -> str:
    import torch

    from napari_medseg.models import create_model, load_checkpoint

    if not target.exists():
        return "absent"
    model, _ = load_checkpoint(target)
    for seed in (0, 1):
        torch.manual_seed(seed)
        expected = create_model("unet", spatial_dims=3, in_channels=1, out_channels=2,
                                features=(8, 16, 32)).state_dict()
        if all(torch.equal(v, model.state_dict()[k]) for k, v in expected.items()):
            return f"version {seed}"
    pytest.fail(f"{target.name} holds neither the old nor the new weights")


@pytest.mark.parametrize(("kind", "name"), [
    ("labels", "seg.nii.gz"), ("labels", "seg.nrrd"), ("labels", "seg.mha"),
    ("labels", "seg.mhd"), ("labels", "seg.nhdr"), ("checkpoint", "model.safetensors"),
])
def test_writes_killed_at_random_moments_leave_old_or_new(tmp_path, kind, name):
    target = tmp_path / name
    check = _check_labels if kind == "labels" else _check_checkpoint
    rng = np.random.default_rng(abs(hash(name)) % 2**32)
    seen = set()
    for _trial in range(4):
        child = _start(WRITER_CHILD, kind, target)
        assert _read_until(child, 1) == ["ready"], child.stderr.read() if child.stderr else ""
        writes = _read_until(child, int(rng.integers(0, 3)))
        _kill(child, float(rng.uniform(0, 0.4)))
        seen.add(check(target))
        seen.add(f"after {len(writes)} acknowledged")
        if writes:
            assert target.exists(), "an acknowledged write is missing"
        # whatever was left behind is hidden (temporary) or a data file of the pair, never
        # taken for the file itself
        others = [p.name for p in tmp_path.iterdir() if p.name != target.name]
        assert all(n.startswith(".") or (target.suffix in (".mhd", ".nhdr") and n.startswith(
            "seg.") and n.endswith(("raw", ".gz"))) for n in others), others
    assert seen & {"version 0", "version 1"}


@pytest.mark.parametrize("suffix", [".mhd", ".nhdr"])
def test_a_header_and_data_pair_switches_at_once(tmp_path, suffix, monkeypatch):
    """Replacing a .mhd/.nhdr pair takes two renames; a crash between them (simulated: the
    header's rename fails) leaves the old pair complete, and a finished write the new one."""
    from napari_medseg.io import read_label_map, write_label_map
    from napari_medseg.scan import Geometry, LabelMap

    old, new = versions()
    target = tmp_path / f"seg{suffix}"
    geometry = Geometry.identity(3)
    write_label_map(LabelMap(old, geometry), target)
    real_replace = Path.replace

    def crash_at_header(self: Path, other: Path) -> Path:  # type: ignore[override]
        if Path(other).name == target.name:
            msg = "killed between the two renames"
            raise KeyboardInterrupt(msg)
        return real_replace(self, other)

    monkeypatch.setattr(Path, "replace", crash_at_header)
    with pytest.raises(KeyboardInterrupt):
        write_label_map(LabelMap(new, geometry), target, overwrite=True)
    monkeypatch.undo()
    np.testing.assert_array_equal(read_label_map(target).array, old)
    write_label_map(LabelMap(new, geometry), target, overwrite=True)
    np.testing.assert_array_equal(read_label_map(target).array, new)
    data_files = [p for p in tmp_path.iterdir() if p.name != target.name
                  and not p.name.startswith(".")]
    assert len(data_files) == 2  # the new data, and the orphan of the interrupted write


# ---------------------------------------------------------------------- fine-tuning
FINETUNE_CHILD = r"""
import sys
from pathlib import Path
from napari_medseg.io import read_label_map, read_scan
from napari_medseg.training import AugmentOptions, LabeledVolume, Trainer, TrainOptions
from napari_medseg.training import save_new_version

parent, scan_path, labels_path, folder = sys.argv[1:5]
scan = read_scan(scan_path)
labels = read_label_map(labels_path, like=scan)
options = TrainOptions(steps=10**6, batch_size=1, patch_size=(8, 32, 32), device="cpu",
                       validate_every=5, patience=10**6, threads=1,
                       augment=AugmentOptions.none())
trainer = Trainer.from_checkpoint(parent, [LabeledVolume([scan], labels)], options)
for event in trainer.job():
    step = getattr(event, "done", 0)
    if step and step % 3 == 0:
        path = save_new_version(trainer.last_good(), folder=folder, name="organs-ft")
        print(path.name, flush=True)
"""


@pytest.fixture
def finetune_inputs(tmp_path, shared_data):
    """A real CT crop with its organ labels (liver, spleen, kidneys) and a tiny parent."""
    from napari_medseg.io import read_label_map, read_scan, write_label_map, write_scan
    from napari_medseg.scan import LabelMap, Scan
    from tests.conftest import save_tiny_ct_checkpoint

    ct = read_scan(shared_data / "ct_abdomen" / "example_ct_sm.nii.gz")
    seg = read_label_map(shared_data / "ct_abdomen" / "example_seg.nii.gz", like=ct)
    crop = (slice(8, 24), slice(20, 84), slice(20, 84))
    organs = np.isin(seg.array[crop], [1, 2, 3, 5]).astype(np.uint8)
    scan = Scan(np.ascontiguousarray(ct.array[crop]), ct.geometry, "CT")
    scan_path = write_scan(scan, tmp_path / "ct.nii.gz")
    labels_path = write_label_map(LabelMap(organs, ct.geometry), tmp_path / "organs.nii.gz")
    parent = save_tiny_ct_checkpoint(tmp_path / "parent.safetensors",
                                     {0: "background", 1: "organ"})
    return parent, scan_path, labels_path


def test_finetune_killed_mid_run_leaves_loadable_checkpoints(tmp_path, finetune_inputs):
    from napari_medseg.inference.catalog import list_checkpoints
    from napari_medseg.models import load_checkpoint

    parent, scan_path, labels_path = finetune_inputs
    parent_bytes = parent.read_bytes()
    folder = tmp_path / "models"
    folder.mkdir()
    rng = np.random.default_rng(3)
    for _session in range(2):
        child = _start(FINETUNE_CHILD, parent, scan_path, labels_path, folder)
        saved = _read_until(child, int(rng.integers(1, 3)), timeout=300)
        assert saved, child.stderr.read() if child.stderr else ""
        _kill(child, float(rng.uniform(0, 0.5)))
        assert parent.read_bytes() == parent_bytes
        for path in sorted(folder.glob("*.safetensors")):
            load_checkpoint(path)  # every checkpoint on disk is complete
        for name in saved:
            assert (folder / name).is_file()
        # temporary files never look like checkpoints to the model list
        listed = {e.path.name for e in list_checkpoints((folder,)) if e.path.parent == folder}
        assert listed == {p.name for p in folder.glob("*.safetensors")}
    # restart: continue from the last good version; numbering goes on without a clash
    from napari_medseg.events import run_to_end
    from napari_medseg.io import read_label_map, read_scan
    from napari_medseg.training import (
        AugmentOptions,
        LabeledVolume,
        Trainer,
        TrainOptions,
        save_new_version,
    )

    versions_on_disk = sorted(folder.glob("organs-ft-v*.safetensors"),
                              key=lambda p: int(p.stem.rsplit("-v", 1)[1]))
    last = versions_on_disk[-1]
    scan = read_scan(scan_path)
    trainer = Trainer.from_checkpoint(last, [LabeledVolume([scan], read_label_map(
        labels_path, like=scan))], TrainOptions(steps=2, batch_size=1, patch_size=(8, 32, 32),
                                                device="cpu", augment=AugmentOptions.none()))
    new = save_new_version(run_to_end(trainer.job()), folder=folder, name="organs-ft")
    assert int(new.stem.rsplit("-v", 1)[1]) == int(last.stem.rsplit("-v", 1)[1]) + 1
    assert json.loads(json.dumps(load_checkpoint(new)[1].provenance))["parent_file"] == last.name
