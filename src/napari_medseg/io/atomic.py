"""Atomic, non-clobbering writes: write into a temporary folder beside the target, then rename.

A crash or a full disk while writing leaves the target untouched (and no half-written file
under its name); formats with a detached data file (``.mhd`` + ``.raw``, ``.nhdr`` + ``.raw.gz``)
move the data file first and the header last.  When such a pair replaces an older one, the
new data file gets a new name (``seg.1a2b3c4d.raw``) that the new header points to, so the
header's rename switches from the complete old pair to the complete new one at once.  Files
are flushed to disk (``fsync``) before the rename and the folder after it, so a power cut
cannot leave an empty file under the name either.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import tempfile
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path

from napari_medseg.errors import OutputExistsError, ScanWriteError, setting

_HEADER_SUFFIXES = (".mhd", ".nhdr")


def check_can_write(path: Path, *, overwrite: bool) -> None:
    """Raise :class:`OutputExistsError` if ``path`` exists and ``overwrite`` is false."""
    if path.exists() and not overwrite:
        msg = f"{path} already exists; choose another name or pass {setting('overwrite')}"
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


def fsync_path(path: Path) -> None:
    """Flush a written file (or a folder's entries) to disk; a no-op where unsupported."""
    flags = os.O_RDONLY | (getattr(os, "O_DIRECTORY", 0) if path.is_dir() else 0)
    try:
        descriptor = os.open(path, flags)
    except OSError:
        return
    try:
        with contextlib.suppress(OSError):
            os.fsync(descriptor)
    finally:
        os.close(descriptor)


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
                    f"choose another name or pass {setting('overwrite')}"
                )
                raise OutputExistsError(msg)
        old_data: list[Path] = []
        header = produced[-1] if produced[-1].name.lower().endswith(_HEADER_SUFFIXES) else None
        if header is not None and len(produced) > 1 and (path.parent / header.name).exists():
            # replacing a header + data pair: two renames cannot be one atomic step, so the
            # new data goes under a new name and the header's rename commits the switch
            old_data = _data_files_named_in(path.parent / header.name)
            produced = [*_rename_data_files(header, produced[:-1]), header]
        for produced_file in produced:
            fsync_path(produced_file)
        for produced_file in produced:
            produced_file.replace(path.parent / produced_file.name)
        fsync_path(path.parent)
        for stale in old_data:  # the old header's data, now referenced by nothing
            if stale.name not in {p.name for p in produced}:
                stale.unlink(missing_ok=True)
    return path


_DATA_FILE_KEYS = ("elementdatafile", "data file", "datafile")


def _data_file_line(line: str) -> tuple[str, str] | None:
    """``(key part, file name)`` of a header line naming a detached data file."""
    for sep in ("=", ":"):
        key, found, value = line.partition(sep)
        if found and key.strip().lower() in _DATA_FILE_KEYS:
            return key + sep, value.strip()
    return None


def _data_files_named_in(header: Path) -> list[Path]:
    """The detached data file an existing header names (one file in its folder), if any."""
    try:
        text = header.read_text(encoding="latin-1")
    except OSError:
        return []
    for line in text.splitlines():
        named = _data_file_line(line)
        if named is not None:
            name = named[1]
            if name and name.upper() not in ("LOCAL", "LIST") and "/" not in name and (
                    len(name.split()) == 1):
                return [header.parent / name]
            return []
    return []


def _rename_data_files(header: Path, data_files: list[Path]) -> list[Path]:
    """Give the new data files unique names and point the new header at them (unchanged
    when the header does not name each of them on a data-file line)."""
    token = uuid.uuid4().hex[:8]
    lines = header.read_text(encoding="latin-1").split("\n")
    moves = []
    for data in data_files:
        stem, dot, rest = data.name.partition(".")
        new = data.with_name(f"{stem}.{token}{dot}{rest}")
        for i, line in enumerate(lines):
            named = _data_file_line(line)
            if named is not None and named[1] == data.name:
                lines[i] = f"{named[0]} {new.name}"
                moves.append((data, new))
                break
        else:
            return data_files
    for data, new in moves:
        data.replace(new)
    header.write_text("\n".join(lines), encoding="latin-1")
    return [new for _data, new in moves]
