"""``napari-medseg models``: the zoo and the checkpoints that can be used by name."""

from __future__ import annotations

import argparse
import json


def add_parser(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser("models", help="list the model zoo and available checkpoints")
    p.add_argument("--json", action="store_true", help="print one JSON object")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from napari_medseg.inference import list_checkpoints, user_models_dir
    from napari_medseg.models import available_models

    zoo = available_models()
    checkpoints = list_checkpoints()
    if args.json:
        print(json.dumps({
            "zoo": [{"name": m.name, "family": m.family, "paper": m.paper, "dims": list(m.dims),
                     "params": {str(k): v for k, v in m.params.items()},
                     "implementation": m.implementation} for m in zoo],
            "checkpoints": [{"name": c.name, "path": str(c.path), "builtin": c.builtin}
                            for c in checkpoints],
        }))
        return 0
    print("Architectures (train with them, or load their checkpoints):")
    for m in zoo:
        params = m.params.get(3) or m.params.get(2) or 0
        print(f"  {m.name:18s} {m.family:22s} {m.paper:34s} {params / 1e6:6.2f} M params")
    print(f"\nCheckpoints (use by name with --model; user folder: {user_models_dir()}):")
    for c in checkpoints:
        print(f"  {c.name:24s} {'starter' if c.builtin else 'user':8s} {c.path}")
    if not checkpoints:
        print("  none yet")
    return 0
