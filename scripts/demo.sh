#!/usr/bin/env bash
# Quickstart 1/2: set up, build the demo model (`dvc repro`), promote it, serve it on :8000.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh dev
# shellcheck disable=SC1091
. .venv/bin/activate
echo "==> dvc repro (demo data -> validate -> featurize -> train -> thresholds -> evaluate -> export)"
dvc repro
echo "==> promoting the challenger to champion"
predictive-scoring promote || echo "(kept the current champion)"
if [ ! -f .env ] || ! grep -q '^PREDICTIVE_SCORING_API_KEYS=' .env; then
  echo "PREDICTIVE_SCORING_API_KEYS=$(predictive-scoring api-key)" >> .env
fi
KEY=$(grep '^PREDICTIVE_SCORING_API_KEYS=' .env | head -1 | cut -d= -f2 | cut -d, -f1)
cat <<MSG

==> serving models:/lead-scoring@champion on http://127.0.0.1:8000  (docs: /docs)
Try it from another terminal:

curl -s http://127.0.0.1:8000/v1/score \\
  -H "X-API-Key: $KEY" -H "Content-Type: application/json" \\
  -d '{"lead_id": "L-1", "attributes": {"industry": "software", "employees": 250,
       "job_title": "VP of Marketing", "lead_source": "webinar", "email": "ana@acme.io"},
       "created_at": "$(date -u -d '-20 days' +%Y-%m-%dT%H:%M:%SZ)",
       "events": [{"event_type": "pricing_page_view", "ts": "$(date -u -d '-2 days' +%Y-%m-%dT%H:%M:%SZ)"},
                  {"event_type": "demo_request", "ts": "$(date -u -d '-1 days' +%Y-%m-%dT%H:%M:%SZ)"}]}'

MSG
export MLFLOW_TRACKING_URI="${MLFLOW_TRACKING_URI:-sqlite:///$(pwd)/mlflow.db}"
export PREDICTIVE_SCORING_TRACKING_URI="$MLFLOW_TRACKING_URI"
exec predictive-scoring serve --host 127.0.0.1 --port 8000
