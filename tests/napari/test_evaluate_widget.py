"""The Evaluate widget against the core metrics, on real organ labels."""

from __future__ import annotations

import csv

import numpy as np
import pytest

from napari_medseg._napari.widgets.evaluate_widget import EvaluateWidget
from napari_medseg.errors import OutputExistsError
from napari_medseg.metrics import evaluate
from napari_medseg.scan import LabelMap

pytestmark = pytest.mark.gui


def test_table_matches_core_metrics_and_exports_csv(make_napari_viewer, qtbot, tmp_path):
    viewer = make_napari_viewer()
    _image, truth = viewer.open_sample("napari-medseg", "ct_abdomen")
    shifted = np.roll(np.asarray(truth.data), 2, axis=2)  # a prediction 2 voxels off
    pred = viewer.add_labels(shifted, name="pred", scale=truth.scale,
                             translate=truth.translate, affine=truth.affine.affine_matrix)
    widget = EvaluateWidget(viewer)
    widget.pred.value = pred
    widget.truth.value = truth
    widget.run()
    qtbot.waitUntil(lambda: widget.evaluation is not None, timeout=60_000)
    geometry = _geometry(truth)
    expected = evaluate(LabelMap(shifted, geometry), LabelMap(np.asarray(truth.data), geometry))
    assert widget.table.rowCount() == len(expected.rows)
    liver = next(i for i, r in enumerate(expected.rows) if r.label == 5)
    assert widget.table.item(liver, 1).text() == f"{expected.rows[liver].dice:.3f}"
    assert 0.5 < expected.rows[liver].dice < 1.0
    assert "mean Dice" in widget.status.value
    out = widget.export(tmp_path / "metrics.csv")
    rows = list(csv.DictReader(out.open()))
    assert len(rows) == len(expected.rows)
    out.write_text("keep")
    with pytest.raises(OutputExistsError):
        widget.export(out)  # a file is replaced only through the save dialog's question
    assert out.read_text() == "keep"


def _geometry(layer):
    from napari_medseg._napari.layers import geometry_from_layer_meta, layer_meta

    return geometry_from_layer_meta(layer_meta(layer), layer.ndim)
