"""Time and peak memory to open a scan: the plugin's reader against plain nibabel / SimpleITK.

Each reader runs in its own process (imports done before measuring), ``--repeats`` times;
we report the median wall time and the peak resident memory added by the read, in units of
the array's own size ("copies").  Goal (issue 2): under 10 % time overhead and no more than
one extra copy of the array over the plain library read.

    python benchmarks/bench_io.py [--file PATH] [--repeats 7]
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
from tests.data_root import SHARED_DATA  # noqa: E402 - the repository root must be importable first

DEFAULT = SHARED_DATA / "ct_head" / "head_ct.nii.gz"

CHILD = r"""
import json, resource, sys, time, gc
import numpy as np
path, method, repeats = sys.argv[1], sys.argv[2], int(sys.argv[3])
import nibabel as nib, SimpleITK as sitk
from napari_medseg.io import read_scan
from napari_medseg._napari.reader import read_layers

def read():
    if method == "nibabel":
        return np.asanyarray(nib.load(path).dataobj)
    if method == "simpleitk":
        return sitk.GetArrayFromImage(sitk.ReadImage(path))
    if method == "medseg.read_scan":
        return read_scan(path).array
    if method == "medseg napari reader":
        return read_layers(path)[0][0]
    raise SystemExit(method)

gc.collect()
base = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
times = []
for _ in range(repeats):
    t = time.perf_counter(); a = read(); times.append(time.perf_counter() - t)
    nbytes = a.nbytes; del a; gc.collect()
peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
print(json.dumps({"times": times, "peak_extra_bytes": peak - base, "array_bytes": nbytes}))
"""

METHODS = ("nibabel", "simpleitk", "medseg.read_scan", "medseg napari reader")


def run(path: Path, repeats: int) -> dict:
    results = {}
    for method in METHODS:
        out = subprocess.run(
            [sys.executable, "-c", CHILD, str(path), method, str(repeats)],
            capture_output=True, text=True, check=True,
        ).stdout
        r = json.loads(out.strip().splitlines()[-1])
        r["median_s"] = statistics.median(r["times"])
        r["copies"] = r["peak_extra_bytes"] / r["array_bytes"]
        results[method] = r
    return results


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--file", type=Path, default=DEFAULT)
    parser.add_argument("--repeats", type=int, default=7)
    args = parser.parse_args()
    if not args.file.exists():
        msg = f"{args.file} not found (needs ../shared/data)"
        raise SystemExit(msg)
    results = run(args.file, args.repeats)
    plain = min(results["nibabel"]["median_s"], results["simpleitk"]["median_s"])
    print(f"{args.file.name}: {results['nibabel']['array_bytes'] / 1e6:.1f} MB of voxels")
    print(f"{'reader':24s} {'median s':>9s} {'vs best plain':>13s} {'peak extra':>11s}")
    for method, r in results.items():
        print(
            f"{method:24s} {r['median_s']:9.3f} {r['median_s'] / plain:12.2f}x "
            f"{r['copies']:8.2f} arr"
        )
    out = REPO / "benchmarks" / "results" / "io_cpu.json"
    out.write_text(json.dumps({"file": str(args.file.name), "results": results}, indent=1))
    print(f"wrote {out.relative_to(REPO)}")


if __name__ == "__main__":
    main()
