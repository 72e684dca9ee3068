"""Options dataclasses that describe themselves, so that one definition drives the Python API,
the CLI's flags and the widgets' controls.

A field of an options dataclass is declared with :func:`option`: its default, one line of
help (the ``--help`` text and the control's tooltip) and, where the defaults do not fit, its
flag, label, choices and range::

    @dataclass(kw_only=True)
    class PredictOptions:
        overlap: float = option(0.5, help="fraction of a window shared with its neighbour",
                                low=0.0, high=0.9, step=0.05)
        batch_size: int | None = option(None, flag="--batch", label="batch",
                                        help="windows per forward pass ...")

:func:`option_fields` lists the fields of a class with their resolved types, nested options
dataclasses (``postprocess: PostprocessOptions``) flattened into their own fields, and
:func:`build_options` builds an instance back from values named like those fields.  The CLI
(``napari_medseg.cli.options``) and the widgets (``napari_medseg._napari.options_form``) turn
the list into argparse flags and magicgui controls; neither knows any field by name.
"""

from __future__ import annotations

import dataclasses
import types
import typing
from collections.abc import Mapping
from dataclasses import MISSING, dataclass
from typing import Any, Literal, Union, get_args, get_origin


@dataclass(frozen=True)
class Option:
    """How one field of an options dataclass shows up outside Python.

    ``help`` is one line for ``--help`` and the tooltip; ``flag`` the CLI flag (default
    ``--field-name``; for a bool that defaults to true, ``--no-field-name``); ``label`` the
    control's label (default the name with spaces); ``cli`` / ``gui`` whether the front end
    offers it at all; ``choices`` the allowed values (a ``Literal`` type gives them too), as
    values or ``(text, value)`` pairs for a control; ``low``, ``high``, ``step`` the range of a
    number; ``none_as`` the number a control shows for ``None`` (a ``batch`` of 0 = planned);
    ``metavar`` and ``nargs`` as argparse takes them.
    """

    help: str
    flag: str | None = None
    label: str | None = None
    cli: bool = True
    gui: bool = True
    choices: tuple[Any, ...] | None = None
    low: float | None = None
    high: float | None = None
    step: float | None = None
    none_as: float | None = None
    metavar: str | tuple[str, ...] | None = None
    nargs: int | str | None = None


def option(default: Any = MISSING, *, default_factory: Any = MISSING, help: str,
           **how: Any) -> Any:
    """A dataclass field with its :class:`Option` (``how`` are its other attributes)."""
    metadata = {"option": Option(help=help, **how)}
    if default_factory is not MISSING:
        return dataclasses.field(default_factory=default_factory, metadata=metadata)
    return dataclasses.field(default=default, metadata=metadata)


@dataclass(frozen=True)
class OptionField:
    """One leaf field of an options dataclass: where it sits and how it shows up.

    ``path`` is the attribute path from the outer class (``("postprocess", "min_size")``),
    ``name`` its last element (unique across the flattened class), ``kind`` the plain type
    (``bool``, ``int``, ``float``, ``str``, ``tuple``), ``item`` the element type of a tuple,
    ``optional`` whether ``None`` is allowed, ``choices`` the allowed values (or ``None``).
    """

    path: tuple[str, ...]
    name: str
    kind: type
    item: type | None
    optional: bool
    default: Any
    choices: tuple[Any, ...] | None
    option: Option

    @property
    def flag(self) -> str:
        if self.option.flag:
            return self.option.flag
        dashed = self.name.replace("_", "-")
        return f"--no-{dashed}" if self.kind is bool and self.default is True else f"--{dashed}"

    @property
    def label(self) -> str:
        return self.option.label or self.name.replace("_", " ")

    @property
    def choice_values(self) -> tuple[Any, ...] | None:
        """The allowed values, without the display texts of ``(text, value)`` pairs."""
        if self.choices is None:
            return None
        return tuple(c[1] if isinstance(c, tuple) else c for c in self.choices)


def _plain(annotation: Any) -> tuple[type, type | None, bool, tuple[Any, ...] | None]:
    """``(kind, item, optional, literal choices)`` of a resolved annotation."""
    optional = False
    origin = get_origin(annotation)
    if origin in (Union, types.UnionType):
        args = [a for a in get_args(annotation) if a is not type(None)]
        optional = len(args) < len(get_args(annotation))
        if len(args) != 1:
            msg = f"an option has one type (or that type | None), got {annotation!r}"
            raise TypeError(msg)
        annotation = args[0]
        origin = get_origin(annotation)
    if origin is Literal:
        values = get_args(annotation)
        return type(values[0]), None, optional, values
    if origin is tuple:
        return tuple, get_args(annotation)[0], optional, None
    if isinstance(annotation, type):
        return annotation, None, optional, None
    msg = f"unsupported option type {annotation!r}"
    raise TypeError(msg)


def _default(field: dataclasses.Field[Any]) -> Any:
    if field.default is not MISSING:
        return field.default
    if field.default_factory is not MISSING:
        return field.default_factory()
    return MISSING


def option_fields(cls: type) -> list[OptionField]:
    """The leaf option fields of ``cls``, nested options dataclasses flattened, in order.

    Fields without :func:`option` metadata are left out (set them in Python only); a field
    whose type is a dataclass is expanded into that class's option fields.
    """
    found: list[OptionField] = []

    def walk(klass: type, prefix: tuple[str, ...]) -> None:
        hints = typing.get_type_hints(klass)
        for field in dataclasses.fields(klass):
            annotation = hints[field.name]
            if dataclasses.is_dataclass(annotation):
                walk(annotation, (*prefix, field.name))  # type: ignore[arg-type]
                continue
            how = field.metadata.get("option")
            if how is None:
                continue
            kind, item, optional, literal = _plain(annotation)
            found.append(OptionField(
                path=(*prefix, field.name), name=field.name, kind=kind, item=item,
                optional=optional, default=_default(field),
                choices=how.choices if how.choices is not None else literal, option=how))

    walk(cls, ())
    names = [f.name for f in found]
    duplicates = sorted({n for n in names if names.count(n) > 1})
    if duplicates:
        msg = f"{cls.__name__} has option fields of one name in two places: {duplicates}"
        raise TypeError(msg)
    return found


def build_options(cls: type, values: Mapping[str, Any], **fixed: Any) -> Any:
    """An instance of ``cls`` from leaf-field ``values`` (by :attr:`OptionField.name`); fields
    not given keep their defaults.  ``fixed`` overrides ``values`` and may also set top-level
    fields that are no option (``models=...``).  The dataclasses' own checks apply."""
    given = {**values, **fixed}
    top = {f.name for f in dataclasses.fields(cls)}
    unknown = sorted(set(given) - {f.name for f in option_fields(cls)} - top)
    if unknown:
        msg = f"{cls.__name__} has no option {unknown}"
        raise TypeError(msg)

    def make(klass: type, prefix: tuple[str, ...]) -> Any:
        hints = typing.get_type_hints(klass)
        kwargs: dict[str, Any] = {}
        for field in dataclasses.fields(klass):
            annotation = hints[field.name]
            if field.name in given and (not prefix or "option" in field.metadata):
                kwargs[field.name] = given[field.name]
            elif dataclasses.is_dataclass(annotation):
                kwargs[field.name] = make(annotation, (*prefix, field.name))  # type: ignore[arg-type]
        return klass(**kwargs)

    return make(cls, ())


def option_values(options: Any) -> dict[str, Any]:
    """The leaf option values of an instance, by :attr:`OptionField.name`."""
    values = {}
    for field in option_fields(type(options)):
        value = options
        for part in field.path:
            value = getattr(value, part)
        values[field.name] = value
    return values
