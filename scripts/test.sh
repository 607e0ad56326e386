#!/usr/bin/env bash
# Quickstart 2/2: set up (with the Spark extra) and run the whole test suite; extra arguments go
# to pytest. Setup installs only when pyproject.toml, the extras or Python changed, so a re-run
# starts testing within seconds (`bash scripts/setup.sh dev,spark --force` reinstalls).
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh dev,spark
# shellcheck disable=SC1091
. .venv/bin/activate
python -m pytest "$@"
