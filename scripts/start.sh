#!/usr/bin/env bash
# Install (scripts/setup.sh) and open napari with the MedSeg widgets and a bundled sample scan.
# Extra arguments go to `napari-medseg view` (e.g. a scan path, or --sample mr_brain_lesion).
# On a machine without a screen it runs on a virtual one and saves a screenshot instead.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
export QT_API="${QT_API:-pyqt6}"  # napari's default binding (PyQt5 is deprecated there)
if [ -n "${DISPLAY:-}" ] || [ -n "${WAYLAND_DISPLAY:-}" ]; then
    exec .venv/bin/napari-medseg view "$@"
fi
shot="${TMPDIR:-/tmp}/napari-medseg-start.png"
echo "start: no screen here; running napari on a virtual screen and saving $shot"
exec xvfb-run -a -s "-screen 0 1600x1000x24" .venv/bin/napari-medseg view "$@" --screenshot "$shot"
