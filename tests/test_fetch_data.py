"""``scripts/fetch_data.py`` and the data root, without the network: the manifest covers what the
tests read, the reserved cases stay out, a changed byte or voxel fails verification, a fetch
counts only once complete, and an unreachable registry gives one clear line."""

from __future__ import annotations

import ast
import gzip
import importlib.util
import io
import json
import os
import plistlib
import re
import shutil
import subprocess
import sys
import tarfile
from pathlib import Path

import nibabel as nib
import numpy as np
import pytest

from tests.data_root import (
    FETCH_COMMAND,
    MANIFEST,
    MARKER_NAME,
    REPO,
    SHARED,
    find_data_root,
    missing_reason,
)

_spec = importlib.util.spec_from_file_location("fetch_data", REPO / "scripts" / "fetch_data.py")
fetch_data = importlib.util.module_from_spec(_spec)
sys.modules["fetch_data"] = fetch_data  # its dataclasses look their module up
_spec.loader.exec_module(fetch_data)

MANIFEST_FILES: dict[str, dict] = json.loads(MANIFEST.read_text())["files"]
FOLDERS = {rel.split("/")[0] for rel in MANIFEST_FILES}
#: Names under which tests and benchmarks hold the data root.
ROOT_NAMES = {"shared_data", "SHARED_DATA", "DATA"}


def _paths_read_from_the_data_root(source: str) -> set[str]:
    """``root / "folder" / "file"`` chains on a data-root name, and ``"folder/file"`` literals
    whose folder is a data-root folder (parametrised relative paths)."""
    found = set()
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.BinOp) and isinstance(node.op, ast.Div):
            parts = []
            while isinstance(node, ast.BinOp) and isinstance(node.op, ast.Div):
                parts.insert(0, node.right)
                node = node.left
            if isinstance(node, ast.Name) and node.id in ROOT_NAMES:
                names = []
                for part in parts:
                    if not (isinstance(part, ast.Constant) and isinstance(part.value, str)):
                        break
                    names.append(part.value)
                if names:
                    found.add("/".join(names))
        elif (isinstance(node, ast.Constant) and isinstance(node.value, str)
              and re.fullmatch(r"[a-z0-9_]+/[\w.\-]+", node.value)
              and node.value.split("/")[0] in FOLDERS):
            found.add(node.value)
    return found


def test_every_scan_the_tests_and_benchmarks_read_is_in_the_manifest():
    files = [p for folder in ("tests", "benchmarks") for p in (REPO / folder).rglob("*.py")]
    used = {rel: path for path in files
            for rel in _paths_read_from_the_data_root(path.read_text())}
    assert len(used) > 20  # the scan above found the suite's reads
    names = {key.rsplit("/", 1)[1] for key in MANIFEST_FILES}
    missing = {rel: str(path.relative_to(REPO)) for rel, path in used.items()
               # a file or folder, a name prefix ("mri_lesion/brain1"), or a file of a root
               # that is itself a folder (bench_finetune: DATA = root / "brain_template")
               if not any(key.startswith(rel) for key in MANIFEST_FILES)
               and not ("/" not in rel and rel in names)}
    assert not missing, f"read by tests but not fetched (add to the manifest): {missing}"


def test_the_manifest_covers_every_file_of_the_reference_readme():
    readme = SHARED / "README.md"
    if not readme.is_file():
        pytest.skip("the reference copy ../shared/data (and its README) is not here")
    listed = re.findall(r"^\| `([^`]+)`", readme.read_text(), flags=re.MULTILINE)
    assert len(listed) >= 9
    for pattern in listed:
        prefix = pattern.rstrip("*")
        assert any(rel.startswith(prefix) for rel in MANIFEST_FILES), pattern
    on_disk = {str(p.relative_to(SHARED)) for p in SHARED.rglob("*") if p.is_file()}
    assert on_disk - set(MANIFEST_FILES) == {"README.md"}
    assert set(MANIFEST_FILES) <= on_disk
    assert fetch_data.check(SHARED, {"files": MANIFEST_FILES}) == 0


def test_the_reserved_cases_are_never_in_the_manifest_nor_extracted():
    for case in fetch_data.RESERVED:
        assert not [rel for rel in MANIFEST_FILES if case in rel]
    sdist = Path(fetch_data.SOURCES["pyradiomics"].archive)  # refused before it is opened
    with pytest.raises(ValueError, match="reserved cases"):
        fetch_data.read_members(sdist, {"pyradiomics-3.0.1/data/lung1_image.nrrd"})


def test_only_ct_head_is_converted_the_rest_are_byte_copies():
    by_check = {rel: entry["check"] for rel, entry in MANIFEST_FILES.items()}
    assert {rel for rel, how in by_check.items() if how == "voxels"} == {
        "ct_head/head_ct.nii.gz", "ct_head/head_ct_bone_threshold.nii.gz"}
    assert all(len(entry["sha256"]) == 64 for entry in MANIFEST_FILES.values())


def test_a_changed_byte_fails_verification(shared_data, tmp_path):
    rel = "mri_lesion/breast1_label.nrrd"
    (tmp_path / "mri_lesion").mkdir()
    shutil.copy(shared_data / rel, tmp_path / rel)
    results = fetch_data.verify_folder(tmp_path, {"files": MANIFEST_FILES})
    assert results[rel] == "bytes"
    assert sum(how is None for how in results.values()) == len(MANIFEST_FILES) - 1  # absent

    data = bytearray((tmp_path / rel).read_bytes())
    data[-1] ^= 0x01  # one bit of one voxel
    (tmp_path / rel).write_bytes(bytes(data))
    assert fetch_data.verify_file(tmp_path / rel, MANIFEST_FILES[rel]) is None
    assert fetch_data.check(tmp_path, {"files": {rel: MANIFEST_FILES[rel]}}) == 1


def test_a_converted_file_verifies_by_its_voxels_and_a_changed_voxel_or_spacing_fails(
        shared_data, tmp_path):
    rel = "ct_head/head_ct_bone_threshold.nii.gz"
    entry = MANIFEST_FILES[rel]
    path = tmp_path / "bone.nii.gz"
    # another gzip stream of the same file (as another zlib would write): other bytes, same image
    path.write_bytes(gzip.compress(gzip.decompress((shared_data / rel).read_bytes()),
                                   compresslevel=9, mtime=0))
    assert fetch_data.verify_file(path, entry) == "voxels"

    image = nib.load(shared_data / rel)
    voxels = np.asarray(image.dataobj).copy()
    voxels[128, 128, 50] ^= 1
    nib.save(nib.Nifti1Image(voxels, image.affine, image.header), path)
    assert fetch_data.verify_file(path, entry) is None

    moved = image.affine.copy()
    moved[0, 0] = 0.96
    nib.save(nib.Nifti1Image(np.asarray(image.dataobj), moved, image.header), path)
    assert fetch_data.verify_file(path, entry) is None


def test_the_invesalius_conversion_rebuilds_ct_head_from_the_raw_matrix(shared_data, tmp_path):
    """Cranium.inv3 holds the (z, y, x) int16 matrix, main.plist and the masks' plists (values
    as in invesalius-examples 3.1.99998-4); here the matrix is taken from the reference file,
    so the recipe (axes, affine, codes, threshold, writer) must give the reference back."""
    matrix = np.asarray(nib.load(shared_data / "ct_head" / "head_ct.nii.gz").dataobj).T
    main = {"matrix": {"dtype": "int16", "filename": "matrix.dat", "shape": list(matrix.shape)},
            "spacing": [0.95703119999999997, 0.95703119999999997, 1.5], "modality": "CT"}
    mask = {"threshold_range": [226, 3071], "mask_file": "mask_0.dat"}
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w:gz") as tar:
        for name, data in (("main.plist", plistlib.dumps(main)),
                           ("mask_0.plist", plistlib.dumps(mask)),
                           ("matrix.dat", matrix.astype("<i2").tobytes())):
            info = tarfile.TarInfo(f"tmpocjcea/{name}")
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
    fetch_data.convert_invesalius(buffer.getvalue(), tmp_path / "ct_head")
    for name in ("head_ct.nii.gz", "head_ct_bone_threshold.nii.gz"):
        how = fetch_data.verify_file(tmp_path / "ct_head" / name, MANIFEST_FILES[f"ct_head/{name}"])
        assert how in {"bytes", "voxels"}, name


def test_a_fetch_counts_only_once_its_marker_matches_the_manifest(tmp_path):
    cache, shared = tmp_path / "cache", tmp_path / "shared"
    cache.mkdir()
    absent = tmp_path / "absent"
    assert find_data_root(shared=absent, cache=cache) is None  # files may be there, no marker
    assert FETCH_COMMAND in missing_reason(cache)
    assert str(cache) in missing_reason(cache)

    fetch_data.write_marker(cache, dict.fromkeys(MANIFEST_FILES, "bytes"))
    assert find_data_root(shared=absent, cache=cache) == cache
    assert not list(cache.glob("*.partial"))

    shared.mkdir()  # a reference copy wins, unless the fetched folder is preferred
    assert find_data_root(shared=shared, cache=cache, prefer_fetched=False) == shared
    assert find_data_root(shared=shared, cache=cache, prefer_fetched=True) == cache

    record = json.loads((cache / MARKER_NAME).read_text())
    record["manifest_sha256"] = "0" * 64  # written for another manifest: stale
    (cache / MARKER_NAME).write_text(json.dumps(record))
    assert find_data_root(shared=absent, cache=cache) is None


def test_an_unreachable_registry_gives_one_clear_line_and_no_marker(tmp_path):
    env = {k: v for k, v in os.environ.items() if not k.upper().startswith(("PIP_", "NPM_"))}
    env.update(PIP_CONFIG_FILE=os.devnull, PIP_INDEX_URL="http://127.0.0.1:9/simple",
               PIP_NO_CACHE_DIR="1", NAPARI_MEDSEG_DATA=str(tmp_path / "cache"))
    done = subprocess.run([sys.executable, str(REPO / "scripts" / "fetch_data.py")], env=env,
                          capture_output=True, text=True, timeout=120, check=False)
    assert done.returncode == 1
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1, done.stderr
    assert lines[0].startswith("fetch_data: could not fetch pyradiomics 3.0.1")
    assert "Traceback" not in done.stderr + done.stdout
    assert not (tmp_path / "cache" / MARKER_NAME).exists()
