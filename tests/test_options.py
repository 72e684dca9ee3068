"""Options dataclasses that describe themselves: the fields a front end sees, and back."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal

import pytest

from napari_medseg.inference import PostprocessOptions, PredictOptions
from napari_medseg.options import build_options, option, option_fields, option_values


@dataclass(kw_only=True)
class Inner:
    size: int = option(3, low=1, high=9, help="a size")
    mode: Literal["a", "b"] = option("a", help="a mode")


@dataclass(kw_only=True)
class Outer:
    name: str = "plain"  # no option: Python only
    tile: tuple[int, ...] | None = option(None, help="a tile")
    keep: bool = option(True, help="keep it")
    inner: Inner = field(default_factory=Inner)

    def __post_init__(self) -> None:
        if self.tile is not None and any(t < 1 for t in self.tile):
            msg = f"tile sizes must be positive, got {self.tile}"
            raise ValueError(msg)


def test_fields_are_flattened_with_their_types_defaults_and_choices():
    fields = {f.name: f for f in option_fields(Outer)}
    assert list(fields) == ["tile", "keep", "size", "mode"]  # declaration order, no "name"
    assert (fields["tile"].kind, fields["tile"].item, fields["tile"].optional) == (
        tuple, int, True)
    assert (fields["keep"].kind, fields["keep"].flag, fields["keep"].label) == (
        bool, "--no-keep", "keep")
    assert fields["size"].path == ("inner", "size")
    assert fields["size"].flag == "--size"
    assert fields["mode"].choices == ("a", "b")  # from the Literal


def test_options_are_built_from_leaf_values_and_read_back():
    built = build_options(Outer, {"tile": (2, 4), "size": 5}, name="fixed", mode="b")
    assert built == Outer(name="fixed", tile=(2, 4), inner=Inner(size=5, mode="b"))
    assert option_values(built) == {"tile": (2, 4), "keep": True, "size": 5, "mode": "b"}
    assert build_options(Outer, {}) == Outer()
    with pytest.raises(TypeError, match=r"no option \['colour'\]"):
        build_options(Outer, {"colour": 1})
    with pytest.raises(ValueError, match="tile sizes must be positive"):
        build_options(Outer, {"tile": (0,)})  # the dataclass's own checks apply


def test_one_name_in_two_places_is_refused():
    @dataclass(kw_only=True)
    class Twice:
        size: int = option(1, help="outer size")
        inner: Inner = field(default_factory=Inner)

    with pytest.raises(TypeError, match=r"one name in two places: \['size'\]"):
        option_fields(Twice)


def test_predict_options_declare_what_the_cli_and_the_widget_show():
    fields = {f.name: f for f in option_fields(PredictOptions)}
    cli = [f.flag for f in fields.values() if f.option.cli]
    assert cli == ["--device", "--tile", "--overlap", "--batch", "--tta", "--slice-axis",
                   "--context-slices", "--no-resample", "--no-own-scan", "--largest-component",
                   "--fill-holes", "--min-size"]
    gui = [f.name for f in fields.values() if f.option.gui]
    assert "keep_probabilities" in gui
    assert "amp" not in gui
    assert fields["slice_axis"].choice_values == (0, 1, 2)
    options = build_options(PredictOptions, {"batch_size": 4, "min_size": 10})
    assert options == PredictOptions(batch_size=4,
                                     postprocess=PostprocessOptions(min_size=10))
