"""Coded names of segments: what a class *is*, in codes a PACS, 3D Slicer or OHIF understands.

A DICOM Segmentation describes each segment by a *category* and a *type* (with an optional
*modifier*, e.g. laterality), each a coded concept ``(code value, coding scheme, meaning)``
from SNOMED CT (scheme ``SCT``).  :func:`term_for` maps a class name such as ``"liver"``,
``"kidney_left"``, ``"grey matter"`` or ``"tumour"`` to such a term; names it does not know get
the generic term Slicer gives a new segment (category *Tissue*, type *Tissue*) and keep their
name as the segment label, so nothing is invented.

The property *types* are the SNOMED CT concepts TotalSegmentator's and DCMQI's mappings use
for these structures (and those of DICOM PS3.16 CID 7151); the *categories* are the three
concepts of DICOM CID 7150 that apply: Anatomical Structure (SCT 91723000), Tissue
(SCT 85756007) and Morphologically Abnormal Structure (SCT 49755003).  TotalSegmentator writes
SCT 123037004 ("Body structure") as the category of organs; CID 7150 lists 91723000, so we
write that.  The table is ours and is compiled here: nothing is downloaded.

Colours are sRGB 0-255 (a DICOM-SEG stores them as CIELab; napari shows them as they are).
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

SCT = "SCT"


@dataclass(frozen=True)
class Code:
    """One coded concept: code value, coding scheme designator and code meaning."""

    value: str
    scheme: str
    meaning: str

    def to_dict(self) -> dict[str, str]:
        return {"value": self.value, "scheme": self.scheme, "meaning": self.meaning}

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Code:
        return cls(value=str(data["value"]), scheme=str(data["scheme"]),
                   meaning=str(data["meaning"]))


ANATOMICAL_STRUCTURE = Code("91723000", SCT, "Anatomical Structure")
TISSUE = Code("85756007", SCT, "Tissue")
ABNORMAL = Code("49755003", SCT, "Morphologically Abnormal Structure")
LEFT = Code("7771000", SCT, "Left")
RIGHT = Code("24028007", SCT, "Right")


@dataclass(frozen=True)
class SegmentTerm:
    """What one segment is: category, type, optional type modifier, display colour."""

    category: Code
    type: Code
    modifier: Code | None = None
    colour: tuple[int, int, int] = (128, 174, 128)

    @property
    def is_generic(self) -> bool:
        """True for the fallback term of a name the table does not know."""
        return self.type == TISSUE and self.category == TISSUE

    def describe(self) -> str:
        """``"Kidney (Left) [SCT 64033007]"``: one line for listings."""
        side = f" ({self.modifier.meaning})" if self.modifier is not None else ""
        return f"{self.type.meaning}{side} [{self.type.scheme} {self.type.value}]"

    def to_dict(self) -> dict[str, Any]:
        data: dict[str, Any] = {"category": self.category.to_dict(), "type": self.type.to_dict(),
                                "colour": list(self.colour)}
        if self.modifier is not None:
            data["modifier"] = self.modifier.to_dict()
        return data

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> SegmentTerm:
        colour = tuple(int(c) for c in data.get("colour", (128, 174, 128)))
        if len(colour) != 3 or not all(0 <= c <= 255 for c in colour):
            msg = f"a segment colour is three values 0-255, got {list(colour)}"
            raise ValueError(msg)
        modifier = data.get("modifier")
        return cls(category=Code.from_dict(data["category"]), type=Code.from_dict(data["type"]),
                   modifier=Code.from_dict(modifier) if modifier else None,
                   colour=(colour[0], colour[1], colour[2]))


def _entry(category: Code, value: str, meaning: str, colour: tuple[int, int, int]
           ) -> tuple[Code, Code, tuple[int, int, int]]:
    return category, Code(value, SCT, meaning), colour


_A, _T, _M = ANATOMICAL_STRUCTURE, TISSUE, ABNORMAL
#: Normalised name -> (category, type, colour).  Names of our starter models' classes
#: (grey/white matter, soft tissue, bone), lesions and tumours, and the common organs.
_TABLE: dict[str, tuple[Code, Code, tuple[int, int, int]]] = {
    # brain tissue (brain-tissue-t1)
    "gray matter": _entry(_A, "389081007", "Gray matter", (128, 128, 128)),
    "white matter": _entry(_A, "389080008", "White matter", (245, 245, 220)),
    "cerebrospinal fluid": _entry(_A, "65216001", "Cerebrospinal fluid", (85, 188, 255)),
    "brain": _entry(_A, "12738006", "Brain", (250, 250, 225)),
    "brainstem": _entry(_A, "119238007", "Brain stem", (150, 200, 150)),
    "cerebellum": _entry(_A, "113305005", "Cerebellum", (230, 180, 140)),
    # tissues (head-ct-tissue)
    "soft tissue": _entry(_T, "87784001", "Soft tissue", (177, 122, 101)),
    "bone": _entry(_T, "3138006", "Bone", (241, 214, 145)),
    "fat": _entry(_T, "55603005", "Fat", (230, 220, 70)),
    "subcutaneous fat": _entry(_T, "67769002", "Subcutaneous fatty tissue", (255, 242, 178)),
    "muscle": _entry(_A, "127954009", "Skeletal muscle", (192, 104, 88)),
    # abnormal structures
    "lesion": _entry(_M, "52988006", "Lesion", (255, 80, 40)),
    "tumor": _entry(_M, "108369006", "Neoplasm", (255, 30, 30)),
    "mass": _entry(_M, "4147007", "Mass", (250, 100, 60)),
    "nodule": _entry(_M, "27925004", "Nodule", (255, 160, 40)),
    "cyst": _entry(_M, "367643001", "Cyst", (83, 175, 221)),
    "necrosis": _entry(_M, "6574001", "Necrosis", (110, 60, 40)),
    "edema": _entry(_M, "79654002", "Edema", (140, 220, 240)),
    "hemorrhage": _entry(_M, "50960005", "Hemorrhage", (200, 0, 0)),
    # organs
    "liver": _entry(_A, "10200004", "Liver", (221, 130, 101)),
    "spleen": _entry(_A, "78961009", "Spleen", (157, 108, 162)),
    "kidney": _entry(_A, "64033007", "Kidney", (185, 102, 83)),
    "stomach": _entry(_A, "69695003", "Stomach", (216, 132, 105)),
    "pancreas": _entry(_A, "15776009", "Pancreas", (249, 180, 111)),
    "aorta": _entry(_A, "15825003", "Aorta", (224, 97, 76)),
    "gallbladder": _entry(_A, "28231008", "Gallbladder", (139, 150, 98)),
    "lung": _entry(_A, "39607008", "Lung", (197, 165, 145)),
    "heart": _entry(_A, "80891009", "Heart", (206, 110, 84)),
    "urinary bladder": _entry(_A, "89837001", "Urinary bladder", (222, 154, 132)),
    "adrenal gland": _entry(_A, "23451007", "Adrenal gland", (244, 214, 49)),
    "esophagus": _entry(_A, "32849002", "Esophagus", (211, 171, 143)),
    "trachea": _entry(_A, "44567001", "Trachea", (182, 228, 255)),
    "duodenum": _entry(_A, "38848004", "Duodenum", (255, 253, 229)),
    "small intestine": _entry(_A, "30315005", "Small intestine", (205, 167, 142)),
    "colon": _entry(_A, "71854001", "Colon", (204, 168, 143)),
    "rectum": _entry(_A, "34402009", "Rectum", (220, 180, 150)),
    "prostate": _entry(_A, "41216001", "Prostate", (230, 158, 140)),
    "uterus": _entry(_A, "35039007", "Uterus", (220, 140, 150)),
    "thyroid gland": _entry(_A, "69748006", "Thyroid gland", (220, 160, 30)),
    "inferior vena cava": _entry(_A, "64131007", "Inferior vena cava", (0, 151, 206)),
    "portal vein": _entry(_A, "32764006", "Portal vein", (0, 90, 220)),
    "spinal cord": _entry(_A, "2748008", "Spinal cord", (244, 214, 49)),
    "skull": _entry(_A, "89546000", "Skull", (241, 213, 144)),
    "sacrum": _entry(_A, "54735007", "Sacrum", (200, 190, 150)),
    "sternum": _entry(_A, "56873002", "Sternum", (215, 195, 165)),
    "femur": _entry(_A, "71341001", "Femur", (240, 210, 150)),
    "vertebra": _entry(_A, "51282000", "Vertebra", (241, 213, 144)),
    "rib": _entry(_A, "113197003", "Rib", (230, 200, 140)),
    "breast": _entry(_A, "76752008", "Breast", (255, 220, 200)),
    "eye": _entry(_A, "81745001", "Eye", (194, 142, 0)),
}
#: Other spellings of the names above (after lower-casing and ``_``/``-`` to spaces).
_SYNONYMS = {
    "grey matter": "gray matter", "gm": "gray matter",
    "wm": "white matter", "csf": "cerebrospinal fluid", "brain stem": "brainstem",
    "tumour": "tumor", "neoplasm": "tumor", "oedema": "edema", "haemorrhage": "hemorrhage",
    "bleed": "hemorrhage", "kidneys": "kidney", "lungs": "lung", "gall bladder": "gallbladder",
    "bladder": "urinary bladder", "oesophagus": "esophagus", "small bowel": "small intestine",
    "thyroid": "thyroid gland", "adrenal": "adrenal gland", "ivc": "inferior vena cava",
    "skeletal muscle": "muscle", "muscles": "muscle", "adipose tissue": "fat",
    "vertebrae": "vertebra", "ribs": "rib", "adrenal glands": "adrenal gland",
    "lesions": "lesion", "tumours": "tumor", "tumors": "tumor", "bones": "bone",
}
_SIDES = {"left": LEFT, "right": RIGHT}
#: Colours of names the table does not know, by label value (distinct, readable on grey).
_PALETTE = ((230, 25, 75), (60, 180, 75), (255, 225, 25), (0, 130, 200), (245, 130, 48),
            (145, 30, 180), (70, 240, 240), (240, 50, 230), (210, 245, 60), (250, 190, 212),
            (0, 128, 128), (220, 190, 255), (170, 110, 40), (255, 250, 200), (128, 0, 0),
            (170, 255, 195), (128, 128, 0), (255, 215, 180), (0, 0, 128))


def normalise(name: str) -> str:
    """Lower case, ``_``/``-``/``.`` to spaces, single spaces: ``"Kidney_Left"`` ->
    ``"kidney left"``."""
    return " ".join(re.sub(r"[_\-.]+", " ", name.lower()).split())


def term_for(name: str, value: int = 0) -> SegmentTerm:
    """The coded term of a class name (the generic term when the table does not know it).

    Laterality words (``left``/``right``, anywhere in the name) become the type modifier:
    ``"kidney_left"`` and ``"left kidney"`` are Kidney with modifier Left.  ``value`` (the
    label value) picks the colour of an unknown name.
    """
    words = normalise(name).split()
    sides = [w for w in words if w in _SIDES]
    base = " ".join(w for w in words if w not in _SIDES)
    base = _SYNONYMS.get(base, base)
    found = _TABLE.get(base)
    if found is None or len(sides) > 1:
        colour = _PALETTE[(value - 1) % len(_PALETTE)] if value > 0 else (128, 174, 128)
        return SegmentTerm(category=TISSUE, type=TISSUE, colour=colour)
    category, kind, colour = found
    modifier = _SIDES[sides[0]] if sides else None
    if modifier is RIGHT:  # tell the sides apart on screen: the right a little darker
        colour = (int(colour[0] * 0.75), int(colour[1] * 0.75), int(colour[2] * 0.75))
    return SegmentTerm(category=category, type=kind, modifier=modifier, colour=colour)


def terms_for(class_names: Mapping[int, str],
              known: Mapping[int, SegmentTerm] | None = None) -> dict[int, SegmentTerm]:
    """A term for every non-zero class: ``known`` ones as they are, the others from the table."""
    known = dict(known or {})
    return {value: known.get(value) or term_for(name, value)
            for value, name in sorted(class_names.items()) if value != 0}


def known_names() -> list[str]:
    """The names (and spellings) :func:`term_for` recognises, sorted."""
    return sorted({*_TABLE, *_SYNONYMS})


def terms_to_json(terms: Mapping[int, SegmentTerm]) -> str:
    """``{"5": {...}, ...}``: the form header keys and sidecars store."""
    return json.dumps({str(k): t.to_dict() for k, t in sorted(terms.items())}, sort_keys=True)


def terms_from_json(text: str) -> dict[int, SegmentTerm]:
    """Inverse of :func:`terms_to_json`; ``{}`` for text that is not such a mapping."""
    try:
        raw = json.loads(text)
        return {int(k): SegmentTerm.from_dict(v) for k, v in raw.items()}
    except (ValueError, TypeError, KeyError, AttributeError):
        return {}
