"""``napari-medseg journals``: the corrections journals kept in the data folder.

Lists every journal (scan, label layer, counts, last change, file); ``--remove-older-than
DAYS`` deletes journals not changed for that many days (asking first unless ``--yes``).
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from dataclasses import asdict


def add_parser(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser(
        "journals", help="list (and clean up) the corrections journals of the data folder")
    p.add_argument("--json", action="store_true", help="print one JSON object")
    p.add_argument("--remove-older-than", type=float, metavar="DAYS", default=None,
                   help="delete journals not changed for DAYS days")
    p.add_argument("--yes", action="store_true", help="delete without asking")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from napari_medseg.paths import journals_dir
    from napari_medseg.training.journal import list_journals

    folder = journals_dir()
    found = list(list_journals(folder))
    if args.json:
        print(json.dumps({"folder": str(folder), "journals": [
            {**{k: v for k, v in asdict(j).items() if k != "identity"}, "path": str(j.path),
             "identity": j.identity.to_dict() if j.identity else None} for j in found]}))
    else:
        print(f"Corrections journals in {folder}:")
        for j in found:
            kept = " (kept for later)" if ".kept-" in j.path.name else ""
            print(f"  {j.scan or '?'} / {j.labels or '?'}: {j.describe()}{kept}\n    {j.path}")
        if not found:
            print("  none")
    if args.remove_older_than is None:
        return 0
    cutoff = time.time() - args.remove_older_than * 86400
    old = [j.path for j in found if j.path.stat().st_mtime < cutoff]
    if not old:
        print(f"no journal is older than {args.remove_older_than:g} days")
        return 0
    if not args.yes:
        if not sys.stdin.isatty():
            print(f"{len(old)} journal(s) would be deleted; pass --yes to delete them",
                  file=sys.stderr)
            return 1
        answer = input(f"delete {len(old)} journal(s) older than "
                       f"{args.remove_older_than:g} days? [y/N] ")
        if answer.strip().lower() not in ("y", "yes"):
            print("nothing deleted")
            return 0
    for path in old:
        path.unlink(missing_ok=True)
    print(f"deleted {len(old)} journal(s)")
    return 0
