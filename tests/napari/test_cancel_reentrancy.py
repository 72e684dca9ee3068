"""Cancel any job at any point, press Run twice: layers, files and models stay consistent.

Core level (no viewer): the generator jobs behind every widget (segment, fine-tune, register
and fuse) are closed at many points -- which is what Cancel does at the next ``yield`` --
and must leave nothing half-done and still work afterwards.  Widget level: Cancel adds no
layer and writes no file (except the fine-tune, which keeps its last good weights as a
complete checkpoint), and a second Run while a job runs is refused with a notification,
never queued behind or interleaved with the first.  The last test kills (SIGKILL) a process
whose real napari Labels layer is being corrected and restores the edits from the journal.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import torch

from napari_medseg.events import Progress
from napari_medseg.inference import PredictOptions, Predictor
from napari_medseg.scan import LabelMap, Scan
from tests.conftest import REPO, save_tiny_ct_checkpoint
from tests.inference.conftest import Pointwise, spec_for


@pytest.fixture(scope="module")
def ct_crop(shared_data) -> Scan:
    from napari_medseg.io import read_scan

    ct = read_scan(shared_data / "ct_abdomen" / "example_ct_sm.nii.gz")
    return Scan(np.ascontiguousarray(ct.array[4:24, 10:90, 20:100]), ct.geometry, "CT")


def _close_after(job, k: int) -> list:  # type: ignore[no-untyped-def]
    """Advance ``job`` by ``k`` events and close it (Cancel); the events seen."""
    events = []
    for _ in range(k):
        try:
            events.append(next(job))
        except StopIteration:
            break
    job.close()
    with pytest.raises(StopIteration):
        next(job)
    return events


# ---------------------------------------------------------------------- core jobs
def test_predict_job_closed_at_any_point_leaves_the_predictor_as_it_was(ct_crop):
    torch.manual_seed(0)
    predictor = Predictor(Pointwise(3), spec_for(3, target_spacing=(4.0, 3.0, 3.0)),
                          device="cpu")
    options = PredictOptions(tile=(8, 48, 48), batch_size=2, keep_probabilities=True)
    reference = predictor.predict(ct_crop, options)
    n_events = len(_close_after(predictor.predict_job(ct_crop, options), 10**6))
    assert n_events > 5
    array_before = ct_crop.array.copy()
    for k in sorted({0, 1, 2, n_events // 2, n_events - 1, n_events}):
        _close_after(predictor.predict_job(ct_crop, options), k)
        np.testing.assert_array_equal(ct_crop.array, array_before)  # the input untouched
    again = predictor.predict(ct_crop, options)
    np.testing.assert_array_equal(again.labels.array, reference.labels.array)
    np.testing.assert_array_equal(again.probabilities, reference.probabilities)


@pytest.fixture
def finetune_setup(tmp_path, ct_crop):
    from napari_medseg.training import LabeledVolume

    labels = (ct_crop.array > 100).astype(np.uint8)
    volume = LabeledVolume([ct_crop], LabelMap(labels, ct_crop.geometry))
    parent = save_tiny_ct_checkpoint(tmp_path / "parent.safetensors",
                                     {0: "background", 1: "dense"})
    return parent, volume


def test_finetune_job_closed_at_any_step_keeps_the_last_good_weights(finetune_setup, tmp_path):
    from napari_medseg.models import load_checkpoint
    from napari_medseg.training import (
        AugmentOptions,
        Trainer,
        TrainOptions,
        save_new_version,
    )

    parent, volume = finetune_setup
    parent_bytes = parent.read_bytes()
    folder = tmp_path / "models"
    folder.mkdir()
    options = TrainOptions(steps=8, batch_size=1, patch_size=(8, 32, 32), device="cpu",
                           validate_every=2, augment=AugmentOptions.none())
    for n, k in enumerate((0, 1, 3, 6, 9)):
        trainer = Trainer.from_checkpoint(parent, [volume], options)
        seen = _close_after(trainer.job(), k)
        assert len(list(folder.iterdir())) == n  # the loop itself never writes
        result = trainer.last_good()
        steps = [e.done for e in seen if isinstance(e, Progress) and e.stage == "fine-tune"]
        assert result.steps_done == max(steps, default=0)
        # what the widget does after a cancel: keep the last good weights as a new version
        path = save_new_version(result, folder=folder, name="dense-ft")
        _model, spec = load_checkpoint(path)
        assert spec.provenance["steps"] == result.steps_done
    assert parent.read_bytes() == parent_bytes
    assert sorted(p.name for p in folder.iterdir()) == [
        f"dense-ft-v{i}.safetensors" for i in range(1, 6)]


def test_registration_and_fusion_closed_early_leave_the_scans_untouched():
    from napari_medseg.fusion import (
        FusionOptions,
        RegisterFuseOptions,
        RegistrationOptions,
        register_and_fuse_job,
    )
    from tests.fusion.conftest import COLIN, TEMPLATE, downsample, read_real

    fixed, moving = downsample(read_real(TEMPLATE), 6.0), downsample(read_real(COLIN), 6.0)
    before = fixed.array.copy(), moving.array.copy(), moving.geometry
    for k in (0, 1, 3, 8):
        options = RegisterFuseOptions(registration=RegistrationOptions(kind="rigid"),
                                      fusion=FusionOptions(method="weighted"), views=True,
                                      squares=4)
        _close_after(register_and_fuse_job(fixed, moving, options), k)
        np.testing.assert_array_equal(fixed.array, before[0])
        np.testing.assert_array_equal(moving.array, before[1])
        assert moving.geometry == before[2]


# ---------------------------------------------------------------------- widgets
@pytest.fixture
def shown(monkeypatch):
    from napari_medseg._napari import notify

    messages: list[str] = []
    monkeypatch.setattr(notify, "show_error", messages.append)
    monkeypatch.setattr(notify, "show_warning", messages.append)
    return messages


@pytest.fixture
def checkpoint(tmp_path):
    return save_tiny_ct_checkpoint(tmp_path / "tiny.safetensors",
                                   {0: "background", 1: "a", 2: "b"}, patch_size=(16, 48, 48))


def _segment_widget(viewer, checkpoint, tile="8 24 24"):  # type: ignore[no-untyped-def]
    from napari_medseg._napari.widgets.segment_widget import FROM_FILE, SegmentWidget

    image, _labels = viewer.open_sample("napari-medseg", "ct_abdomen")
    widget = SegmentWidget(viewer)
    widget.images.value = [image]
    widget.model.value = FROM_FILE
    widget.model_file.value = checkpoint
    widget.device.value = "cpu"
    widget.tile.value = tile
    return widget


@pytest.mark.gui
@pytest.mark.parametrize("when", ["at once", "after the first window", "late"])
def test_segment_cancelled_at_any_point_adds_no_layer(make_napari_viewer, qtbot, checkpoint,
                                                      when, tmp_path):
    viewer = make_napari_viewer()
    widget = _segment_widget(viewer, checkpoint)
    names = [layer.name for layer in viewer.layers]
    files = set(tmp_path.iterdir())
    widget.segment()
    if when == "after the first window":
        qtbot.waitUntil(lambda: widget.progress.value > 0, timeout=60_000)
    elif when == "late":
        qtbot.waitUntil(lambda: widget.progress.value >= 60, timeout=120_000)
    widget.cancel()
    qtbot.waitUntil(lambda: not widget.runner.running, timeout=60_000)
    assert [layer.name for layer in viewer.layers] == names
    assert set(tmp_path.iterdir()) == files
    assert widget.status.value == "cancelled"
    assert widget.segment_button.enabled
    if when == "late":  # and the next run works and adds exactly one layer
        widget.tile.value = "16 48 48"
        widget.segment()
        qtbot.waitUntil(lambda: not widget.runner.running, timeout=120_000)
        assert len(viewer.layers) == len(names) + 1


@pytest.mark.gui
def test_second_segment_press_is_refused_with_a_notification(make_napari_viewer, qtbot,
                                                             checkpoint, shown):
    viewer = make_napari_viewer()
    widget = _segment_widget(viewer, checkpoint, tile="16 48 48")
    n_layers = len(viewer.layers)
    widget.segment()
    widget.segment()
    assert "already running" in shown[-1]
    qtbot.waitUntil(lambda: not widget.runner.running, timeout=120_000)
    assert len(viewer.layers) == n_layers + 1  # one result, not two


@pytest.mark.gui
def test_finetune_cancel_keeps_a_complete_checkpoint_or_nothing(make_napari_viewer, qtbot,
                                                                tmp_path, monkeypatch, shown):
    from napari_medseg._napari.widgets.finetune_widget import FinetuneWidget
    from napari_medseg.models import load_checkpoint

    folder = tmp_path / "models"
    folder.mkdir()
    monkeypatch.setenv("NAPARI_MEDSEG_MODELS", str(folder))
    parent = save_tiny_ct_checkpoint(folder / "liver.safetensors",
                                     {0: "background", 1: "liver"}, patch_size=(16, 32, 32))
    viewer = make_napari_viewer()
    image, organs = viewer.open_sample("napari-medseg", "ct_abdomen")
    labels = viewer.add_labels((np.asarray(organs.data) == 5).astype(np.uint8), name="liver",
                               scale=organs.scale, translate=organs.translate,
                               affine=organs.affine.affine_matrix)
    widget = FinetuneWidget(viewer)
    widget.labels.value = labels
    widget.image.value = image
    widget.model.reset_choices()
    widget.model.value = str(parent)
    widget.device.value = "cpu"
    widget.steps.value = 500
    widget.learn_controls["learning_rate"].value = 1e-2
    widget.corrections.mark_all()
    widget.finetune()
    widget.finetune()  # a second press while it runs: refused, not queued
    assert "already running" in shown[-1], shown
    # cancel once a validation has beaten the parent: those weights are kept, once
    def gained() -> bool:
        return widget.trainer is not None and widget.trainer.last_good().best_step > 0

    qtbot.waitUntil(lambda: gained() or not widget.runner.running, timeout=180_000)
    assert widget.runner.running, (shown, widget.status.value)
    widget.cancel()
    qtbot.waitUntil(lambda: not widget.runner.running, timeout=120_000)
    saved = sorted(folder.glob("liver-ft-v*.safetensors"))
    assert len(saved) == 1  # the best validated weights, once
    _model, spec = load_checkpoint(saved[0])
    assert spec.provenance["best_step"] > 0
    assert "best validated weights were kept" in widget.status.value
    assert not [p for p in folder.iterdir() if p.name.endswith(".tmp")]
    assert widget.finetune_button.enabled
    # cancelled at once, before any validated gain: nothing is saved, and the status says so
    widget.finetune()
    widget.cancel()
    qtbot.waitUntil(lambda: not widget.runner.running, timeout=120_000)
    assert sorted(folder.glob("liver-ft-v*.safetensors")) == saved
    assert widget.status.value.startswith("cancelled"), widget.status.value


@pytest.mark.gui
def test_fuse_and_evaluate_refuse_a_second_run_and_cancel_cleanly(make_napari_viewer, qtbot,
                                                                  shown):
    from napari_medseg._napari.layers import scan_layer_data
    from napari_medseg._napari.widgets.evaluate_widget import EvaluateWidget
    from napari_medseg._napari.widgets.fuse_widget import FuseWidget
    from tests.fusion.conftest import COLIN, TEMPLATE, downsample, read_real

    viewer = make_napari_viewer()
    for scan, name in ((read_real(TEMPLATE), "icbm152"), (read_real(COLIN), "colin27")):
        data, kwargs, _ = scan_layer_data(downsample(scan, 4.0))
        kwargs["name"] = name
        viewer.add_image(data, **kwargs)
    names = [layer.name for layer in viewer.layers]
    fuse = FuseWidget(viewer)
    fuse.fixed.value, fuse.moving.value = viewer.layers["icbm152"], viewer.layers["colin27"]
    fuse.kind.value = "affine"
    fuse.run()
    fuse.run()
    assert "already running" in shown[-1]
    qtbot.waitUntil(lambda: fuse.progress.value > 0, timeout=60_000)
    fuse.cancel()
    qtbot.waitUntil(lambda: not fuse.runner.running, timeout=60_000)
    assert [layer.name for layer in viewer.layers] == names
    assert fuse.status.value == "cancelled"

    pred = viewer.add_labels((np.asarray(viewer.layers["icbm152"].data) > 60).astype(np.uint8),
                             name="pred")
    truth = viewer.add_labels((np.asarray(viewer.layers["icbm152"].data) > 50).astype(np.uint8),
                              name="truth")
    evaluate = EvaluateWidget(viewer)
    evaluate.pred.value, evaluate.truth.value = pred, truth
    evaluate.run()
    evaluate.run()
    assert "already running" in shown[-1]
    evaluate.panel.cancel()  # its Cancel button
    qtbot.waitUntil(lambda: not evaluate.runner.running, timeout=60_000)
    assert evaluate.status.value == "cancelled"
    assert evaluate.evaluation is None  # a cancelled result is dropped, not half shown
    evaluate.run()
    qtbot.waitUntil(lambda: not evaluate.runner.running, timeout=60_000)
    assert evaluate.evaluation is not None


# ---------------------------------------------------------------------- a killed session
CORRECTION_CHILD = r"""
import sys
import numpy as np
from napari.layers import Labels
from napari_medseg._napari.corrections import CorrectionTracker
from napari_medseg.training.journal import CorrectionJournal
from tests.napari.test_cancel_reentrancy import STROKES, labels_layer

path = sys.argv[1]
layer = labels_layer()
tracker = CorrectionTracker(layer)
tracker.attach_journal(CorrectionJournal(path, layer.data.shape))
for i, (z, y, x, value) in enumerate(STROKES):
    layer.selected_label = value
    layer.paint((z, y, x), value)  # napari's brush: a paint event, journaled at once
    print(i, flush=True)
"""

STROKES = [(z, 10 + 3 * i, 12 + 2 * i, 1 + i % 4) for i, z in enumerate(range(2, 14))] * 3


def labels_layer():  # type: ignore[no-untyped-def]
    from napari.layers import Labels

    layer = Labels(np.zeros((16, 64, 64), np.uint8), name="prediction")
    layer.brush_size = 6
    return layer


@pytest.mark.gui
def test_corrections_on_a_napari_layer_survive_sigkill(tmp_path):
    from napari_medseg._napari.corrections import CorrectionTracker
    from napari_medseg.training.journal import CorrectionJournal

    path = tmp_path / "prediction.corrections.jsonl"
    env = {**os.environ, "QT_QPA_PLATFORM": "offscreen", "PYTHONUNBUFFERED": "1"}
    child = subprocess.Popen([sys.executable, "-c", CORRECTION_CHILD, str(path)], cwd=REPO,
                             env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    assert child.stdout is not None
    acked = []
    deadline = time.monotonic() + 120
    while len(acked) < 20 and time.monotonic() < deadline:
        line = child.stdout.readline()
        if not line:
            break
        acked.append(int(line))
    child.send_signal(signal.SIGKILL)
    child.wait()
    assert len(acked) == 20, child.stderr.read() if child.stderr else ""
    # the expected state: the same strokes on a fresh layer, as many as were journaled
    restored = labels_layer()
    tracker = CorrectionTracker(restored)
    state = tracker.attach_journal(CorrectionJournal(path, restored.data.shape))
    assert state is not None
    for n in (len(acked), len(acked) + 1):
        expected = labels_layer()
        for z, y, x, value in STROKES[:n]:
            expected.selected_label = value
            expected.paint((z, y, x), value)
        if np.array_equal(restored.data, expected.data):
            break
    else:
        pytest.fail("the restored labels are not the acknowledged strokes")
    assert tracker.edited.sum() == (np.asarray(expected.data) > 0).sum()
    _ = Path(path).stat().st_size
