#!/usr/bin/env bash
# Install everything (scripts/setup.sh --test) and run the whole test suite.
# GUI tests get a virtual screen from pytest-xvfb; tests marked `slow` are skipped
# (run them with: .venv/bin/python -m pytest -m slow).  Extra arguments go to pytest.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh --test
export QT_API="${QT_API:-pyqt6}"  # napari's default binding; CI also runs GUI tests on PyQt5
exec .venv/bin/python -m pytest "$@"
