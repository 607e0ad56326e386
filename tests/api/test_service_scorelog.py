"""The service's score log and lineage: in-process, under a real uvicorn with two workers, and
the lineage the MLflow run and model version are tagged with."""

from __future__ import annotations

import os
import re
import subprocess
import sys
import time
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import httpx
import mlflow
import numpy as np
import orjson
import pandas as pd
import pyarrow.parquet as pq
import pytest
from fastapi.testclient import TestClient
from tests.registries import MODEL, client_of, register, store_uri
from tests.scorers import NOW, build_scorer
from tests.servers import uvicorn_service
from tests.service_cases import API_KEY, make_settings

from predictive_scoring import records
from predictive_scoring.registry import load_registered_scorer
from predictive_scoring.scorelog import process_score_log, read_scores
from predictive_scoring.scoring import FRAME_LIMITS, Scorer
from predictive_scoring.serve import create_app
from predictive_scoring.serve.decode import decode_leads

pytestmark = pytest.mark.api

LINEAGE = ("definition_hash", "thresholds_version", "data_hash")


def _metric(text: str, name: str) -> float:
    """The value of one sample line of the Prometheus text ``name{labels} value``."""
    found = [line for line in text.splitlines() if line.startswith(name + " ")]
    assert len(found) == 1, (name, found)
    return float(found[0].rsplit(" ", 1)[1])


def test_every_scored_lead_is_logged_with_its_lineage_and_features(
    live_bundle: Path, leads: list[dict[str, Any]]
) -> None:
    store = live_bundle.parent / "logs"
    app = create_app(make_settings(live_bundle, log_flush_seconds=0.05))
    with TestClient(app, headers={"X-API-Key": API_KEY}) as c:
        one = c.post("/v1/score", json=leads[0]).json()
        batch = c.post("/v1/score/batch", json={"leads": leads[1:11]}, params={"reasons": False})
        info = c.get("/v1/model").json()
        deadline = time.monotonic() + 30  # waits for the writer thread; no timing asserted
        while time.monotonic() < deadline:
            text = c.get("/metrics").text
            if _metric(text, "predictive_scoring_score_log_written_total") == 11:
                break
            time.sleep(0.05)
        assert _metric(text, "predictive_scoring_score_log_written_total") == 11
        assert 'predictive_scoring_score_log_dropped_total{reason="queue_full"} 0.0' in text
    scorer = Scorer.load(live_bundle)
    lineage = scorer.lineage
    for key in LINEAGE:
        assert one["model"][key] == batch.json()["model"][key] == info[key] == lineage[key]
    assert info["model_sha256"] == lineage["model_sha256"]
    got = read_scores(store).set_index("lead_id").loc[[p["lead_id"] for p in leads[:11]]]
    assert set(got["source"]) == {"api"}
    for key, value in lineage.items():
        assert set(got[key]) == {value}, key
    assert got["probability"].iloc[0] == one["probability"]
    assert got["probability"].iloc[1:].tolist() == [
        r["probability"] for r in batch.json()["results"]
    ]
    admitted = scorer.admit(
        decode_leads(orjson.dumps({"leads": leads[:11]}), batch=True),
        now=NOW + 3_600,
        limits=FRAME_LIMITS,
    )
    X = scorer.executor.transform(admitted.batch)
    served = got[[records.feature_column(n) for n in scorer.feature_names]].to_numpy(float)
    np.testing.assert_array_equal(served, X)  # the feature vector exactly as served
    assert (got["as_of"] == pd.Timestamp(NOW, unit="s", tz="UTC")).all()


def test_the_log_can_be_turned_off(live_bundle: Path, leads: list[dict[str, Any]]) -> None:
    app = create_app(make_settings(live_bundle, log_enabled=False))
    with TestClient(app, headers={"X-API-Key": API_KEY}) as c:
        assert c.post("/v1/score/batch", json={"leads": leads[:5]}).status_code == 200
    assert not (live_bundle.parent / "logs").exists()


def test_a_full_queue_drops_records_but_never_a_score(
    live_bundle: Path, leads: list[dict[str, Any]]
) -> None:
    app = create_app(make_settings(live_bundle, log_queue_size=5, log_flush_seconds=60))
    with TestClient(app, headers={"X-API-Key": API_KEY}) as c:
        kept = c.post("/v1/score/batch", json={"leads": leads[:4]})
        dropped = c.post("/v1/score/batch", json={"leads": leads[4:14]})
        assert kept.status_code == dropped.status_code == 200
        assert len(dropped.json()["results"]) == 10
        text = c.get("/metrics").text
    assert 'predictive_scoring_score_log_dropped_total{reason="queue_full"} 10.0' in text
    assert len(read_scores(live_bundle.parent / "logs")) == 4  # written at shutdown


@pytest.mark.slow
def test_two_uvicorn_workers_lose_nothing_and_corrupt_nothing(
    bundles: dict[str, Path], leads: list[dict[str, Any]], tmp_path: Path
) -> None:
    store = tmp_path / "shared-logs"
    env = {k: v for k, v in os.environ.items() if not k.startswith("PREDICTIVE_SCORING_")}
    env.pop("MLFLOW_TRACKING_URI", None)
    env |= {
        "PREDICTIVE_SCORING_API_KEYS": API_KEY,
        "PREDICTIVE_SCORING_BUNDLE_DIR": str(bundles["1"]),
        "PREDICTIVE_SCORING_LOG_DIR": str(store),
        "PREDICTIVE_SCORING_LOG_FLUSH_SECONDS": "0.1",
    }

    def body(i: int) -> tuple[str, dict[str, Any]]:
        """Request i: one lead, or a batch of 2 to 6; every lead id is new."""
        picked = [leads[(i + j) % len(leads)] for j in range(1 if i % 3 == 0 else 2 + i % 5)]
        renamed = [{**p, "lead_id": f"r{i}-{j}"} for j, p in enumerate(picked)]
        return (
            ("/v1/score", renamed[0])
            if len(renamed) == 1
            else ("/v1/score/batch", {"leads": renamed})
        )

    def writers() -> set[str]:
        return {p.name.rsplit("-", 2)[1] for p in store.glob("scores/*/*.parquet")}

    sent: list[str] = []
    fresh = httpx.Limits(max_keepalive_connections=0)  # a connection per request: both accept
    with (
        uvicorn_service(env, cwd=tmp_path, args=["--workers", "2"]) as base,
        httpx.Client(
            base_url=base, headers={"X-API-Key": API_KEY}, timeout=30, limits=fresh
        ) as client,
        ThreadPoolExecutor(max_workers=8) as pool,
    ):

        def post(i: int) -> list[str]:
            path, payload = body(i)
            r = client.post(path, json=payload)
            assert r.status_code == 200, r.text
            got = r.json()
            return (
                [got["lead_id"]] if path == "/v1/score" else [x["lead_id"] for x in got["results"]]
            )

        # Rounds of concurrent requests until both workers have written (each flushes every
        # 0.1 s), so that the two write into the same folder at once.
        for round_ in range(100):
            sent += [
                i for ids in pool.map(post, range(40 * round_, 40 * (round_ + 1))) for i in ids
            ]
            if len(writers()) == 2:
                break
            time.sleep(0.2)
        n_requests = 40 * (round_ + 1)
        sent += [i for ids in pool.map(post, range(n_requests, n_requests + 40)) for i in ids]
        n_requests += 40
    # uvicorn stopped by SIGTERM: each worker's lifespan wrote what it had queued
    parts = sorted(store.glob("scores/*/*"))
    assert parts and all(p.suffix == ".parquet" and not p.name.startswith(".") for p in parts)
    assert sum(pq.read_table(p).num_rows for p in parts) == len(sent)  # every part readable
    assert len(writers()) == 2, "both workers wrote parts"
    got = read_scores(store, columns=["lead_id", "source"])
    counts = Counter(got["lead_id"])
    assert len(got) == len(sent) and set(counts) == set(sent)
    assert max(counts.values()) == 1, "no lead logged twice"
    assert {re.sub(r"-\d+$", "", i) for i in sent} == {f"r{i}" for i in range(n_requests)}


@pytest.mark.slow
def test_the_run_and_version_carry_the_lineage_every_score_carries(
    tmp_path: Path, leads: list[dict[str, Any]]
) -> None:
    scorer = build_scorer(version="run-0f3c2a1b", seed=0, rounds=20)
    version = register(scorer, project=tmp_path, alias="champion")
    client = client_of(tmp_path)
    mv = client.get_model_version(MODEL, version)
    run_tags = client.get_run(mv.run_id).data.tags
    served = load_registered_scorer(MODEL, "champion", root=tmp_path)
    lineage = served.lineage
    assert lineage["model_version"] == version
    for key, value in lineage.items():
        assert mv.tags[key] == run_tags[key] == value, key
    with TestClient(
        create_app(make_settings(None, project_dir=tmp_path)),  # type: ignore[arg-type]
        headers={"X-API-Key": API_KEY},
    ) as c:
        model = c.post("/v1/score", json=leads[0]).json()["model"]
    assert model["version"] == version
    assert {k: model[k] for k in LINEAGE} == {k: mv.tags[k] for k in LINEAGE}
    # the pyfunc reports the registry version and, given a destination, logs with it
    pyfunc = mlflow.pyfunc.load_model(f"models:/{MODEL}/{version}")
    frame = pd.DataFrame(
        [{"lead_id": "p-1", "created_at": leads[0]["created_at"], "as_of": leads[0]["as_of"]}]
    )
    out = pyfunc.predict(frame, params={"log_dir": str(tmp_path / "pyfunc-log")})
    assert out["model_version"].tolist() == [version]
    process_score_log(tmp_path / "pyfunc-log").close()  # what the process does at exit
    logged = read_scores(tmp_path / "pyfunc-log").iloc[0]
    assert (logged["source"], logged["model_version"]) == ("pyfunc", version)
    assert {k: logged[k] for k in LINEAGE} == {k: mv.tags[k] for k in LINEAGE}
    # the file scorer, run from another folder on the store named by the setting alone
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    pd.DataFrame(
        [
            {"lead_id": p["lead_id"], "created_at": p["created_at"], **p["attributes"]}
            for p in leads
        ]
    ).to_csv(elsewhere / "leads.csv", index=False)
    env = {k: v for k, v in os.environ.items() if not k.startswith("PREDICTIVE_SCORING_")}
    env.pop("MLFLOW_TRACKING_URI", None)
    env["PREDICTIVE_SCORING_TRACKING_URI"] = store_uri(tmp_path)
    command = [sys.executable, "-m", "predictive_scoring.cli", "score", "--leads", "leads.csv"]
    done = subprocess.run(
        [*command, "--output", "scored.csv", "--log-dir", "crm-log"],
        cwd=elsewhere,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    assert not (elsewhere / "mlflow.db").exists(), "the store is the one the setting names"
    scored = pd.read_csv(elsewhere / "scored.csv", dtype=str)
    assert set(scored["model_version"]) == {version} and len(scored) == len(leads)
    assert {k: set(scored[k]) for k in LINEAGE} == {k: {mv.tags[k]} for k in LINEAGE}
    logged_file = read_scores(elsewhere / "crm-log")
    assert set(logged_file["source"]) == {"file"} and set(logged_file["model_version"]) == {
        version
    }
