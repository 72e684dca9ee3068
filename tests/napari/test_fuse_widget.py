"""The Fuse widget on two real brains, in a shown viewer under Xvfb."""

from __future__ import annotations

import numpy as np
import pytest

from napari_medseg._napari.layers import scan_layer_data
from napari_medseg._napari.widgets.fuse_widget import FuseWidget
from tests.fusion.conftest import COLIN, TEMPLATE, downsample, read_real

pytestmark = pytest.mark.gui


def _add(viewer, scan, name):
    data, kwargs, _ = scan_layer_data(scan)
    kwargs["name"] = name
    return viewer.add_image(data, **kwargs)


def test_register_and_fuse_two_real_brains(make_napari_viewer, qtbot, tmp_path):
    fixed_scan = downsample(read_real(TEMPLATE), 3.0)
    moving_scan = downsample(read_real(COLIN), 3.0)
    viewer = make_napari_viewer(show=True)
    fixed = _add(viewer, fixed_scan, "icbm152")
    moving = _add(viewer, moving_scan, "colin27")
    widget = FuseWidget(viewer)
    widget.fixed.value = fixed
    widget.moving.value = moving
    widget.kind.value = "rigid"
    widget.method.value = "wavelet"
    widget.run()
    assert not widget.run_button.enabled
    qtbot.waitUntil(lambda: not widget.runner.running, timeout=180_000)
    names = [layer.name for layer in viewer.layers]
    assert names == ["icbm152", "colin27", "colin27 registered", "fused", "checkerboard",
                     "difference"]
    for layer in viewer.layers[2:]:
        assert layer.data.shape == fixed.data.shape
        np.testing.assert_allclose(layer.scale, fixed.scale)
        np.testing.assert_allclose(layer.translate, fixed.translate)
        np.testing.assert_allclose(layer.affine.affine_matrix, fixed.affine.affine_matrix)
    assert viewer.layers["colin27 registered"].blending == "additive"
    # nothing opaque covers the registered scan: the fused image and the views start hidden
    above = list(viewer.layers)[names.index("colin27 registered") + 1:]
    assert [layer.name for layer in above if layer.visible] == []
    assert viewer.layers["colin27 registered"].visible
    assert "hidden layers: show one to compare" in widget.status.value
    assert viewer.layers["fused"].metadata["medseg_derived"] == "fused"
    reg = widget.last_result.registration
    assert reg.final_metric < reg.initial_metric  # MI improved (lower is better)
    assert "mutual information" in widget.status.value
    viewer.layers["fused"].visible = True
    shot = viewer.screenshot(str(tmp_path / "fuse.png"), canvas_only=True)
    assert shot[..., :3].std() > 5  # something is drawn


def test_same_layer_twice_is_refused(make_napari_viewer, monkeypatch):
    from napari_medseg._napari import notify

    shown = []
    monkeypatch.setattr(notify, "show_warning", shown.append)
    viewer = make_napari_viewer()
    image = viewer.open_sample("napari-medseg", "ct_abdomen")[0]
    widget = FuseWidget(viewer)
    widget.fixed.value = image
    widget.moving.value = image
    widget.run()
    assert "two different image layers" in shown[-1]
    assert not widget.runner.running
