"""The boundaries STYLE.md asks for, checked by a machine."""

from __future__ import annotations

import importlib
import os
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


def test_no_front_end_runs_the_fit_check_itself() -> None:
    """The fit check runs in the segment and cohort jobs only, so the CLI, the Segment tab and
    cohorts check alike (a front end reads ``FitFinding`` events and ``Prediction.fit``)."""
    src = Path(__file__).resolve().parents[1] / "src" / "napari_medseg"
    offenders = [f"{path.relative_to(src)}:{n}" for folder in ("_napari", "cli")
                 for path in sorted((src / folder).rglob("*.py"))
                 for n, line in enumerate(path.read_text().splitlines(), start=1)
                 if any(name in line for name in ("check_model(", "check_fit(", "fit_job("))]
    assert offenders == []


def test_the_layers_contract_places_every_top_level_module():
    """A new top-level module must be given a layer, or the contract would not check it."""
    config = tomllib.loads((REPO / "pyproject.toml").read_text())
    layers = next(c for c in config["tool"]["importlinter"]["contracts"] if c["type"] == "layers")
    placed = {name.strip() for layer in layers["layers"] for name in layer.split("|")}
    assert _top_level_modules() <= placed, "give new top-level modules a layer in pyproject.toml"


def test_no_two_modules_import_each_other():
    """No import cycle between modules, direct or through others (lint-imports checks layers;
    this checks modules of one layer too)."""
    import grimp

    graph = grimp.build_graph("napari_medseg")
    modules = set(graph.modules)
    imports = {m: {i for i in graph.find_modules_directly_imported_by(m)
                   if i in modules and i != m and not m.startswith(i + ".")}
               for m in modules}
    # Tarjan's strongly connected components, iteratively
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    cycles: list[list[str]] = []
    for root in sorted(modules):
        if root in index:
            continue
        work = [(root, iter(sorted(imports[root])))]
        index[root] = low[root] = len(index)
        stack.append(root)
        on_stack.add(root)
        while work:
            node, children = work[-1]
            child = next(children, None)
            if child is not None:
                if child not in index:
                    index[child] = low[child] = len(index)
                    stack.append(child)
                    on_stack.add(child)
                    work.append((child, iter(sorted(imports[child]))))
                elif child in on_stack:
                    low[node] = min(low[node], index[child])
                continue
            work.pop()
            if work:
                low[work[-1][0]] = min(low[work[-1][0]], low[node])
            if low[node] == index[node]:
                component = []
                while True:
                    member = stack.pop()
                    on_stack.discard(member)
                    component.append(member)
                    if member == node:
                        break
                if len(component) > 1:
                    cycles.append(sorted(component))
    assert cycles == [], f"modules that import each other: {cycles}"


def test_opening_a_scan_loads_the_tabs_libraries_in_the_background():
    """napari imports our reader to open a scan: torch and the jobs then load in a daemon
    thread (so that the dock opens without a multi-second freeze), not before."""
    code = (
        "import sys\n"
        "from napari_medseg._napari import reader, warm_up\n"
        "from napari_medseg._napari.sample_data import sample_dir\n"
        "print('torch' in sys.modules)\n"
        "layers = reader.read_layers(str(sample_dir() / 'ct_abdomen.nii.gz'))\n"
        "print(len(layers), warm_up.finished.wait(120), 'torch' in sys.modules,\n"
        "      'napari_medseg.training.job' in sys.modules)\n"
        "from vispy.visuals.line.dash_atlas import _make_pattern\n"
        "print(_make_pattern.cache_info().currsize > 0)\n"  # the first Labels layer's patterns
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         check=True, timeout=300).stdout.split()
    assert out == ["False", "1", "True", "True", "True", "True"]


def test_a_scan_read_in_a_thread_of_a_qt_application_still_loads_the_libraries():
    """In a Qt application the loading waits for a timer of the GUI thread (napari draws the
    scan meanwhile); a reader called in another thread has no event loop to run that timer,
    so there it starts at once - else the dock would wait for it forever."""
    code = (
        "import threading\n"
        "from qtpy.QtWidgets import QApplication\n"
        "app = QApplication([])\n"
        "from napari_medseg._napari import reader, warm_up\n"
        "from napari_medseg._napari.sample_data import sample_dir\n"
        "path = str(sample_dir() / 'ct_abdomen.nii.gz')\n"
        "t = threading.Thread(target=reader.read_layers, args=(path,)); t.start(); t.join()\n"
        "print(warm_up.finished.wait(120), warm_up.running())\n"
    )
    env = {**os.environ, "QT_QPA_PLATFORM": "offscreen"}
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         check=True, timeout=300, env=env).stdout.split()
    assert out == ["True", "False"]
