"""Atomic, non-clobbering writes: write into a temporary folder beside the target, then rename.

A crash or a full disk while writing leaves the target untouched (and no half-written file
under its name); formats with a detached data file (``.mhd`` + ``.raw``, ``.nhdr`` + ``.raw.gz``)
move the data file first and the header last.
"""

from __future__ import annotations

import contextlib
import shutil
import tempfile
from collections.abc import Callable, Iterator
from pathlib import Path

from napari_medseg.errors import OutputExistsError, ScanWriteError

_HEADER_SUFFIXES = (".mhd", ".nhdr")


def check_can_write(path: Path, *, overwrite: bool) -> None:
    """Raise :class:`OutputExistsError` if ``path`` exists and ``overwrite`` is false."""
    if path.exists() and not overwrite:
        msg = f"{path} already exists; choose another name or pass overwrite=True (--overwrite)"
        raise OutputExistsError(msg)
    if not path.parent.exists():
        msg = f"cannot write {path.name}: folder {path.parent} does not exist"
        raise ScanWriteError(msg)


@contextlib.contextmanager
def _temporary_folder(parent: Path) -> Iterator[Path]:
    tmp = Path(tempfile.mkdtemp(prefix=".medseg-tmp-", dir=parent))
    try:
        yield tmp
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def write_atomically(path: Path, write: Callable[[Path], None], *, overwrite: bool) -> Path:
    """Call ``write(tmp_path)`` with a temporary path of the same name, then move into place.

    Every file ``write`` creates beside ``tmp_path`` (detached data files) is moved too. An
    existing file is replaced only when ``overwrite`` is true.
    """
    path = Path(path)
    check_can_write(path, overwrite=overwrite)
    with _temporary_folder(path.parent) as tmp:
        try:
            write(tmp / path.name)
        except OSError as exc:
            msg = f"could not write {path}: {exc.strerror or exc}; nothing was changed"
            raise ScanWriteError(msg) from exc
        except RuntimeError as exc:  # ITK reports disk and format errors this way
            reason = str(exc).strip().splitlines()[-1] if str(exc).strip() else exc
            msg = f"could not write {path}: {reason}; nothing was changed"
            raise ScanWriteError(msg) from exc
        produced = sorted(tmp.iterdir(), key=lambda p: p.name.lower().endswith(_HEADER_SUFFIXES))
        if not overwrite:
            clashes = [p.name for p in produced if (path.parent / p.name).exists()]
            if clashes:
                msg = (
                    f"writing {path.name} would replace existing {', '.join(clashes)}; "
                    "choose another name or pass overwrite=True (--overwrite)"
                )
                raise OutputExistsError(msg)
        for produced_file in produced:
            produced_file.replace(path.parent / produced_file.name)
    return path
