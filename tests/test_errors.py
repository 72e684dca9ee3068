"""Messages that name a setting: each front end spells it its own way."""

from __future__ import annotations

import numpy as np
import pytest

from napari_medseg.cli.options import cli_spelling
from napari_medseg.errors import OutputExistsError, ScanReadError, render, setting
from napari_medseg.io import write_scan
from napari_medseg.scan import Geometry, Scan


def test_python_reads_keyword_arguments_and_the_cli_reads_flags():
    error = ScanReadError(
        f"use {setting('resample', False)}, {setting('tile', (48, 48, 48))}, "
        f"{setting('device', 'cpu')}, {setting('nan_policy', 'fill')}, "
        f"{setting('series', '<index or UID>')}, {setting('keep_probabilities', False)} or "
        f"{setting('overwrite')}")
    assert str(error) == (
        "use resample=False, tile=(48, 48, 48), device='cpu', nan_policy='fill', "
        "series='<index or UID>', keep_probabilities=False or overwrite=True")
    assert render(error, cli_spelling) == (
        "use --no-resample, --tile 48 48 48, --device cpu, --nan fill, --series <index or UID>, "
        "no --probabilities or --overwrite")


def test_a_setting_without_a_flag_keeps_pythons_spelling():
    error = OutputExistsError(f"pass {setting('no_such_option', 3)} or {setting('amp', False)}")
    assert render(error, cli_spelling) == "pass no_such_option=3 or amp=False"
    assert render("plain text, no setting", cli_spelling) == "plain text, no setting"


def test_the_writers_refusal_speaks_each_language(tmp_path):
    scan = Scan(np.zeros((2, 2, 2), np.float32), Geometry.identity(3))
    path = write_scan(scan, tmp_path / "a.nrrd")
    with pytest.raises(OutputExistsError, match="choose another name or pass overwrite=True"
                       ) as info:
        write_scan(scan, path)
    assert render(info.value, cli_spelling).endswith("choose another name or pass --overwrite")
