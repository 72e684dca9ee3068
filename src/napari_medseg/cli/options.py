"""argparse flags built from an options dataclass (:mod:`napari_medseg.options`), and back.

``add_option_flags(parser, PredictOptions)`` adds ``--tile``, ``--overlap``, ``--batch``,
``--tta``, ``--no-resample``... as the dataclass declares them; ``options_from_args`` builds
the dataclass from the parsed namespace.  A flag's ``dest`` is the field's name.
"""

from __future__ import annotations

import argparse
from collections.abc import Collection
from typing import Any

from napari_medseg.errors import MedsegError
from napari_medseg.options import OptionField, build_options, option_fields


def _cli_fields(cls: type, skip: Collection[str]) -> list[OptionField]:
    return [f for f in option_fields(cls) if f.option.cli and f.name not in skip]


def add_option_flags(parser: argparse.ArgumentParser | argparse._ArgumentGroup, cls: type, *,
                     skip: Collection[str] = ()) -> None:
    """One flag per CLI option field of ``cls`` (``skip``: field names the verb handles)."""
    for field in _cli_fields(cls, skip):
        how = field.option
        kwargs: dict[str, Any] = {"dest": field.name, "help": how.help}
        if field.kind is bool:
            negated = field.default is True
            kwargs["action"] = "store_false" if negated else "store_true"
            if negated:
                kwargs["help"] = f"do not {how.help}"
            elif field.default is None:  # "not given" (the job decides) unless the flag is
                kwargs.update(action="store_const", const=True, default=None)
        else:
            convert = field.item if field.kind is tuple else field.kind
            kwargs["type"] = convert
            kwargs["default"] = field.default
            if field.kind is tuple:
                kwargs["nargs"] = how.nargs or "+"
            elif how.nargs is not None:
                kwargs["nargs"] = how.nargs
            if field.choice_values is not None:
                kwargs["choices"] = field.choice_values
            if how.metavar is not None or field.choice_values is None:
                kwargs["metavar"] = how.metavar or field.flag.lstrip("-").upper().replace("-", "_")
        parser.add_argument(field.flag, **kwargs)


def options_from_args(cls: type, args: argparse.Namespace, *, skip: Collection[str] = (),
                      **fixed: Any) -> Any:
    """``cls`` built from the flags :func:`add_option_flags` added (``fixed``: fields the verb
    sets itself); a value the dataclass refuses is a one-line error naming the flag."""
    fields = _cli_fields(cls, skip)
    values = {}
    for field in fields:
        value = getattr(args, field.name)
        if field.kind is tuple and value is not None:
            value = tuple(value)
        values[field.name] = value
    try:
        return build_options(cls, values, **fixed)
    except ValueError as exc:
        flags = ", ".join(f.flag for f in fields if f.name in str(exc))
        msg = f"{exc}" + (f" (check {flags})" if flags else "")
        raise MedsegError(msg) from exc


def _fields_named(name: str) -> OptionField | None:
    """The option field ``name`` of a verb's options (cheap modules first: torch is imported
    only for a setting of a segmentation)."""
    from napari_medseg.io.convert import ConvertOptions
    from napari_medseg.metrics.report import EvaluateOptions

    for cls in (ConvertOptions, EvaluateOptions):
        found = {f.name: f for f in option_fields(cls)}.get(name)
        if found is not None:
            return found
    from napari_medseg.inference.segment import SegmentOptions

    return {f.name: f for f in option_fields(SegmentOptions)}.get(name)


#: Settings that are no option field of a verb, as the CLI spells them.
_CLI_EXTRA = {("keep_probabilities", False): "no --probabilities"}


def cli_spelling(name: str, value: Any) -> str | None:
    """A setting a message asks for, as its flag (``--no-resample``, ``--device cpu``);
    ``None`` when the CLI has no flag for it (the message keeps Python's spelling)."""
    if (name, value) in _CLI_EXTRA:
        return _CLI_EXTRA[(name, value)]
    field = _fields_named(name)
    if field is None or not field.option.cli:
        return None
    if field.kind is bool:
        wanted = field.flag.startswith("--no-") != bool(value)
        return field.flag if wanted else None
    if value is True or value is None:  # "this flag" without a value to suggest
        return field.flag
    shown = " ".join(str(v) for v in value) if isinstance(value, tuple) else str(value)
    return f"{field.flag} {shown}"
