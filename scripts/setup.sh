#!/usr/bin/env bash
# Create .venv (if needed) and install the project with the given extras. Sourced by the others.
set -euo pipefail
cd "$(dirname "$0")/.."
PYTHON="${PYTHON:-python3}"
EXTRAS="${1:-dev}"
if ! "$PYTHON" -c 'import sys; sys.exit(sys.version_info < (3, 11))' 2>/dev/null; then
  echo "error: predictive_scoring needs Python 3.11 or newer; set PYTHON=/path/to/python3.11" >&2
  exit 1
fi
if [ ! -x .venv/bin/python ]; then
  echo "==> creating .venv"
  "$PYTHON" -m venv .venv
fi
# shellcheck disable=SC1091
. .venv/bin/activate
echo "==> installing predictive-scoring[$EXTRAS] (first time: a few minutes)"
python -m pip install -q --upgrade pip
python -m pip install -q -e ".[$EXTRAS]"
# the notebook test and `jupyter` need the venv's kernel registered under the name python3
python -m ipykernel install --sys-prefix --name python3 >/dev/null 2>&1 || true
