"""The widgets' own conversion: controls built from options dataclasses, read back into them."""

from __future__ import annotations

import pytest
from magicgui.widgets import CheckBox, ComboBox, FloatSpinBox, LineEdit, SpinBox

from napari_medseg._napari.options_form import option_controls, options_from_controls
from napari_medseg.errors import MedsegError
from napari_medseg.inference import PostprocessOptions, PredictOptions
from napari_medseg.inference.segment import SegmentOptions
from napari_medseg.metrics import EvaluateOptions

pytestmark = pytest.mark.gui


def test_one_control_per_gui_option_with_its_kind_range_and_tooltip():
    controls = option_controls(SegmentOptions, skip=("device",))
    assert list(controls) == ["strict", "tile", "overlap", "batch_size", "tta", "slice_axis",
                              "context_slices", "keep_probabilities", "resample",
                              "own_scan", "largest_component", "fill_holes", "min_size"]
    assert isinstance(controls["tile"], LineEdit)
    assert isinstance(controls["overlap"], FloatSpinBox)
    assert (controls["overlap"].min, controls["overlap"].max) == (0.0, 0.9)
    assert isinstance(controls["batch_size"], SpinBox)
    assert controls["batch_size"].value == 0  # None is shown as 0 ("planned")
    assert isinstance(controls["tta"], CheckBox)
    assert isinstance(controls["slice_axis"], ComboBox)
    assert controls["slice_axis"].choices == (0, 1, 2)
    assert controls["resample"].value is True
    assert isinstance(controls["own_scan"], CheckBox)
    assert controls["own_scan"].value is True
    assert all(c.tooltip for c in controls.values())
    assert controls["min_size"].tooltip.startswith("Drop connected components")


def test_defaults_read_back_as_the_dataclass_defaults():
    controls = option_controls(PredictOptions, skip=("device",))
    # the GUI always slices along an axis (axial first); the rest is the dataclass default
    assert options_from_controls(PredictOptions, controls) == PredictOptions(slice_axis=0)
    assert options_from_controls(EvaluateOptions, option_controls(EvaluateOptions)) == (
        EvaluateOptions())


def test_set_controls_become_the_options():
    controls = option_controls(SegmentOptions, skip=("device",))
    values = {"tile": "16, 32 32", "overlap": 0.25, "batch_size": 3, "tta": True,
              "slice_axis": 2, "context_slices": 1, "keep_probabilities": True,
              "resample": False, "own_scan": False, "largest_component": True, "fill_holes": True,
              "min_size": 40}
    for name, value in values.items():
        controls[name].value = value
    options = options_from_controls(SegmentOptions, controls, models=("m",), device="cpu")
    assert options == SegmentOptions(models=("m",), predict=PredictOptions(
        device="cpu", tile=(16, 32, 32), overlap=0.25, batch_size=3, tta=True, slice_axis=2,
        context_slices=1, keep_probabilities=True, resample=False, own_scan=False,
        postprocess=PostprocessOptions(largest_component=True, fill_holes=True, min_size=40)))


def test_a_bad_value_names_the_control():
    controls = option_controls(PredictOptions, skip=("device",))
    controls["tile"].value = "sixteen"
    with pytest.raises(MedsegError, match=r"tile must be whole numbers such as '96 96 96'"):
        options_from_controls(PredictOptions, controls)
    controls["tile"].value = "0 32 32"
    with pytest.raises(MedsegError, match=r"tile sizes must be positive.*check 'tile'"):
        options_from_controls(PredictOptions, controls)
