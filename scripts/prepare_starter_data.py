"""Make the training / held-out files of the starter models from ../shared/data.

    python scripts/prepare_starter_data.py OUT_DIR

brain (ICBM152 2009a sym T1, 1 mm): tissue labels = argmax(255 - GM - WM, GM, WM) of the
probability maps (0 background/CSF, 1 grey matter, 2 white matter).  Axial slices (array axis
0) 96..127 (a 32 mm slab through the middle of the brain) are held out; 0..87 and 136..188
train (8-slice gaps on each side).
head CT (ProMED CT 0051): 2 bone = the shipped threshold mask (HU >= 226); 1 soft tissue =
the head (largest component of HU > -400, holes filled per slice) minus bone; 0 outside.
Slices 0..71 train, 80..107 held out.

    python scripts/prepare_starter_data.py --sample-reference

writes ``sample_volumes/ct_abdomen_tissue.nrrd``: the same soft-tissue / bone rule applied
to the bundled abdominal CT, the reference the user guide's journey evaluates against.
"""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
from scipy import ndimage

from napari_medseg.io import read_label_map, read_scan, write_label_map, write_scan
from napari_medseg.scan import Geometry, LabelMap, Scan

DATA = Path(__file__).resolve().parents[1].parent / "shared" / "data"


def crop_geometry(geometry: Geometry, start: int) -> Geometry:
    origin = geometry.index_to_world([start, 0, 0])
    return Geometry(spacing=geometry.spacing, origin=tuple(origin), direction=geometry.direction)


def write_slabs(name: str, scan: Scan, labels: np.ndarray, names: dict[int, str],
                slabs: dict[str, tuple[int, int]], out: Path) -> None:
    for part, (a, b) in slabs.items():
        g = crop_geometry(scan.geometry, a)
        write_scan(Scan(array=scan.array[a:b], geometry=g, modality=scan.modality),
                   out / f"{name}_{part}_image.nii.gz", overwrite=True)
        write_label_map(LabelMap(array=labels[a:b].astype(np.uint8), geometry=g,
                                 class_names=names), out / f"{name}_{part}_labels.nii.gz",
                        overwrite=True)


def brain(out: Path) -> None:
    folder = DATA / "brain_template"
    t1 = read_scan(folder / "mni_icbm152_t1_tal_nlin_sym_09a_converted.nii.gz")
    gm = read_scan(folder / "mni_icbm152_gm_tal_nlin_sym_09a_converted.nii.gz").array
    wm = read_scan(folder / "mni_icbm152_wm_tal_nlin_sym_09a_converted.nii.gz").array
    gm, wm = gm.astype(np.int32), wm.astype(np.int32)
    labels = np.argmax(np.stack([255 - gm - wm, gm, wm]), axis=0)
    t1.modality = "MR"
    write_slabs("brain", t1, labels, {0: "background", 1: "grey matter", 2: "white matter"},
                {"train1": (0, 88), "train2": (136, t1.shape[0]), "heldout": (96, 128)}, out)


TISSUE_NAMES = {0: "background", 1: "soft tissue", 2: "bone"}


def ct_tissue_labels(hu: np.ndarray, bone: np.ndarray | None = None) -> np.ndarray:
    """0 outside, 1 soft tissue, 2 bone (HU >= 226 unless a bone mask is given)."""
    bone = hu >= 226 if bone is None else bone
    body = hu > -400
    components, n = ndimage.label(body)
    if n:
        sizes = np.bincount(components.ravel())
        sizes[0] = 0
        body = components == int(np.argmax(sizes))
    body = np.stack([ndimage.binary_fill_holes(s) for s in body])
    return np.where(bone, 2, np.where(body, 1, 0)).astype(np.uint8)


def head_ct(out: Path) -> None:
    folder = DATA / "ct_head"
    ct = read_scan(folder / "head_ct.nii.gz")
    bone = read_label_map(folder / "head_ct_bone_threshold.nii.gz", like=ct).array > 0
    labels = ct_tissue_labels(ct.array, bone)
    ct.modality = "CT"
    write_slabs("headct", ct, labels, TISSUE_NAMES,
                {"train": (0, 72), "heldout": (80, ct.shape[0])}, out)


def sample_reference() -> Path:
    samples = Path(__file__).resolve().parents[1] / "sample_volumes"
    ct = read_scan(samples / "ct_abdomen.nii.gz")
    target = samples / "ct_abdomen_tissue.nrrd"
    write_label_map(LabelMap(array=ct_tissue_labels(ct.array), geometry=ct.geometry,
                             class_names=TISSUE_NAMES), target, overwrite=True)
    return target


if __name__ == "__main__":
    if sys.argv[1] == "--sample-reference":
        sample_reference()
        sys.exit(0)
    target = Path(sys.argv[1])
    target.mkdir(parents=True, exist_ok=True)
    brain(target)
    head_ct(target)
