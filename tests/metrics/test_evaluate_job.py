"""The evaluate verb's core job: a progress event per class, the same numbers as evaluate()."""

from __future__ import annotations

import numpy as np
import pytest

from napari_medseg.errors import GeometryMismatchError, OutputExistsError
from napari_medseg.events import Progress, run_to_end
from napari_medseg.metrics import EvaluateOptions, evaluate, evaluate_job
from napari_medseg.scan import Geometry, LabelMap


@pytest.fixture
def pair() -> tuple[LabelMap, LabelMap]:
    truth = np.zeros((12, 20, 20), np.uint8)
    truth[2:8, 4:12, 4:12] = 1
    truth[4:10, 12:18, 10:18] = 3
    geometry = Geometry.identity(3, (2.0, 1.0, 1.0))
    pred = LabelMap(np.roll(truth, 1, axis=2), geometry, {0: "background", 1: "liver",
                                                          3: "spleen"}, display_name="pred")
    return pred, LabelMap(truth, geometry, display_name="truth")


def test_one_event_per_class_and_the_numbers_of_evaluate(pair):
    pred, truth = pair
    events = []
    result = run_to_end(evaluate_job(pred, truth), events.append)
    assert [(e.done, e.total) for e in events if isinstance(e, Progress)] == [(1, 2), (2, 2)]
    assert events[-1].message == "class 2 of 2 (class 3)"
    assert result == evaluate(pred, truth)
    assert [r.name for r in result.rows] == ["class 1", "class 3"]  # the reference's names
    assert [r.pred_name for r in result.rows] == ["liver", "spleen"]  # matched by value
    assert 0.7 < result.rows[0].dice < 1.0


def test_options_choose_classes_and_skip_surfaces(pair):
    pred, truth = pair
    result = run_to_end(evaluate_job(pred, truth, EvaluateOptions(classes=(3,), surface=False)))
    assert [r.label for r in result.rows] == [3]
    assert np.isnan(result.rows[0].hd95_mm)
    assert result.rows[0].dice == evaluate(pred, truth, classes=[3]).rows[0].dice


def test_closing_between_classes_stops_it(pair):
    job = evaluate_job(*pair)
    next(job)
    job.close()
    with pytest.raises(StopIteration):
        next(job)


def test_grids_that_differ_are_named(pair):
    pred, truth = pair
    moved = LabelMap(truth.array, Geometry.identity(3, (2.0, 1.0, 1.5)), display_name="truth")
    with pytest.raises(GeometryMismatchError, match=r"'pred' and reference 'truth'.*spacing"):
        run_to_end(evaluate_job(pred, moved))


def test_the_table_is_written_atomically_and_never_over_a_file(pair, tmp_path):
    result = evaluate(*pair)
    path = result.write_csv(tmp_path / "m.csv")
    assert path.read_text().splitlines()[0].startswith("label,name,dice")
    path.write_text("keep")
    with pytest.raises(OutputExistsError):
        result.write_csv(path)
    assert path.read_text() == "keep"
    result.write_csv(path, overwrite=True)
    assert len(path.read_text().splitlines()) == 3
    assert sorted(p.name for p in tmp_path.iterdir()) == ["m.csv"]
