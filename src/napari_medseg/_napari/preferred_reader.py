"""napari-medseg as napari's preferred reader for the medical formats it owns.

Without a preference, napari's *File > Open* asks "MedSeg / napari builtins" for every
NIfTI, NRRD, MetaImage or DICOM file, and napari's builtin reader opens ``.nrrd`` without
its geometry (scale 1, origin 0) and cannot open ``.nii.gz``.  The first time the MedSeg
dock or the main job opens, :func:`prefer_medseg_reader` adds ``pattern -> napari-medseg``
to napari's reader preferences (``settings.plugins.extension2reader``, shown in napari's
*Preferences > Plugins*) for each of :data:`PATTERNS` - except where the person already
chose a reader for such files (``*.nrrd``, or a broader ``*.gz``).  It is done once: a
preference the person removes afterwards stays removed.  PNG, JPEG and TIFF are left to
napari (it shows them in colour; napari-medseg reduces colour to grey).

To undo it: remove the entries in napari's *Preferences > Plugins*, or call
:func:`forget_medseg_reader` (``napari-medseg napari-reader --unset``), which removes the
entries that still name napari-medseg and remembers not to add them again;
``napari-medseg napari-reader --set`` adds them back.

This only steers napari's choice where it consults preferences: *File > Open*, drag and
drop, ``napari FILE`` and ``viewer.open(path, plugin=None)``.  ``viewer.open(path)`` from
Python uses napari's builtin reader unless a plugin is named:
``viewer.open(path, plugin="napari-medseg")``.
"""

from __future__ import annotations

from fnmatch import fnmatch
from typing import Any

from napari_medseg._napari.settings import load_all, save_section

PLUGIN = "napari-medseg"
PATTERNS: tuple[str, ...] = (
    "*.nii", "*.nii.gz", "*.nrrd", "*.nhdr", "*.mha", "*.mhd", "*.dcm", "*.dicom", "*.ima",
)
SECTION = "napari_reader"  # in napari-medseg's settings file: {"offered": bool, "set": [...]}


def _napari_readers() -> Any:
    from napari.settings import get_settings

    return get_settings().plugins


def _example(pattern: str) -> str:
    """A file name the pattern matches (``*.nii.gz`` -> ``scan.nii.gz``)."""
    return "scan" + pattern.removeprefix("*")


def chosen_elsewhere(pattern: str, preferences: dict[str, str]) -> str | None:
    """The pattern of the person's preference that already decides files like ``pattern``
    (``*.gz`` decides ``*.nii.gz``), or ``None``."""
    example = _example(pattern)
    for existing, plugin in preferences.items():
        if plugin != PLUGIN and (existing == pattern or fnmatch(example, existing)):
            return existing
    return None


def readers_for(patterns: tuple[str, ...]) -> dict[str, str | None]:
    """The reader napari's preferences choose for files like each pattern (``None``: napari
    asks, or picks the only reader that can)."""
    from napari.plugins.utils import get_preferred_reader

    return {p: get_preferred_reader(_example(p)) for p in patterns}


def prefer_medseg_reader(*, again: bool = False) -> list[str]:
    """Make napari-medseg napari's reader for :data:`PATTERNS`, once; returns the patterns
    added.  ``again``: also after :func:`forget_medseg_reader` or a person's removal."""
    remembered = load_all().get(SECTION, {})
    if remembered.get("offered") and not again:
        return []
    plugins = _napari_readers()
    preferences = dict(plugins.extension2reader)
    added = [p for p in PATTERNS
             if preferences.get(p) != PLUGIN and chosen_elsewhere(p, preferences) is None]
    if added:
        plugins.extension2reader = {**preferences, **dict.fromkeys(added, PLUGIN)}
    save_section(SECTION, {"offered": True,
                           "set": sorted({*remembered.get("set", []), *added})})
    return added


def forget_medseg_reader() -> list[str]:
    """Remove the reader preferences :func:`prefer_medseg_reader` added (those that still
    name napari-medseg; a person's own choices stay) and do not add them again; returns
    the patterns removed."""
    ours = {*PATTERNS, *load_all().get(SECTION, {}).get("set", [])}
    plugins = _napari_readers()
    preferences = dict(plugins.extension2reader)
    removed = [p for p, plugin in preferences.items() if plugin == PLUGIN and p in ours]
    if removed:
        plugins.extension2reader = {p: r for p, r in preferences.items() if p not in removed}
    save_section(SECTION, {"offered": True, "set": []})
    return removed
