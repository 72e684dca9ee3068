"""The CLI's own conversion: flags built from options dataclasses, parsed back into them."""

from __future__ import annotations

import argparse

import pytest

from napari_medseg.cli import build_parser
from napari_medseg.cli.options import add_option_flags, options_from_args
from napari_medseg.errors import MedsegError
from napari_medseg.inference import PostprocessOptions, PredictOptions
from napari_medseg.inference.segment import SegmentOptions
from napari_medseg.io.convert import ConvertOptions
from napari_medseg.metrics import EvaluateOptions


def _parse(cls, argv, **fixed):  # type: ignore[no-untyped-def]
    parser = argparse.ArgumentParser()
    add_option_flags(parser, cls)
    return options_from_args(cls, parser.parse_args(argv), **fixed)


def test_no_flags_give_the_dataclass_defaults():
    assert _parse(PredictOptions, []) == PredictOptions()
    assert _parse(EvaluateOptions, []) == EvaluateOptions()
    assert _parse(ConvertOptions, []) == ConvertOptions()


def test_every_predict_flag_reaches_its_field():
    options = _parse(SegmentOptions, [
        "--combine", "vote", "--device", "cpu", "--tile", "16", "32", "32", "--overlap", "0.25",
        "--batch", "3", "--tta", "--slice-axis", "1", "--context-slices", "2", "--no-resample",
        "--largest-component", "--fill-holes", "--min-size", "50"], models=("a", "b"))
    assert options == SegmentOptions(models=("a", "b"), combine="vote", predict=PredictOptions(
        device="cpu", tile=(16, 32, 32), overlap=0.25, batch_size=3, tta=True, slice_axis=1,
        context_slices=2, resample=False, postprocess=PostprocessOptions(
            largest_component=True, fill_holes=True, min_size=50)))


def test_flags_refuse_what_the_dataclass_refuses():
    with pytest.raises(MedsegError, match=r"overlap must be in \[0, 1\).*check --overlap"):
        _parse(PredictOptions, ["--overlap", "1.5"])
    parser = argparse.ArgumentParser()
    add_option_flags(parser, PredictOptions)
    with pytest.raises(SystemExit):  # argparse itself: a slice axis that does not exist
        parser.parse_args(["--slice-axis", "3"])


def test_a_flag_that_may_be_left_to_the_job_stays_unset():
    assert _parse(ConvertOptions, []).labels is None  # decided from the content
    assert _parse(ConvertOptions, ["--labels"]).labels is True
    assert _parse(ConvertOptions, ["--nan", "fill", "--series", "2"]) == ConvertOptions(
        nan_policy="fill", series="2")
    assert _parse(EvaluateOptions, ["--classes", "1", "3", "--no-surface"]) == EvaluateOptions(
        classes=(1, 3), surface=False)


def test_the_verbs_offer_the_flags_they_always_had():
    parser = build_parser()
    verbs = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction))
    flags = {name: {s for a in p._actions for s in a.option_strings}
             for name, p in verbs.choices.items()}
    assert {"--device", "--tile", "--overlap", "--tta", "--batch", "--combine", "--slice-axis",
            "--context-slices", "--largest-component", "--fill-holes", "--min-size",
            "--no-resample", "--probabilities", "--series", "--overwrite"} <= flags["predict"]
    assert {"--classes", "--no-surface", "--json", "--csv", "--overwrite"} <= flags["evaluate"]
    assert {"--series", "--labels", "--overwrite", "--nan"} <= flags["convert"]
    assert {"--reference", "--reference-series"} <= flags["convert"]  # DICOM-SEG (#18)
    assert {"--register", "--init", "--method", "--normalisation", "--weights", "--levels",
            "--detail-rule", "--wavelet", "--transform-in", "--quality"} <= flags["fuse"]
