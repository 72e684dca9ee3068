"""Make the training / held-out files of the starter models from ../shared/data.

    python scripts/prepare_starter_data.py OUT_DIR

brain (ICBM152 2009a sym T1, 1 mm): tissue labels = argmax(255 - GM - WM, GM, WM) of the
probability maps (0 background/CSF, 1 grey matter, 2 white matter).  Axial slices (array axis
0) 96..127 (a 32 mm slab through the middle of the brain) are held out; 0..87 and 136..188
train (8-slice gaps on each side).
head CT (ProMED CT 0051): 2 bone = the shipped threshold mask (HU >= 226); 1 soft tissue =
the head (largest component of HU > -400, holes filled per slice) minus bone; 0 outside.
Slices 0..71 train, 80..107 held out.

    python scripts/prepare_starter_data.py --brain-synth OUT_DIR [N]

brain with or without skull: the ICBM152 template at 2 mm, its tissue probabilities and
brain mask (T1 > 0) feed :func:`napari_medseg.training.synth.synthesize`: N (default 24)
random T1-like scans (seed = index): the first eight keep the template's real brain (four
under a synthetic head, four skull-stripped), the rest are fully drawn; labels 0 background,
1 GM, 2 WM, 3 CSF, 4 non-brain head.  ``synth_val_*``: the real brain under another
synthetic head (validation only; it is the same template, so the held-out numbers come from
Colin27, another subject).

    python scripts/prepare_starter_data.py --sample-reference

writes ``sample_volumes/ct_abdomen_tissue.nrrd`` (the same soft-tissue / bone rule applied
to the bundled abdominal CT) and ``sample_volumes/ct_abdomen_upper_organs.nrrd`` (its
TotalSegmentator organs as the six classes of ``upper-abdomen-ct-organs``: the reference the
user guide's journey corrects with and evaluates against).

    python scripts/prepare_starter_data.py --abdomen OUT_DIR

the two abdominal CTs with organ labels (:data:`ORGANS`): ``abdomen`` (the bundled sample's
scan, non-contrast, 3 mm) and ``dicomct`` (the DICOM series, contrast, 0.98 mm; its label
file's rows are flipped back onto the series).
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


def read_icbm() -> tuple[Scan, np.ndarray, np.ndarray]:
    """The ICBM152 2009a T1 (MR) and its GM and WM probability maps (0..255, int32)."""
    folder = DATA / "brain_template"
    t1 = read_scan(folder / "mni_icbm152_t1_tal_nlin_sym_09a_converted.nii.gz")
    t1.modality = "MR"
    gm, wm = (read_scan(folder / f"mni_icbm152_{part}_tal_nlin_sym_09a_converted.nii.gz")
              .array.astype(np.int32) for part in ("gm", "wm"))
    return t1, gm, wm


def icbm_tissue(gm: np.ndarray, wm: np.ndarray) -> np.ndarray:
    """argmax(255 - GM - WM, GM, WM): 0 background/CSF, 1 grey matter, 2 white matter."""
    return np.argmax(np.stack([255 - gm - wm, gm, wm]), axis=0)


def brain(out: Path) -> None:
    t1, gm, wm = read_icbm()
    labels = icbm_tissue(gm, wm)
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


def icbm_at_2mm() -> tuple[Scan, dict[int, np.ndarray], np.ndarray]:
    """The ICBM152 T1 (0..1), its GM/WM/CSF probabilities and brain mask, 2x2x2 block means."""
    from napari_medseg.training.synth import CSF, GM, WM

    t1, gm_255, wm_255 = read_icbm()
    maps = [t1.array.astype(np.float32) / 255.0, (t1.array > 0).astype(np.float32),
            gm_255.astype(np.float32) / 255.0, wm_255.astype(np.float32) / 255.0]
    even = tuple(slice(0, s - s % 2) for s in t1.shape)
    small = []
    for m in maps:
        m = m[even]
        z, y, x = (s // 2 for s in m.shape)
        small.append(m.reshape(z, 2, y, 2, x, 2).mean(axis=(1, 3, 5)))
    image, mask, gm, wm = small
    brain = mask > 0.5
    tissue = np.clip(gm + wm, 0, 1)
    probabilities = {GM: gm * brain, WM: wm * brain, CSF: (1 - tissue) * brain}
    geometry = Geometry(spacing=(2.0, 2.0, 2.0), origin=tuple(t1.geometry.index_to_world(
        [0.5, 0.5, 0.5])), direction=t1.geometry.direction)
    return Scan(array=image, geometry=geometry, modality="MR"), probabilities, brain


def brain_synth(out: Path, count: int = 24) -> None:
    from napari_medseg.training.synth import CLASSES, synthesize

    template, probabilities, brain = icbm_at_2mm()
    g = template.geometry
    for index in [*range(count), -1]:
        rng = np.random.default_rng(999 if index < 0 else index)
        real = template.array if index < 8 else None
        skull = True if index < 4 else (False if index < 8 else None)  # real brains: 4 + 4
        image, labels = synthesize(probabilities, brain, g.spacing, rng, real=real,
                                   skull=True if index < 0 else skull)
        stem = "synth_val" if index < 0 else f"synth_{index:02d}"
        write_scan(Scan(array=image, geometry=g, modality="MR"),
                   out / f"{stem}_image.nii.gz", overwrite=True)
        write_label_map(LabelMap(array=labels, geometry=g, class_names=CLASSES),
                        out / f"{stem}_labels.nii.gz", overwrite=True)


#: TotalSegmentator v2 label values of the organs the abdominal starter learns.
ORGANS = {1: ("liver", (5,)), 2: ("spleen", (1,)), 3: ("kidney", (2, 3)),
          4: ("stomach", (6,)), 5: ("aorta", (52,)), 6: ("vertebra", tuple(range(26, 51)))}
ORGAN_NAMES = {0: "background", **{v: name for v, (name, _) in ORGANS.items()}}


def organ_labels(totalseg: np.ndarray) -> np.ndarray:
    out = np.zeros(totalseg.shape, np.uint8)
    for value, (_, sources) in ORGANS.items():
        out[np.isin(totalseg, sources)] = value
    return out


def organ_cases() -> dict[str, tuple[Scan, np.ndarray]]:
    """Two abdominal CTs of two subjects and their labels in :data:`ORGANS` values: the
    bundled sample's scan (``ct_abdomen``, 3 mm) and the DICOM series (``dicom_series_ct``,
    0.98 x 0.98 x 2 mm)."""
    ct = read_scan(DATA / "ct_abdomen" / "example_ct_sm.nii.gz")
    seg = read_label_map(DATA / "ct_abdomen" / "example_seg.nii.gz", like=ct).array
    dicom = read_scan(DATA / "dicom_series_ct")
    # the labels were exported with rows flipped: same box, y reversed (tests/io/test_dicom.py)
    flipped = read_label_map(DATA / "dicom_series_ct_labels" / "example_seg_dicom.nii.gz")
    for scan in (ct, dicom):
        scan.modality = "CT"
    return {"ct_abdomen": (ct, organ_labels(seg)),
            "dicom_series_ct": (dicom, organ_labels(flipped.array[:, ::-1, :]))}


def abdomen_ct(out: Path) -> None:
    """:func:`organ_cases` as training files: ``abdomen_*`` and ``dicomct_*``."""
    cases = organ_cases()
    for stem, case in (("abdomen", "ct_abdomen"), ("dicomct", "dicom_series_ct")):
        scan, labels = cases[case]
        write_scan(scan, out / f"{stem}_image.nii.gz", overwrite=True)
        write_label_map(LabelMap(array=labels, geometry=scan.geometry,
                                 class_names=ORGAN_NAMES), out / f"{stem}_labels.nii.gz",
                        overwrite=True)


def sample_reference() -> tuple[Path, Path]:
    samples = Path(__file__).resolve().parents[1] / "sample_volumes"
    ct = read_scan(samples / "ct_abdomen.nii.gz")
    target = samples / "ct_abdomen_tissue.nrrd"
    write_label_map(LabelMap(array=ct_tissue_labels(ct.array), geometry=ct.geometry,
                             class_names=TISSUE_NAMES), target, overwrite=True)
    organs = read_label_map(samples / "ct_abdomen_organs.nii.gz", like=ct)
    upper = samples / "ct_abdomen_upper_organs.nrrd"
    write_label_map(LabelMap(array=organ_labels(organs.array), geometry=ct.geometry,
                             class_names=ORGAN_NAMES), upper, overwrite=True)
    return target, upper


if __name__ == "__main__":
    if sys.argv[1] == "--brain-synth":
        folder = Path(sys.argv[2])
        folder.mkdir(parents=True, exist_ok=True)
        brain_synth(folder, int(sys.argv[3]) if len(sys.argv) > 3 else 24)
        sys.exit(0)
    if sys.argv[1] == "--abdomen":
        folder = Path(sys.argv[2])
        folder.mkdir(parents=True, exist_ok=True)
        abdomen_ct(folder)
        sys.exit(0)
    if sys.argv[1] == "--sample-reference":
        sample_reference()
        sys.exit(0)
    target = Path(sys.argv[1])
    target.mkdir(parents=True, exist_ok=True)
    brain(target)
    head_ct(target)
