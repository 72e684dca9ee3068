"""Corrections helpers: shape-based slice interpolation and the crash-safe journal."""

from __future__ import annotations

import numpy as np
import pytest

from napari_medseg.geometry.interpolation import interpolate_between_slices
from napari_medseg.training.journal import (
    CorrectionJournal,
    JournalError,
    ScanIdentity,
    journal_path_for,
)


def _disc(shape: tuple[int, int], radius: float, centre: tuple[float, float]) -> np.ndarray:
    yy, xx = np.indices(shape)
    return (yy - centre[0]) ** 2 + (xx - centre[1]) ** 2 <= radius**2


def test_interpolation_blends_shapes_between_two_slices() -> None:
    labels = np.zeros((5, 40, 40), np.uint8)
    labels[0][_disc((40, 40), 4, (20, 20))] = 1
    labels[4][_disc((40, 40), 12, (20, 20))] = 1
    out = interpolate_between_slices(labels, 0, 4, axis=0)
    areas = [(out[i] == 1).sum() for i in range(5)]
    assert areas == sorted(areas)
    assert areas[0] < areas[2] < areas[4]
    expected_radius = 8
    assert abs(areas[2] - np.pi * expected_radius**2) < 0.1 * np.pi * expected_radius**2
    assert (out[0] == labels[0]).all()
    assert (out[4] == labels[4]).all()
    assert (labels[1:4] == 0).all()  # input untouched
    with pytest.raises(ValueError, match="outside"):
        interpolate_between_slices(labels, 0, 9)


def test_journal_replays_edits_and_reviewed_slices(tmp_path) -> None:
    base = np.zeros((4, 5, 6), np.uint8)
    identity = ScanIdentity.of_labels(base)
    path = journal_path_for(identity, "pred", scan_name="ct.nii.gz", folder=tmp_path)
    assert path.name == f"ct.{identity.digest}.pred.corrections.jsonl"
    journal = CorrectionJournal(path, base.shape, scan="ct.nii.gz")
    journal.record_edit([[1, 2, 3], [1, 2, 4]], 2)
    journal.record_reviewed(axis=0, slice_index=3)
    reopened = CorrectionJournal(path, base.shape)
    state = reopened.replay(base)
    assert state.labels[1, 2, 3] == 2
    assert state.labels[1, 2, 4] == 2
    assert state.edited.sum() == 2
    assert state.reviewed[3].all()
    assert state.reviewed.sum() == 30
    assert state.labeled.sum() == 32
    journal.record_volume_reviewed()
    assert reopened.replay(base).labeled.all()
    assert base.max() == 0


def test_journal_tolerates_a_torn_last_record(tmp_path) -> None:
    path = tmp_path / "scan.corrections.jsonl"
    journal = CorrectionJournal(path, (2, 3, 3))
    journal.record_edit(np.array([0, 1]), [1, 1])
    with path.open("ab") as handle:  # a crash in the middle of an append
        handle.write(b'{"kind":"edit","index":"eJz')
    state = CorrectionJournal(path, (2, 3, 3)).replay(np.zeros((2, 3, 3), np.uint8))
    assert state.edited.sum() == 2
    text = path.read_bytes().replace(b'"kind":"edit"', b'"kind":"ed', 1)
    path.write_bytes(text + b"\n{}\n")
    with pytest.raises(JournalError, match="damaged"):
        CorrectionJournal(path, (2, 3, 3)).replay(np.zeros((2, 3, 3), np.uint8))
    CorrectionJournal(tmp_path / "x.jsonl", (2, 3, 3))
    with pytest.raises(JournalError, match="grid of shape"):
        CorrectionJournal(tmp_path / "x.jsonl", (9, 9, 9))
