"""The same leads through a real uvicorn serving the registered champion, the MLflow pyfunc and
the CRM file scorer get the same probabilities (no second feature code path anywhere)."""

from __future__ import annotations

import os
import sys
from collections.abc import Iterator
from pathlib import Path

import httpx
import mlflow
import numpy as np
import pandas as pd
import pytest

from predictive_scoring.registry import pyfunc_input_frame
from tests.projects import run, score_file
from tests.servers import uvicorn_service

pytestmark = [pytest.mark.integration, pytest.mark.slow]
AS_OF = "2025-10-01T00:00:00Z"
KEY = "integration-key"


@pytest.fixture(scope="module")
def service(project: Path) -> Iterator[httpx.Client]:
    run([sys.executable, "-m", "predictive_scoring.cli", "promote", "--force"], project)
    env = {k: v for k, v in os.environ.items() if not k.startswith("PREDICTIVE_SCORING_")}
    env |= {
        "PREDICTIVE_SCORING_API_KEYS": KEY,
        "PREDICTIVE_SCORING_TRACKING_URI": f"sqlite:///{project / 'mlflow.db'}",
        "PYTHONPATH": str(project / "src"),
    }
    with (
        uvicorn_service(env, cwd=project) as base,
        httpx.Client(base_url=base, headers={"X-API-Key": KEY}, timeout=60) as client,
    ):
        yield client


def test_service_pyfunc_and_file_scorer_agree(
    project: Path, service: httpx.Client, tmp_path: Path
) -> None:
    leads = pd.read_parquet(project / "data/demo/leads.parquet")
    # A lead cannot be scored before it existed: only leads created before AS_OF.
    leads = leads[leads["created_at"] < pd.Timestamp(AS_OF)].sample(60, random_state=1)
    events = pd.read_parquet(project / "data/demo/events.parquet")
    events = events[events["lead_id"].isin(leads["lead_id"])][["lead_id", "event_type", "ts"]]
    events = events[events["ts"] < pd.Timestamp(AS_OF)]

    body = {"leads": []}
    for lead in leads.to_dict("records"):
        own = events[events["lead_id"] == lead["lead_id"]]
        attrs = {
            k: (None if pd.isna(v) else v)
            for k, v in lead.items()
            if k not in ("lead_id", "created_at")
        }
        body["leads"].append(
            {
                "lead_id": lead["lead_id"],
                "created_at": lead["created_at"].isoformat(),
                "as_of": AS_OF,
                "attributes": attrs,
                "events": [
                    {"event_type": t, "ts": ts.isoformat()}
                    for t, ts in zip(own["event_type"], own["ts"], strict=True)
                ],
            }
        )
    r = service.post("/v1/score/batch", json=body)
    assert r.status_code == 200, r.text
    served = {x["lead_id"]: x["probability"] for x in r.json()["results"]}
    assert r.json()["model"]["version"] != ""

    mlflow.set_tracking_uri(f"sqlite:///{project / 'mlflow.db'}")
    pyfunc = mlflow.pyfunc.load_model("models:/lead-scoring@champion")
    from_pyfunc = pyfunc.predict(pyfunc_input_frame(leads, events, as_of=AS_OF))

    scored = score_file(project, leads, events, tmp_path, as_of=AS_OF)

    ids = leads["lead_id"].tolist()
    service_p = np.array([served[i] for i in ids])
    np.testing.assert_allclose(from_pyfunc["probability"].to_numpy(), service_p, atol=1e-9)
    np.testing.assert_allclose(
        scored.set_index("lead_id").loc[ids, "probability"].to_numpy(), service_p, atol=1e-9
    )
    assert np.ptp(service_p) > 0.01
