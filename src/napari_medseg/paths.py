"""Where napari-medseg keeps a person's own files: settings and corrections journals.

One folder, the configured data folder: ``$NAPARI_MEDSEG_CONFIG_DIR`` when it is set, else the
platform's per-user settings folder (``$XDG_CONFIG_HOME/napari-medseg``, by default
``~/.config/napari-medseg`` on Linux; ``%APPDATA%\\napari-medseg`` on Windows;
``~/Library/Application Support/napari-medseg`` on macOS).  Inside it:

* ``settings.json``: the widgets' remembered choices;
* ``corrections/``: one journal per label layer and scan (``$NAPARI_MEDSEG_JOURNAL_DIR``
  overrides this folder alone);
* ``interactive-memory.json``: what a person taught the interactive engine (accepted
  objects' appearance), used for the next object of the same name on any scan.

Nothing here is ever written beside a person's scans.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

CONFIG_ENV = "NAPARI_MEDSEG_CONFIG_DIR"
JOURNAL_ENV = "NAPARI_MEDSEG_JOURNAL_DIR"


def config_dir() -> Path:
    """``$NAPARI_MEDSEG_CONFIG_DIR``, else the platform's per-user settings folder."""
    override = os.environ.get(CONFIG_ENV)
    if override:
        return Path(override).expanduser()
    if sys.platform == "win32":
        base = Path(os.environ.get("APPDATA") or Path.home() / "AppData" / "Roaming")
    elif sys.platform == "darwin":
        base = Path.home() / "Library" / "Application Support"
    else:
        base = Path(os.environ.get("XDG_CONFIG_HOME") or Path.home() / ".config")
    return base / "napari-medseg"


def journals_dir() -> Path:
    """The one folder of corrections journals: ``$NAPARI_MEDSEG_JOURNAL_DIR``, else
    ``<config_dir()>/corrections``."""
    override = os.environ.get(JOURNAL_ENV)
    if override:
        return Path(override).expanduser()
    return config_dir() / "corrections"


def memory_path() -> Path:
    """The interactive engine's memory: ``<config_dir()>/interactive-memory.json``."""
    return config_dir() / "interactive-memory.json"
