"""``napari-medseg <verb>``: the command line, on the same core API the widgets use.

Each verb is a module of this package with ``add_parser(subparsers)`` and ``run(args) -> int``.
Errors of the project's exception family end the command with one line on stderr and exit
status 1 (2 for usage errors, as argparse does); no traceback.
"""

from __future__ import annotations

import argparse
import importlib
import sys
from collections.abc import Sequence

from napari_medseg import __version__
from napari_medseg.errors import MedsegError, render

#: Verb modules, in the order ``--help`` lists them.
VERBS = ("info", "convert", "view", "napari_reader", "models", "predict", "train", "finetune",
         "evaluate", "fuse", "journals")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="napari-medseg",
        description="Medical image segmentation: scans with their geometry, models, fusion.",
    )
    parser.add_argument("--version", action="version", version=f"napari-medseg {__version__}")
    subparsers = parser.add_subparsers(dest="verb", metavar="VERB", required=True)
    for verb in VERBS:
        try:
            module = importlib.import_module(f"napari_medseg.cli.{verb}")
        except ModuleNotFoundError as exc:  # a verb still being written must not break the rest
            if exc.name != f"napari_medseg.cli.{verb}":
                raise
            continue
        module.add_parser(subparsers)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        return int(args.func(args) or 0)
    except MedsegError as exc:
        from napari_medseg.cli.options import cli_spelling

        message = render(exc, cli_spelling)  # settings as flags: "pass --overwrite"
        print(f"napari-medseg {args.verb}: error: {message}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print(f"napari-medseg {args.verb}: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
