"""Add the training-data record to a checkpoint made before checkpoints kept one.

    python scripts/record_training_data.py CHECKPOINT --images SCAN [SCAN ...]
        [--mr-contrast T1] [--skull-stripped yes|no] [--orientation RAS] [--out NEW.safetensors]

Reads the checkpoint, describes its training scans with
:func:`napari_medseg.inference.fit.describe_training_data` (its own intensity contract) and
writes the checkpoint again with the record in its spec; the weights are untouched.  Each
scan must be one the checkpoint's provenance lists under ``data`` with the same SHA-256
(so the record describes what it really learned from); ``--mr-contrast`` and
``--skull-stripped`` state facts the files cannot (their names may not say them).
``--orientation RAS`` records that the model reads scans flipped to RAS (see
``napari-medseg train --orientation``): right only when every training file was stored RAS,
so that training saw exactly those arrays (the script checks this).  Without
``--out`` the checkpoint is replaced (atomically).

The starter models were recorded with (after ``scripts/prepare_starter_data.py /tmp/s``)::

    python scripts/record_training_data.py src/napari_medseg/weights/brain-tissue-t1.safetensors \\
        --images /tmp/s/brain_train1_image.nii.gz /tmp/s/brain_train2_image.nii.gz \\
        --mr-contrast T1 --skull-stripped yes
    python scripts/record_training_data.py src/napari_medseg/weights/head-ct-tissue.safetensors \\
        --images /tmp/s/headct_train_image.nii.gz

``--regions-only REGION ...`` adds the body regions the training scans show to a checkpoint
whose record predates them (the weights and the rest of the record untouched); the starters
were given theirs with (each region what :mod:`napari_medseg.inference.body_region` finds on
the training scans: the DICOM series CT is an abdomen, the InVesalius CT and ICBM152 heads)::

    cd src/napari_medseg/weights
    python ../../../scripts/record_training_data.py upper-abdomen-ct-organs.safetensors \\
        --regions-only abdomen
    python ../../../scripts/record_training_data.py head-ct-tissue.safetensors \\
        --regions-only head
    python ../../../scripts/record_training_data.py brain-tissue-t1.safetensors \\
        --regions-only head
"""

from __future__ import annotations

import argparse
import dataclasses
import sys
from pathlib import Path

from napari_medseg.inference.fit import describe_training_data
from napari_medseg.io import read_scan
from napari_medseg.models import load_checkpoint, save_checkpoint
from napari_medseg.provenance import file_hash
from napari_medseg.scan import MR_CONTRASTS


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("checkpoint", type=Path)
    parser.add_argument("--images", type=Path, nargs="+")
    parser.add_argument("--regions-only", nargs="+", choices=("head", "chest", "abdomen"),
                        help="only add the body regions of the training scans to the record")
    parser.add_argument("--mr-contrast", choices=MR_CONTRASTS)
    parser.add_argument("--skull-stripped", choices=("yes", "no"))
    parser.add_argument("--orientation", choices=("RAS",))
    parser.add_argument("--out", type=Path)
    args = parser.parse_args(argv)

    model, spec = load_checkpoint(args.checkpoint)
    if args.regions_only:
        if spec.training_data is None:
            sys.stderr.write(f"{args.checkpoint} has no training-data record; give --images\n")
            return 1
        record = dataclasses.replace(spec.training_data, regions=tuple(args.regions_only))
        out = args.out or args.checkpoint
        save_checkpoint(model, dataclasses.replace(spec, training_data=record), out,
                        overwrite=args.out is None)
        print(f"wrote {out}: regions {', '.join(record.regions)}")
        return 0
    if not args.images:
        parser.error("--images is required (unless --regions-only)")
    trained_on = {Path(p).name: digest for p, digest in spec.provenance.get("data", {}).items()}
    for image in args.images:
        if trained_on.get(image.name) != file_hash(image):
            sys.stderr.write(f"{image} is not a training file of {args.checkpoint} (its name "
                             "or SHA-256 differs from the provenance); give the exact files\n")
            return 1
    scans = []
    for image in args.images:
        scan = read_scan(image, modality=spec.intensity[0].modality if spec.intensity else None)
        if args.mr_contrast:
            scan.mr_contrast = args.mr_contrast
        if args.skull_stripped:
            scan.skull_stripped = args.skull_stripped == "yes"
        scans.append(scan)
    if args.orientation:
        from napari_medseg.geometry import Grid, grid_oriented

        for image, scan in zip(args.images, scans, strict=True):
            grid = Grid.of(scan)
            if grid_oriented(grid, args.orientation) is not grid:
                sys.stderr.write(f"{image} is not stored {args.orientation}: the model saw "
                                 "its arrays another way up; train it again with "
                                 f"--orientation {args.orientation}\n")
                return 1
    record = describe_training_data(scans, intensity=spec.intensity)
    out = args.out or args.checkpoint
    changed = dataclasses.replace(spec, training_data=record,
                                  orientation=args.orientation or spec.orientation)
    save_checkpoint(model, changed, out, overwrite=args.out is None)
    channel = record.channels[0]
    print(f"wrote {out}: {record.n_scans} scan(s), {channel.modality} "
          f"{channel.mr_contrast or ''}, body {record.body_mm.low[0]:.0f}-"
          f"{record.body_mm.high[0]:.0f} mm, spacing up to {max(record.spacing_mm.high):.3g} mm")
    return 0


if __name__ == "__main__":
    sys.exit(main())
