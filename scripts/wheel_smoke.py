"""The built wheel is the product: installed (not editable) beside nothing of the checkout,
it opens each sample through napari's plugin manifest, segments with a starter model and
reads a DICOM series.

    python scripts/wheel_smoke.py DIST_DIR     # DIST_DIR holds the built .whl

The wheel goes into a temporary folder (``pip install --no-deps --target``) that comes first
on ``sys.path`` of a fresh interpreter, so every module, sample, weight and manifest comes
from the wheel; the dependencies are the environment's.
"""

from __future__ import annotations

import subprocess
import sys
import tempfile
from pathlib import Path

CHECK = r"""
import sys
from pathlib import Path
import numpy as np
import napari_medseg
root = Path(napari_medseg.__file__).parent
assert str(root).startswith(sys.argv[1]), f"imported from {root}, not the wheel"
from npe2 import PluginManifest
manifest = PluginManifest.from_file(root / "napari.yaml")
from napari_medseg._napari import sample_data
opened = []
for sample in manifest.contributions.sample_data:
    function = getattr(sample_data, sample.command.rsplit(".", 1)[1].removeprefix("sample_"))
    layers = function()
    assert layers and all(np.asarray(data).size for data, *_ in layers), sample.key
    opened.append(sample.key)
from napari_medseg.inference import PredictOptions, Predictor, find_checkpoint
from napari_medseg.io import read_scan
scan = read_scan(root / "sample_volumes" / "ct_abdomen.nii.gz")
model = find_checkpoint("upper-abdomen-ct-organs")
assert str(model).startswith(sys.argv[1])
labels = Predictor.load(model).predict(scan, PredictOptions(device="cpu")).labels
assert (labels.array > 0).mean() > 0.05
shared = Path(sys.argv[2]) / "dicom_series_ct"
dicom = read_scan(shared).shape if shared.is_dir() else "skipped (no shared data)"
print(f"wheel OK: samples {opened}; segmented {int((labels.array > 0).sum())} voxels; "
      f"DICOM series {dicom}")
"""


def main() -> int:
    dist = Path(sys.argv[1])
    wheel = sorted(dist.glob("napari_medseg-*.whl"))[-1]
    size = wheel.stat().st_size / 2**20
    repo = Path(__file__).resolve().parents[1]
    sys.path.insert(0, str(repo))
    from tests.data_root import find_data_root  # ../shared/data, or the scans fetched for tests

    shared = find_data_root() or repo / "missing-shared-data"
    with tempfile.TemporaryDirectory() as tmp:
        subprocess.run([sys.executable, "-m", "pip", "install", "-q", "--no-deps",
                        "--disable-pip-version-check", "--target", tmp, str(wheel)], check=True)
        proc = subprocess.run([sys.executable, "-c", CHECK, tmp, str(shared)], cwd=tmp,
                              env={"PYTHONPATH": tmp, "PATH": "/usr/bin:/bin",
                                   "HOME": tmp, "NAPARI_MEDSEG_CONFIG_DIR": f"{tmp}/cfg",
                                   "NAPARI_MEDSEG_MODELS": f"{tmp}/models"},
                              capture_output=True, text=True)
    print(f"{wheel.name}: {size:.1f} MiB")
    print(proc.stdout.strip() or proc.stderr[-2000:])
    return proc.returncode


if __name__ == "__main__":
    sys.exit(main())
