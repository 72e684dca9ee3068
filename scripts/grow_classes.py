"""Give a checkpoint more classes, keeping everything it learned, to fine-tune from.

    python scripts/grow_classes.py PARENT OUT --add "3=cerebrospinal fluid" "4=non-brain head"
        [--like 0]

The network is rebuilt with the new number of output channels; every weight is copied from
``PARENT`` except the rows of the output layer of the new classes, which start as copies of
class ``--like`` (default 0, background) with their bias lowered by 2, so the grown network
labels exactly what the parent did until training teaches it the new classes.  Then
``napari-medseg train --start-from OUT`` fine-tunes it (``scripts/train_starter_models.sh``
grows ``brain-tissue-t1`` this way).  The new checkpoint's provenance names the parent and
the classes added; it has no training-data record (training adds one).
"""

from __future__ import annotations

import argparse
import dataclasses
import sys
from pathlib import Path

import torch

from napari_medseg.models import create_model, load_checkpoint, save_checkpoint


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("parent", type=Path)
    parser.add_argument("out", type=Path)
    parser.add_argument("--add", nargs="+", required=True, metavar="VALUE=NAME")
    parser.add_argument("--like", type=int, default=0)
    args = parser.parse_args(argv)

    model, spec = load_checkpoint(args.parent)
    added = {int(v): n for v, n in (item.split("=", 1) for item in args.add)}
    n = spec.out_channels
    if sorted(added) != list(range(n, n + len(added))):
        sys.stderr.write(f"new classes must continue the parent's 0..{n - 1}: give "
                         f"{n}..{n + len(added) - 1}\n")
        return 1
    grown = dataclasses.replace(
        spec, out_channels=n + len(added), class_names={**spec.class_names, **added},
        training_data=None, scan_annotation=None,
        provenance={"parent": args.parent.name, "grown_from_classes": n,
                    "added_classes": {str(k): v for k, v in added.items()},
                    "parent_provenance": spec.provenance})
    new = create_model(grown.architecture, spatial_dims=grown.spatial_dims,
                       in_channels=grown.in_channels, out_channels=grown.out_channels,
                       **grown.options)
    old_state, state = model.state_dict(), new.state_dict()
    with torch.no_grad():
        for key, value in state.items():
            source = old_state[key]
            if source.shape == value.shape:
                value.copy_(source)
            else:  # the output layer: old rows, then copies of the --like row
                value[:n] = source
                for row in range(n, n + len(added)):
                    value[row] = source[args.like] - (2.0 if value.ndim == 1 else 0.0)
    new.load_state_dict(state)
    save_checkpoint(new, grown, args.out)
    print(f"wrote {args.out}: {n} -> {grown.out_channels} classes")
    return 0


if __name__ == "__main__":
    sys.exit(main())
