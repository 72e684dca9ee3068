"""A corrections journal belongs to one scan: its identity, not its file name, decides.

Two patients' ``ct.nii.gz`` of the same shape, each in a folder that cannot be written (the
case that used to fall back to one shared journal keyed by the file name): no edit crosses.
"""

from __future__ import annotations

import stat
from pathlib import Path

import numpy as np
import pytest

from napari_medseg.io import read_scan, write_scan
from napari_medseg.paths import journals_dir
from napari_medseg.scan import Scan
from napari_medseg.training.journal import (
    CorrectionJournal,
    JournalError,
    RestoreChoice,
    ScanIdentity,
    journal_path_for,
    kept_journals,
    list_journals,
    open_journal,
)
from tests.conftest import SAMPLE_VOLUMES

SHAPE = (6, 32, 32)


def _patient(folder: Path, corner: tuple[int, int, int]) -> Scan:
    """A crop of the bundled CT at ``corner``, saved as ``ct.nii.gz`` in a read-only
    ``folder`` (two corners: two "patients" with one file name and one shape)."""
    folder.mkdir()
    ct = read_scan(SAMPLE_VOLUMES / "ct_abdomen.nii.gz")
    z, y, x = corner
    array = np.ascontiguousarray(ct.array[z:z + SHAPE[0], y:y + SHAPE[1], x:x + SHAPE[2]])
    scan = Scan(array=array, geometry=ct.geometry, modality="CT")
    write_scan(scan, folder / "ct.nii.gz")
    folder.chmod(stat.S_IRUSR | stat.S_IXUSR)
    return read_scan(folder / "ct.nii.gz")


def _never(summary):  # a decide() that must not be called
    pytest.fail(f"asked about a journal of another scan: {summary}")


def test_two_patients_with_the_same_file_name_never_share_corrections(tmp_path) -> None:
    one = _patient(tmp_path / "patient1", (4, 30, 30))
    two = _patient(tmp_path / "patient2", (14, 50, 60))
    assert one.shape == two.shape
    assert one.source is not None
    assert one.source.name == two.source.name == "ct.nii.gz"
    id_one, id_two = ScanIdentity.of_scan(one), ScanIdentity.of_scan(two)
    assert not id_one.matches(id_two)
    path_one = journal_path_for(id_one, "prediction", scan_name="ct.nii.gz")
    path_two = journal_path_for(id_two, "prediction", scan_name="ct.nii.gz")
    assert path_one != path_two
    assert path_one.parent == path_two.parent == journals_dir()  # one documented folder

    journal, choice = open_journal(path_one, SHAPE, identity=id_one, scan="ct.nii.gz",
                                   labels="prediction", decide=_never)
    assert choice is None
    journal.record_edit([[2, 10, 10], [2, 10, 11]], 3)
    journal.record_reviewed(0, 4)

    # patient 2, same names and shape: a fresh journal, nothing asked, nothing replayed
    journal2, choice2 = open_journal(path_two, SHAPE, identity=id_two, scan="ct.nii.gz",
                                     labels="prediction", decide=_never)
    assert choice2 is None
    state = journal2.replay(np.zeros(SHAPE, np.uint8))
    assert not state.edited.any()
    assert not state.reviewed.any()

    # even a journal copied or renamed onto patient 2's name is refused, shapes equal
    path_two.unlink()
    path_two.write_bytes(path_one.read_bytes())
    with pytest.raises(JournalError, match="belongs to another scan"):
        open_journal(path_two, SHAPE, identity=id_two, scan="ct.nii.gz",
                     labels="prediction", decide=_never)
    with pytest.raises(JournalError, match="belongs to another scan"):
        CorrectionJournal(path_two, SHAPE, identity=id_two)


def test_an_old_journal_without_identity_is_not_replayed(tmp_path) -> None:
    labels = np.zeros(SHAPE, np.uint8)
    identity = ScanIdentity.of_labels(labels)
    path = tmp_path / "old.corrections.jsonl"
    CorrectionJournal(path, SHAPE).record_edit([[0, 0, 0]], 1)  # no identity in its header
    with pytest.raises(JournalError, match="does not say which scan"):
        CorrectionJournal(path, SHAPE, identity=identity)


def test_dicom_uids_take_part_in_the_identity() -> None:
    base = ScanIdentity(content_hash="sha256:aa", study_instance_uid="1.2",
                        series_instance_uid="1.2.3", sop_instances="ff")
    assert base.matches(ScanIdentity(content_hash="sha256:aa"))  # a NIfTI export of it
    assert not base.matches(ScanIdentity(content_hash="sha256:aa", series_instance_uid="9.9"))
    assert not base.matches(ScanIdentity(content_hash="sha256:bb", series_instance_uid="1.2.3"))
    assert base.digest != ScanIdentity(content_hash="sha256:aa").digest


def _journal_with_edits(identity: ScanIdentity) -> Path:
    path = journal_path_for(identity, "pred", scan_name="ct")
    journal, _ = open_journal(path, SHAPE, identity=identity, scan="ct", labels="pred",
                              decide=_never)
    journal.record_edit([[1, 1, 1], [1, 1, 2], [1, 1, 2]], 2)
    journal.record_reviewed(0, 3)
    journal.record_reviewed(0, 5)
    journal.record_reviewed(0, 5, reviewed=False)
    return path


def test_an_earlier_journal_is_offered_once_and_the_choice_is_honoured() -> None:
    identity = ScanIdentity.of_labels(np.zeros(SHAPE, np.uint8))
    path = _journal_with_edits(identity)
    asked = []

    def decide(choice):
        def answer(summary):
            asked.append(summary)
            return choice
        return answer

    # restore: the same journal, replayed, recording goes on into it
    journal, choice = open_journal(path, SHAPE, identity=identity, scan="ct", labels="pred",
                                   decide=decide(RestoreChoice.RESTORE))
    assert choice is RestoreChoice.RESTORE
    summary = asked[-1]
    assert (summary.edited_voxels, summary.reviewed_slices) == (2, 1)
    assert summary.describe().startswith("2 edited voxels and 1 reviewed slice from ")
    assert journal.replay(np.zeros(SHAPE, np.uint8)).labels[1, 1, 2] == 2

    # keep for later: set aside (listed), a fresh journal records this session
    journal, choice = open_journal(path, SHAPE, identity=identity, scan="ct", labels="pred",
                                   decide=decide(RestoreChoice.LATER))
    assert not journal.replay(np.zeros(SHAPE, np.uint8)).edited.any()
    kept = kept_journals(path)
    assert len(kept) == 1
    assert {s.path for s in list_journals()} >= {path, kept[0]}

    # the kept one is offered again next time (the live one is empty) and can be discarded
    journal, choice = open_journal(path, SHAPE, identity=identity, scan="ct", labels="pred",
                                   decide=decide(RestoreChoice.DISCARD))
    assert choice is RestoreChoice.DISCARD
    assert asked[-1].path == kept[0]
    assert not kept[0].exists()
    assert not journal.replay(np.zeros(SHAPE, np.uint8)).edited.any()
    n_asked = len(asked)
    open_journal(path, SHAPE, identity=identity, scan="ct", labels="pred", decide=_never)
    assert len(asked) == n_asked  # nothing left to ask about
