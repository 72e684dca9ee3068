"""magicgui controls built from an options dataclass (:mod:`napari_medseg.options`), and back.

``option_controls(PredictOptions)`` gives one control per GUI option field, keyed by the
field's name: a check box for a bool, a combo box for choices, a spin box for a number (with
its range; ``none_as`` shows ``None``), a line edit for a tuple of numbers (``"96 96 96"``,
empty = ``None``).  :func:`options_from_controls` builds the dataclass from their values; a
value it refuses is a :class:`~napari_medseg.errors.MedsegError` naming the control.
"""

from __future__ import annotations

from collections.abc import Collection, Mapping
from typing import Any

from magicgui.widgets import CheckBox, ComboBox, FloatSpinBox, LineEdit, SpinBox
from magicgui.widgets.bases import ValueWidget

from napari_medseg.errors import MedsegError
from napari_medseg.options import OptionField, build_options, option_fields


def _tooltip(field: OptionField) -> str:
    text = field.option.help
    return text[:1].upper() + text[1:]


def gui_fields(cls: type, *, skip: Collection[str] = ()) -> list[OptionField]:
    """The option fields of ``cls`` a widget shows (``skip``: names the widget handles)."""
    return [f for f in option_fields(cls) if f.option.gui and f.name not in skip]


def control_for(field: OptionField) -> ValueWidget:
    """The magicgui control of one option field, at the field's default."""
    how, tooltip = field.option, _tooltip(field)
    default = field.default
    if field.choices is not None:
        values = field.choice_values or ()
        control = ComboBox(label=field.label, choices=list(field.choices), tooltip=tooltip)
        if default in values:
            control.value = default
        return control
    if field.kind is bool:
        return CheckBox(text=field.label, value=bool(default), tooltip=tooltip)
    if field.kind is tuple:
        text = "" if default is None else " ".join(str(v) for v in default)
        return LineEdit(label=field.label, value=text, tooltip=tooltip)
    if field.kind in (int, float):
        number = how.none_as if default is None else default
        kwargs: dict[str, Any] = {"label": field.label, "tooltip": tooltip,
                                  "min": how.low if how.low is not None else 0,
                                  "max": how.high if how.high is not None else 10**9}
        if how.step is not None:
            kwargs["step"] = how.step
        if field.kind is int:
            return SpinBox(value=int(number or 0), **kwargs)
        return FloatSpinBox(value=float(number or 0.0), **kwargs)
    return LineEdit(label=field.label, value="" if default is None else str(default),
                    tooltip=tooltip)


def option_controls(cls: type, *, skip: Collection[str] = ()) -> dict[str, ValueWidget]:
    """One control per GUI option field of ``cls``, by field name, in declaration order."""
    return {field.name: control_for(field) for field in gui_fields(cls, skip=skip)}


def _value(field: OptionField, control: ValueWidget) -> Any:
    value = control.value
    if field.kind is tuple:
        text = str(value).replace(",", " ").split()
        if not text:
            return None
        item = field.item or float
        try:
            return tuple(item(t) for t in text)
        except ValueError as exc:
            kind = "whole numbers" if item is int else "numbers"
            msg = (f"{field.label} must be {kind} such as '96 96 96', got {value!r}; leave it "
                   "empty for the default")
            raise MedsegError(msg) from exc
    if field.optional and field.option.none_as is not None and value == field.option.none_as:
        return None
    if field.kind in (int, float) and field.choices is None:
        return field.kind(value)
    return value


def options_from_controls(cls: type, controls: Mapping[str, ValueWidget], **fixed: Any) -> Any:
    """``cls`` built from the values of ``controls`` (as :func:`option_controls` made them);
    ``fixed`` sets the fields the widget handles itself."""
    fields = {f.name: f for f in option_fields(cls)}
    values = {name: _value(fields[name], control) for name, control in controls.items()}
    try:
        return build_options(cls, values, **fixed)
    except ValueError as exc:
        labels = ", ".join(f"'{fields[n].label}'" for n in controls if n in str(exc))
        msg = f"{exc}" + (f" (check {labels})" if labels else "")
        raise MedsegError(msg) from exc


def gui_spelling(name: str, value: Any) -> str | None:
    """A setting a message asks for, as the control a person changes ("untick 'resample to
    the model's spacing'", "'device' cpu"); ``None`` when no tab has a control for it."""
    from napari_medseg.inference.segment import SegmentOptions
    from napari_medseg.metrics import EvaluateOptions

    fields = {f.name: f for cls in (SegmentOptions, EvaluateOptions) for f in option_fields(cls)}
    field = fields.get(name)
    if field is None or not field.option.gui:
        return None
    if field.kind is bool:
        return f"{'tick' if value else 'untick'} '{field.label}'"
    if value is True:  # "this control" without a value to suggest
        return f"'{field.label}'"
    texts = {c[1]: c[0] for c in field.choices or () if isinstance(c, tuple)}
    shown = " ".join(str(v) for v in value) if isinstance(value, tuple) else texts.get(value,
                                                                                      value)
    return f"'{field.label}' {shown}"
