"""Choices remembered between sessions: model, device, tiles, fine-tune and fusion options.

One small JSON file, one section per dock widget::

    {"version": 1,
     "segment": {"model": ".../head-ct-tissue.safetensors", "device": "cpu", "tile": "", ...},
     "finetune": {"steps": 100, "learning_rate": 0.001, ...},
     "fuse": {"method": "wavelet", ...}, "evaluate": {"export_dir": "/data/metrics"}}

It lives in ``$NAPARI_MEDSEG_CONFIG_DIR`` when that is set, else in the platform's folder for
settings (``$XDG_CONFIG_HOME/napari-medseg``, by default ``~/.config/napari-medseg`` on
Linux).  It is rewritten atomically on every change, so a crash never leaves half a file;
an unreadable or corrupt file is ignored with a logged warning and the widgets start from
their defaults.  A remembered value a control no longer accepts (a model that was deleted,
a GPU that is gone) is skipped.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from magicgui.widgets.bases import ValueWidget

from napari_medseg.errors import MedsegError
from napari_medseg.io.atomic import write_atomically
from napari_medseg.paths import config_dir

FILENAME = "settings.json"
VERSION = 1

log = logging.getLogger(__name__)


def settings_path() -> Path:
    return config_dir() / FILENAME


def load_all(path: Path | None = None) -> dict[str, dict[str, Any]]:
    """Every section of the settings file; ``{}`` when it is missing or unreadable."""
    path = path or settings_path()
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        return {}
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        log.warning("ignoring the napari-medseg settings in %s (%s); using defaults", path, exc)
        return {}
    if not isinstance(data, dict):
        log.warning("ignoring the napari-medseg settings in %s (not a JSON object)", path)
        return {}
    return {k: v for k, v in data.items() if isinstance(v, dict)}


def save_section(section: str, values: Mapping[str, Any], path: Path | None = None) -> None:
    """Replace one section of the file (others are kept); failures are logged, not raised."""
    path = path or settings_path()
    data: dict[str, Any] = {"version": VERSION, **load_all(path)}
    data[section] = dict(values)
    text = json.dumps(data, indent=2, sort_keys=True, default=str)
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        write_atomically(path, lambda tmp: tmp.write_text(text, encoding="utf-8"),
                         overwrite=True)
    except (MedsegError, OSError) as exc:
        log.warning("could not save the napari-medseg settings to %s: %s", path, exc)


def _jsonable(value: Any) -> Any:
    if isinstance(value, Path):
        return str(value)
    if isinstance(value, tuple):
        return list(value)
    return value


class WidgetSettings:
    """The remembered choices of one dock widget: a section of the settings file.

    :meth:`bind` restores controls from the section and saves them whenever they change;
    :meth:`get` / :meth:`set` keep values that are no control (a folder last exported to).
    The file is located when the widget is created, so a changed ``$NAPARI_MEDSEG_CONFIG_DIR``
    applies to widgets created afterwards.
    """

    def __init__(self, section: str, path: Path | None = None) -> None:
        self.section = section
        self.path = path or settings_path()
        self.values: dict[str, Any] = dict(load_all(self.path).get(section, {}))

    def get(self, key: str, default: Any = None) -> Any:
        return self.values.get(key, default)

    def set(self, key: str, value: Any) -> None:
        self.values[key] = _jsonable(value)
        save_section(self.section, self.values, self.path)

    def bind(self, controls: Mapping[str, ValueWidget]) -> None:
        """Restore each control from its remembered value, then remember its changes."""
        for key, control in controls.items():
            if key in self.values:
                try:
                    control.value = self.values[key]
                except (ValueError, TypeError, KeyError) as exc:
                    log.info("not restoring %s.%s = %r: %s", self.section, key,
                             self.values[key], exc)
            control.changed.connect(lambda value, key=key: self.set(key, value))
