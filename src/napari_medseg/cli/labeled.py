"""What the verbs that learn from labeled scans (``train`` and ``finetune``) share: the flags
of the labeled voxels, reading labeled volumes, checking where results go, the command line
kept in provenance, and writing and printing a run's result."""

from __future__ import annotations

import argparse
import shlex
import sys
from pathlib import Path
from typing import Any

from napari_medseg.errors import MedsegError

#: Exit status of a fine-tune that kept its starting model (nothing written).
KEPT_PARENT = 3


def add_labeled_arguments(p: argparse.ArgumentParser) -> None:
    """How the labeled voxels are given (shared by ``train`` and ``finetune``)."""
    group = p.add_mutually_exclusive_group()
    group.add_argument("--labeled-mask", type=Path, nargs="+",
                       help="mask(s) of labeled voxels (non-zero = labeled), one per volume")
    group.add_argument("--ignore-value", type=int,
                       help="label value meaning 'unlabeled' (e.g. 255)")
    p.add_argument("--segment", type=Path, metavar="MASK",
                   help="also write the first scan's whole-volume mask here")
    p.add_argument("--overwrite", action="store_true", help="replace an existing --segment file")
    p.add_argument("--quiet", action="store_true", help="no progress output")



def read_volumes(images: list[list[Path]], labels: list[Path], masks: list[Path] | None,
                 ignore_value: int | None) -> list[Any]:
    """:class:`LabeledVolume` objects from files (each ``images`` entry: the channels)."""
    from napari_medseg.io import read_label_map, read_scan
    from napari_medseg.training import LabeledVolume

    if len(labels) != len(images):
        msg = f"{len(images)} volume(s) but {len(labels)} label file(s): give one per volume"
        raise MedsegError(msg)
    if masks is not None and len(masks) != len(images):
        msg = f"{len(images)} volume(s) but {len(masks)} labeled mask(s): give one per volume"
        raise MedsegError(msg)
    volumes = []
    for i, (channels, label_path) in enumerate(zip(images, labels, strict=True)):
        scans = [read_scan(p) for p in channels]
        label_map = read_label_map(label_path, like=scans[0])
        mask = read_label_map(masks[i], like=scans[0]).array != 0 if masks else None
        volumes.append(LabeledVolume(scans, label_map, labeled=mask, ignore_value=ignore_value))
    return volumes


def command_line(args: argparse.Namespace) -> str:
    """The command as typed (``sys.argv``), or rebuilt from ``args`` when called in-process."""
    if sys.argv[1:2] == [args.verb]:
        return "napari-medseg " + " ".join(shlex.quote(a) for a in sys.argv[1:])
    parts = ["napari-medseg", args.verb]
    for key, value in vars(args).items():
        if key in ("func", "verb") or value is None or value is False:
            continue
        flag = "--" + key.replace("_", "-")
        if value is True:
            parts.append(flag)
        elif isinstance(value, list | tuple):
            flat = [v for item in value for v in (item if isinstance(item, list | tuple)
                                                   else [item])]
            parts += [flag, *(shlex.quote(str(v)) for v in flat)]
        else:
            parts += [flag, shlex.quote(str(value))]
    return " ".join(parts)


def check_out(path: Path) -> None:
    from napari_medseg.errors import CheckpointExistsError

    if path.suffix != ".safetensors":
        msg = f"--out must end in .safetensors, got {path.name}"
        raise MedsegError(msg)
    if path.exists():
        msg = f"{path} exists; a trained model never replaces a checkpoint: choose a new name"
        raise CheckpointExistsError(msg)
    if not path.parent.is_dir():
        msg = f"folder {path.parent} does not exist; create it first"
        raise MedsegError(msg)


def check_segment_target(path: Path | None, overwrite: bool) -> None:
    """Fail before training when ``--segment`` cannot be written."""
    if path is None:
        return
    from napari_medseg.io.atomic import check_can_write
    from napari_medseg.io.formats import check_writable_suffix

    check_writable_suffix(path)
    check_can_write(path, overwrite=overwrite)


def report(result: Any, args: argparse.Namespace) -> None:
    """Write ``--segment`` and print what the run did (rank 0)."""
    from napari_medseg.io import write_label_map

    if result.model_path is not None:
        train = result.train
        print(f"wrote {result.model_path} ({train.steps_done} steps, {result.seconds:.0f} s)")
    if args.segment is not None and result.mask is not None:
        write_label_map(result.mask, args.segment, overwrite=args.overwrite)
        how = (f"from your annotation alone, {result.annotation.method}"
               if result.annotation is not None
               else result.rule.rule if result.rule else "the network")
        print(f"wrote {args.segment} (the scan's mask: {how})")
    elif result.annotation is not None:
        print("the mask your annotation gives was not written: pass --segment MASK to keep it")
    print(result.summary())
    for suggestion in result.suggestions[:3]:
        print(f"correct next: {suggestion.describe()}")
