#!/usr/bin/env bash
# The prepared GPU check: bash benchmarks/gpu_check.sh OUT_DIR [--dry]
# Installs nothing; uses .venv/bin/python when present, else the python on PATH.
# Without a GPU it runs a short CPU dry run of every step and says so.
set -uo pipefail
cd "$(dirname "$0")/.."
out=${1:?usage: benchmarks/gpu_check.sh OUT_DIR [--dry]}
shift
py=python
[ -x .venv/bin/python ] && py=.venv/bin/python
exec "$py" benchmarks/gpu_check.py "$out" "$@"
