"""npe2 sample-data contributions: real scans bundled in ``sample_volumes/``."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from napari_medseg._napari.layers import label_layer_data, scan_layer_data
from napari_medseg._napari.warm_up import warm_up
from napari_medseg.errors import ScanReadError
from napari_medseg.io import read_label_map, read_scan


def sample_dir() -> Path:
    """``sample_volumes/`` inside the package (installed) or at the repository root."""
    here = Path(__file__).resolve()
    for candidate in (here.parents[1] / "sample_volumes", here.parents[3] / "sample_volumes"):
        if candidate.is_dir():
            return candidate
    msg = "the bundled sample_volumes folder is missing; reinstall napari-medseg"
    raise ScanReadError(msg)


def _scan_and_labels(scan_name: str, labels_name: str | None) -> list[tuple[Any, ...]]:
    warm_up()  # the tabs' heavy libraries load in the background meanwhile
    folder = sample_dir()
    scan = read_scan(folder / scan_name)
    layers = [scan_layer_data(scan)]
    if labels_name is not None:
        layers.append(label_layer_data(read_label_map(folder / labels_name, like=scan)))
    return layers


def ct_abdomen() -> list[tuple[Any, ...]]:
    """Abdominal CT (TotalSegmentator test case, 3 mm) with its organ labels."""
    return _scan_and_labels("ct_abdomen.nii.gz", "ct_abdomen_organs.nii.gz")


def mr_brain_lesion() -> list[tuple[Any, ...]]:
    """T1 brain MRI with an enhancing lesion (pyradiomics test case) and its lesion mask."""
    return _scan_and_labels("mr_brain_lesion.nrrd", "mr_brain_lesion_label.nrrd")


def mr_abdomen() -> list[tuple[Any, ...]]:
    """Abdominal MR (TotalSegmentator test case, 3 mm) with its organ labels."""
    return _scan_and_labels("mr_abdomen.nii.gz", "mr_abdomen_organs.nii.gz")
