"""Fixtures shared by the whole suite: the real scans of ``../shared/data`` (or of a fetch by
``scripts/fetch_data.py``, see ``tests/data_root.py``)."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.data_root import SHARED_DATA, missing_reason

REPO = Path(__file__).resolve().parents[1]
SAMPLE_VOLUMES = REPO / "sample_volumes"


@pytest.fixture(autouse=True)
def _isolated_user_folder(tmp_path_factory, monkeypatch):
    """Tests never read or write the person's ~/.napari-medseg (models, journals) nor their
    remembered widget settings (~/.config/napari-medseg)."""
    user = tmp_path_factory.mktemp("user")
    monkeypatch.setenv("NAPARI_MEDSEG_MODELS", str(user / "models"))
    monkeypatch.setenv("NAPARI_MEDSEG_CONFIG_DIR", str(user / "config"))


@pytest.fixture(scope="session")
def shared_data() -> Path:
    """The real scans (``../shared/data`` or a complete fetch); tests that need them skip
    cleanly, with the command that fetches them, when there are none."""
    if not SHARED_DATA.is_dir():
        pytest.skip(missing_reason())
    return SHARED_DATA


@pytest.fixture(scope="session")
def sample_volumes() -> Path:
    return SAMPLE_VOLUMES


@pytest.fixture(scope="session")
def mr_dicom_series(shared_data):
    """The oblique MR DICOM series, read once per session (one of its files is slow to parse)."""
    from napari_medseg.io import read_scan

    return read_scan(shared_data / "dicom_series_mr")


def save_tiny_ct_checkpoint(path: Path, class_names: dict[int, str], **spec_fields):
    """A seeded tiny 3D U-Net (features 4, 8, 16) for CT (soft-tissue window), saved at
    ``path``; ``spec_fields`` (patch_size, target_spacing...) go into its spec."""
    import torch

    from napari_medseg.models import (
        CheckpointSpec,
        IntensityContract,
        create_model,
        save_checkpoint,
    )

    torch.manual_seed(0)
    n = len(class_names)
    model = create_model("unet", spatial_dims=3, in_channels=1, out_channels=n,
                         features=(4, 8, 16))
    spec = CheckpointSpec(
        architecture="unet", spatial_dims=3, in_channels=1, out_channels=n,
        options={"features": [4, 8, 16]}, class_names=dict(class_names),
        intensity=[IntensityContract(modality="CT", normalization="ct_window",
                                     window=(-160, 240))],
        **spec_fields,
    )
    return save_checkpoint(model, spec, path)
