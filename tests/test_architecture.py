"""The boundaries STYLE.md asks for, checked by a machine."""

from __future__ import annotations

import importlib
import pkgutil
import subprocess
import sys
from pathlib import Path

import tomllib
import yaml

import napari_medseg

REPO = Path(__file__).resolve().parents[1]
NOT_CORE = {"napari_medseg._napari", "napari_medseg.cli", "napari_medseg.__main__"}


def _top_level_modules() -> set[str]:
    return {
        f"napari_medseg.{m.name}"
        for m in pkgutil.iter_modules(napari_medseg.__path__)
    }


def test_import_linter_contract_lists_every_core_module():
    config = tomllib.loads((REPO / "pyproject.toml").read_text())
    contract = config["tool"]["importlinter"]["contracts"][0]
    listed = set(contract["source_modules"])
    core = _top_level_modules() - NOT_CORE
    assert core == listed, "add new core modules to the import-linter contract"
    assert {"napari", "qtpy", "napari_medseg._napari"} <= set(contract["forbidden_modules"])


def test_importing_the_package_loads_neither_torch_nor_qt():
    code = (
        "import sys, napari_medseg, napari_medseg.scan, napari_medseg.io; "
        "print(sorted(m for m in ('torch', 'qtpy', 'PyQt5', 'napari') if m in sys.modules))"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True
    ).stdout.strip()
    assert out == "[]"


def test_every_manifest_python_name_imports():
    manifest = yaml.safe_load((REPO / "src" / "napari_medseg" / "napari.yaml").read_text())
    for command in manifest["contributions"]["commands"]:
        module_name, _, attr = command["python_name"].partition(":")
        assert module_name.startswith("napari_medseg._napari.")
        assert callable(getattr(importlib.import_module(module_name), attr))


def test_front_ends_read_typed_events_never_the_cores_words() -> None:
    """No widget or CLI module parses a core message: plans, stages and the fold-in come as
    typed fields (``PlanReady.summary``, ``Stage``, ``Progress.fold_in``)."""
    import re

    src = Path(__file__).resolve().parents[1] / "src" / "napari_medseg"
    parsing = re.compile(r"\.message\s*(\.startswith|\.endswith|\[|\.split|\.partition)"
                         r"|metrics(\.get)?\(?\[?[\"']fold_in")
    offenders = [f"{path.relative_to(src)}:{n}" for folder in ("_napari", "cli")
                 for path in sorted((src / folder).rglob("*.py"))
                 for n, line in enumerate(path.read_text().splitlines(), start=1)
                 if parsing.search(line)]
    assert offenders == []
