"""What kind of scan a file holds: the modality, MR contrast and skull stripping, and why.

:func:`read_modality` looks, in this order, at

1. explicit modality codes: our own ``medseg_modality`` key, DICOM Modality (0008,0060),
   MetaImage ``Modality`` (``MET_MOD_MR``...);
2. free-text header fields: NRRD ``content`` and other descriptions, NIfTI ``descrip`` /
   ``intent_name`` / ``aux_file``, DICOM SeriesDescription (words such as ``CT``, ``MRI``,
   ``T1``, ``MPRAGE``, ``FLAIR``, ``PET``);
3. the file name (``head_ct``, ``sub-01_T1w``, ``flair``), as a hint;
4. the intensities of a 3D scan: CT in Hounsfield units has air at about -1000 HU and soft
   tissue around 0 HU; MR is non-negative integers in arbitrary units with no air at
   -1000 and is not piecewise constant (a label map is).

The first that decides wins; when none does the modality is ``"unknown"`` rather than a wild
guess.  The result says how it was decided (:attr:`ModalityGuess.reason`), so that a person
can see it and override it (Scan tab, ``--modality``).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

import numpy as np
import numpy.typing as npt

from napari_medseg.scan import MODALITIES, MR_CONTRASTS

#: Where a decision came from, strongest first.
SOURCES = ("header", "name", "intensities", "person", "none")

#: DICOM / MetaImage modality codes and what napari-medseg calls them.
_CODES = {
    "CT": "CT", "MR": "MR", "MRI": "MR", "PT": "PT", "PET": "PT", "US": "US",
    "CR": "XR", "DX": "XR", "MG": "XR", "RF": "XR", "XA": "XR", "RG": "XR", "DR": "XR",
    "XR": "XR",
}
#: Codes that say nothing about the image (keep looking).
_NO_CODE = {"", "UNKNOWN", "OT", "OTHER", "NONE"}
_CODE_KEYS = (
    ("medseg_modality", "the medseg_modality header key"),
    ("dicom_modality", "DICOM Modality"),
    ("0008|0060", "DICOM Modality"),
    ("Modality", "MetaImage Modality"),
)
#: Free-text header keys, as our readers name them (NRRD fields come as ``NRRD_<field>``).
_TEXT_KEY_WORDS = ("content", "descrip", "description", "intent_name", "aux_file", "protocol",
                   "sequence", "comment", "series")

_MODALITY_TOKENS = {
    "CT": {"ct", "cta", "cect", "ncct", "cbct", "hounsfield"},
    "MR": {"mr", "mri", "mrt", "mprage", "spgr", "fspgr", "tse", "fse", "swi", "dwi", "dti",
           "bold", "fiesta", "stir", "tirm", "t1w", "t2w", "pdw", "flair", "t1", "t2", "t1c",
           "t1ce", "t1gd"},
    "PT": {"pet", "fdg", "suv", "psma"},
    "US": {"ultrasound", "sonography"},
}
_MODALITY_PHRASES = {
    "CT": ("computed tomography",),
    "MR": ("magnetic resonance", "proton density"),
    "PT": ("positron emission",),
}
_CONTRAST_TOKENS = {
    "T1": {"t1", "t1w", "t1c", "t1ce", "t1gd", "mprage", "spgr", "fspgr"},
    "T2": {"t2", "t2w"},
    "FLAIR": {"flair", "tirm"},
    "PD": {"pd", "pdw"},
}

#: Voxels sampled (at most) for the intensity rules: fractions of a few % need no more.
_SAMPLE = 200_000
#: HU ranges of air and of soft tissue/fat/fluid.
_AIR_HU = (-1100.0, -900.0)
_SOFT_HU = (-200.0, 300.0)
#: A skull-stripped brain is 0.9-2 litres of tissue in a zero background; a head is more.
_BRAIN_ML = (900.0, 2000.0)
_MORE_THAN_A_BRAIN_ML = 2500.0
#: Fraction of neighbours with equal values above which an image is a label map.
_LABEL_LIKE = 0.6


@dataclass(frozen=True)
class ModalityGuess:
    """The modality of a scan and how it was decided.

    Attributes
    ----------
    modality
        A code of :data:`napari_medseg.scan.MODALITIES` (``"unknown"`` when not told).
    reason
        How it was decided, for people: ``"DICOM Modality"``, ``"NIfTI descrip 'T1 MPRAGE'"``,
        ``"intensities: 31 % of voxels at air (-1000 HU) ..."``.
    source
        ``"header"``, ``"name"``, ``"intensities"``, ``"person"`` or ``"none"``.
    mr_contrast
        ``"T1"``, ``"T2"``, ``"FLAIR"`` or ``"PD"`` where a header or the name says; else
        ``None``.
    skull_stripped
        For MR: ``True`` when the scan looks like a skull-stripped brain (0.9-2 l of tissue in
        an exactly-zero background), ``False`` when its foreground is larger than any brain
        (so it is not a skull-stripped brain), ``None`` when it cannot be told.
    """

    modality: str
    reason: str
    source: str
    mr_contrast: str | None = None
    skull_stripped: bool | None = None

    def __post_init__(self) -> None:
        if self.modality not in MODALITIES:
            msg = f"modality must be one of {', '.join(MODALITIES)}, got {self.modality!r}"
            raise ValueError(msg)
        if self.source not in SOURCES:
            msg = f"source must be one of {', '.join(SOURCES)}, got {self.source!r}"
            raise ValueError(msg)
        if self.mr_contrast is not None and self.mr_contrast not in MR_CONTRASTS:
            msg = f"mr_contrast must be one of {', '.join(MR_CONTRASTS)} or None"
            raise ValueError(msg)

    def describe(self) -> str:
        """One line: ``"MR T1 (NIfTI descrip 'T1 MPRAGE')"``."""
        what = " ".join(x for x in (self.modality, self.mr_contrast or "") if x)
        if self.skull_stripped:
            what += ", skull-stripped"
        return f"{what} ({self.reason})"


def read_modality(array: npt.NDArray[Any], metadata: dict[str, str], *, name: str = "",
                  spacing: tuple[float, ...] | None = None) -> ModalityGuess:
    """Modality, MR contrast and skull stripping of a scan, from headers, name, intensities.

    ``array`` is ``(Z, Y, X)`` or ``(Y, X)``; ``metadata`` the header fields a reader keeps;
    ``name`` the file (or folder) name; ``spacing`` in mm (array-axis order) lets the
    skull-stripping guess measure the foreground in ml.
    """
    modality, reason, source = _from_codes(metadata)
    texts = _header_texts(metadata)
    stem = _stem(name)
    if modality is None and piecewise_constant_fraction(array) > _LABEL_LIKE:
        # a label map named after its scan ("ct_abdomen_organs") is no CT
        modality, reason, source = ("unknown", "intensities: piecewise constant, like a label "
                                    "map, not a scan", "none")
    if modality is None:
        for label, text in texts:
            found = _modality_in(text)
            if found is not None:
                modality, reason, source = found, f"{label} {text[:60]!r}", "header"
                break
    if modality is None and stem:
        found = _modality_in(stem)
        if found is not None:
            modality, reason, source = found, f"file name {stem!r}", "name"
    if modality is None:
        modality, reason = _from_intensities(array)
        source = "intensities" if modality != "unknown" else "none"
    contrast = None
    if modality == "MR":
        for text in [t for _, t in texts] + [stem]:
            contrast = _contrast_in(text)
            if contrast is not None:
                break
    stripped = _skull_stripped(array, spacing) if modality == "MR" else None
    return ModalityGuess(modality=modality, reason=reason, source=source,
                         mr_contrast=contrast, skull_stripped=stripped)


# --------------------------------------------------------------------------- headers, name
def _from_codes(metadata: dict[str, str]) -> tuple[str | None, str, str]:
    for key, label in _CODE_KEYS:
        raw = str(metadata.get(key, "")).strip()
        code = raw.upper().removeprefix("MET_MOD_")
        if code in _NO_CODE:
            continue
        if code in _CODES:
            return _CODES[code], f"{label} {raw!r}", "header"
        return "unknown", f"{label} {raw!r}, a modality napari-medseg has no models for", "header"
    return None, "", "none"


def _header_texts(metadata: dict[str, str]) -> list[tuple[str, str]]:
    """``(label, text)`` of the free-text header fields, e.g. ``("NIfTI descrip", "T1")``."""
    out = []
    for key, value in metadata.items():
        lowered = key.lower()
        text = str(value).strip()
        if not text or lowered.startswith("medseg_") or not any(
                word in lowered for word in _TEXT_KEY_WORDS):
            continue
        if lowered in ("descrip", "intent_name", "aux_file"):
            label = f"NIfTI {lowered}"
        elif lowered.startswith("nrrd_"):
            label = f"NRRD {key[5:]}"
        elif lowered.startswith("dicom_"):
            label = f"DICOM {key[6:]}"
        else:
            label = f"header {key}"
        out.append((label, text))
    return out


def _stem(name: str) -> str:
    from napari_medseg.scan import strip_image_suffix

    return strip_image_suffix(name.replace("\\", "/").rsplit("/", 1)[-1]) if name else ""


def _tokens(text: str) -> set[str]:
    return set(re.split(r"[^a-z0-9]+", text.lower())) - {""}


def _modality_in(text: str) -> str | None:
    """The one modality a text names (``None`` when it names none, or several)."""
    tokens, lowered = _tokens(text), " ".join(re.split(r"[^a-z0-9]+", text.lower()))
    found = {m for m, words in _MODALITY_TOKENS.items() if tokens & words}
    found |= {m for m, phrases in _MODALITY_PHRASES.items()
              if any(p in lowered for p in phrases)}
    return found.pop() if len(found) == 1 else None


def _contrast_in(text: str) -> str | None:
    tokens = _tokens(text)
    found = {c for c, words in _CONTRAST_TOKENS.items() if tokens & words}
    if "proton density" in " ".join(re.split(r"[^a-z0-9]+", text.lower())):
        found.add("PD")
    if {"FLAIR", "T2"} <= found:  # a T2-FLAIR is a FLAIR
        found.discard("T2")
    return found.pop() if len(found) == 1 else None


# --------------------------------------------------------------------------- intensities
def _sample(array: npt.NDArray[Any]) -> npt.NDArray[np.float64]:
    flat = array.ravel()
    return flat[:: max(1, flat.size // _SAMPLE)].astype(np.float64)


def piecewise_constant_fraction(array: npt.NDArray[Any]) -> float:
    """Fraction of non-zero voxels equal to their neighbour along the last axis.

    About 0.9 or more for label maps (regions of one value), below 0.25 for scans (noise
    makes neighbours differ): measured on every shared scan and label map.
    """
    if array.ndim < 2 or array.shape[-1] < 2:
        return 0.0
    sub = array[:: max(1, array.shape[0] // 16), :: max(1, array.shape[-2] // 128)]
    nonzero = sub[..., 1:] != 0
    if not nonzero.any():
        return 1.0
    return float((sub[..., 1:] == sub[..., :-1])[nonzero].mean())


def _from_intensities(array: npt.NDArray[Any]) -> tuple[str, str]:
    if array.ndim != 3:
        return "unknown", "no header or name says, and a 2D image's intensities do not tell"
    if array.size == 0 or not np.issubdtype(array.dtype, np.number):
        return "unknown", "no header or name says, and the voxels hold no numbers"
    x = _sample(array)
    lo, hi = float(x.min()), float(x.max())
    air = float(np.mean((x >= _AIR_HU[0]) & (x <= _AIR_HU[1])))
    soft = float(np.mean((x >= _SOFT_HU[0]) & (x <= _SOFT_HU[1])))
    p995 = float(np.percentile(x, 99.5))
    if air >= 0.02 and soft >= 0.05 and lo >= -3100 and p995 <= 4000:
        pad = f", padding at {lo:.0f}" if lo in (-1024.0, -2048.0, -3024.0, -2000.0) else ""
        return "CT", (f"intensities: {100 * air:.0f} % of voxels at air (-1000 HU) and "
                      f"{100 * soft:.0f} % at soft tissue (-200..300 HU){pad}")
    integral = np.issubdtype(array.dtype, np.integer) or bool(np.all(x == np.round(x)))
    negative = float(np.mean(x < 0))
    n_values = int(np.unique(x).size)
    if not integral:
        return "unknown", ("intensities: non-integer values without air at -1000 HU "
                           "(MR, PET or processed data cannot be told apart)")
    if lo <= -500 or negative > 0.05 or lo < -0.1 * max(p995, 1.0):
        return "unknown", (f"intensities: values {lo:.0f}..{hi:.0f} hold negative values but "
                           "no air at -1000 HU: neither CT in HU nor MR")
    if n_values < 100:
        return "unknown", f"intensities: only {n_values} distinct values"
    above = x[x > lo + 0.1 * (p995 - lo)]
    near_1024 = float(np.mean((above >= 900) & (above <= 1200))) if above.size else 0.0
    if near_1024 >= 0.4 and hi >= 2000:
        return "unknown", ("intensities: soft tissue near +1024 with air near 0: possibly a "
                           "CT stored without its rescale intercept, or an MR")
    return "MR", (f"intensities: integers {lo:.0f}..{hi:.0f}, {100 * (1 - negative):.0f} % "
                  "non-negative, without air at -1000 HU: MR-like")


def _skull_stripped(array: npt.NDArray[Any], spacing: tuple[float, ...] | None) -> bool | None:
    """Skull-stripped brain (True), more than a brain (False), or cannot tell (None)."""
    if array.ndim != 3 or spacing is None or array.size == 0:
        return None
    step = max(1, round(array.size ** (1 / 3) / 64))
    sub = array[::step, ::step, ::step]
    voxel_ml = float(np.prod(spacing)) * step**3 / 1000.0
    x = sub.astype(np.float32)
    lo, p995 = float(x.min()), float(np.percentile(x, 99.5))
    zero_background = lo == 0.0 and float(np.mean(x == 0)) >= 0.5
    foreground_ml = float(np.count_nonzero(x > lo + 0.1 * (p995 - lo))) * voxel_ml
    if zero_background and _BRAIN_ML[0] <= foreground_ml <= _BRAIN_ML[1]:
        return True
    if foreground_ml > _MORE_THAN_A_BRAIN_ML:
        return False
    return None
