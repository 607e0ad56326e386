#!/usr/bin/env bash
# Quickstart 2/2: set up (with the Spark extra) and run the whole test suite.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh dev,spark
# shellcheck disable=SC1091
. .venv/bin/activate
python -m pytest "$@"
