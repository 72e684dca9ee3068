"""Which prediction class is which reference class: matched by name, else by value.

Two label maps often follow different protocols: a tissue model's ``1 grey matter`` is not
a tumour mask's ``1``, and a model's ``3 liver`` is a reference's ``5 liver``.
:func:`match_classes` pairs classes

1. by name when both sides name them (equal after normalising case, punctuation, word order,
   British/American spelling and a few abbreviations such as ``GM``, ``WM``, ``CSF``),
   whatever their values;
2. by value where at least one side has no name of its own (``"class 3"``, or none), or
   when names are ignored (``match="value"``);

and leaves the rest unmatched: reference classes the prediction lacks ("reference only")
and prediction classes the reference does not have ("prediction only").  Each pair says how
it was made, so a table can show it.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass

MATCHING = ("auto", "value", "name")

#: Word spellings taken as one (British spelling is the house's).
_WORDS = {"gray": "grey", "tumor": "tumour", "tumors": "tumour", "tumours": "tumour",
          "esophagus": "oesophagus", "hemorrhage": "haemorrhage", "edema": "oedema",
          "lt": "left", "rt": "right", "l": "left", "r": "right"}
#: Whole names taken as one.
_NAMES = {"gm": "grey matter", "wm": "white matter", "csf": "cerebrospinal fluid",
          "cortical grey matter": "grey matter", "cerebral white matter": "white matter"}


def name_key(name: str) -> str:
    """A normalised form of a class name: ``"Kidney_Left"`` and ``"left kidney"`` agree."""
    words = [_WORDS.get(w, w) for w in re.split(r"[^a-z0-9]+", name.lower()) if w]
    joined = " ".join(words)
    joined = _NAMES.get(joined, joined)
    return " ".join(sorted(joined.split()))


def has_own_name(value: int, name: str | None) -> bool:
    """True for a name a person or a model gave (not empty, not the default ``class k``)."""
    return bool(name) and name_key(name or "") not in ("", name_key(f"class {value}"))


@dataclass(frozen=True)
class ClassMatch:
    """One row of an evaluation: a reference class, a prediction class, or a pair.

    ``by`` is ``"value and name"``, ``"name"``, ``"value"``, ``"reference only"`` or
    ``"prediction only"``.
    """

    truth: int | None
    pred: int | None
    truth_name: str | None
    pred_name: str | None
    by: str

    @property
    def label(self) -> int:
        """The row's value: the reference's, else the prediction's."""
        value = self.truth if self.truth is not None else self.pred
        assert value is not None
        return value

    @property
    def name(self) -> str:
        """The row's name: the reference's, else the prediction's."""
        if self.truth is not None:
            return self.truth_name or f"class {self.truth}"
        return self.pred_name or f"class {self.pred}"


def match_classes(truth_values: Iterable[int], truth_names: Mapping[int, str],
                  pred_values: Iterable[int], pred_names: Mapping[int, str], *,
                  match: str = "auto") -> list[ClassMatch]:
    """Pair the reference's classes with the prediction's (see the module docstring).

    ``truth_values`` / ``pred_values`` are the non-zero values that occur in each map;
    classes a side names but lacks count too when they have a name of their own (a reference
    class that this scan happens not to contain is still a reference class).  ``match``:
    ``"auto"`` (names, then values), ``"value"`` (values only) or ``"name"`` (names only).
    Rows come in reference order, then the prediction-only classes.
    """
    if match not in MATCHING:
        msg = f"match must be one of {', '.join(MATCHING)}, got {match!r}"
        raise ValueError(msg)
    t_named = {k for k, v in truth_names.items() if k != 0 and has_own_name(k, v)}
    p_named = {k for k, v in pred_names.items() if k != 0 and has_own_name(k, v)}
    t_all = sorted({int(v) for v in truth_values if v != 0} | t_named)
    p_present = {int(v) for v in pred_values if v != 0}
    p_all = p_present | p_named
    pairs: dict[int, tuple[int | None, str]] = {}
    taken: set[int] = set()
    if match != "value":
        for t in t_all:
            if t not in t_named:
                continue
            key = name_key(truth_names[t])
            same = [p for p in sorted(p_all - taken) if p in p_named
                    and name_key(pred_names[p]) == key]
            if same:
                p = t if t in same else same[0]
                pairs[t] = (p, "value and name" if p == t else "name")
                taken.add(p)
    if match != "name":
        for t in t_all:
            if t in pairs or t not in p_all or t in taken:
                continue
            named_both = t in t_named and t in p_named
            if match == "value" or not named_both:
                pairs[t] = (t, "value")
                taken.add(t)
    rows = []
    for t in t_all:
        matched, by = pairs.get(t, (None, "reference only"))
        rows.append(ClassMatch(truth=t, pred=matched, truth_name=truth_names.get(t),
                               pred_name=None if matched is None else pred_names.get(matched),
                               by=by))
    for extra in sorted(p_present - taken):
        rows.append(ClassMatch(truth=None, pred=extra, truth_name=None,
                               pred_name=pred_names.get(extra), by="prediction only"))
    return rows
