"""The service under a real uvicorn process, called over HTTP with httpx."""

from __future__ import annotations

import os
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from tests.servers import patience, uvicorn_service
from tests.service_cases import ADMIN_KEY, API_KEY, error_names, post_case

from predictive_scoring.scoring import Scorer

pytestmark = [pytest.mark.api, pytest.mark.slow]


@pytest.fixture(scope="module")
def server(
    bundles: dict[str, Path], tmp_path_factory: pytest.TempPathFactory
) -> Iterator[tuple[httpx.Client, Path]]:
    """uvicorn --factory on a bundle directory the tests may replace; yields a keyed client."""
    live = Scorer.load(bundles["1"]).save(tmp_path_factory.mktemp("served") / "bundle")
    env = {k: v for k, v in os.environ.items() if not k.startswith("PREDICTIVE_SCORING_")}
    env.pop("MLFLOW_TRACKING_URI", None)
    env |= {
        "PREDICTIVE_SCORING_API_KEYS": f"{API_KEY},another-key",
        "PREDICTIVE_SCORING_ADMIN_KEYS": ADMIN_KEY,
        "PREDICTIVE_SCORING_BUNDLE_DIR": str(live),
        "PREDICTIVE_SCORING_MAX_BATCH": "100",
        "PREDICTIVE_SCORING_MAX_EVENTS_PER_LEAD": "50",
        "PREDICTIVE_SCORING_MAX_BODY_BYTES": "200000",
    }
    with (
        uvicorn_service(env, cwd=live.parent) as base,
        httpx.Client(base_url=base, headers={"X-API-Key": API_KEY}, timeout=30) as client,
    ):
        yield client, live


def test_scores_over_http(server: tuple[httpx.Client, Path], leads: list[dict[str, Any]]) -> None:
    client, _ = server
    one = client.post("/v1/score", json=leads[0])
    assert one.status_code == 200 and one.headers["content-type"] == "application/json"
    assert one.json()["lead_id"] == leads[0]["lead_id"]
    batch = client.post("/v1/score/batch", json={"leads": leads}).json()
    assert [r["lead_id"] for r in batch["results"]] == [p["lead_id"] for p in leads]
    assert batch["results"][0]["probability"] == one.json()["probability"]


def test_auth_and_open_endpoints_over_http(
    server: tuple[httpx.Client, Path], leads: list[dict[str, Any]]
) -> None:
    client, _ = server
    base = str(client.base_url)
    assert httpx.post(f"{base}/v1/score", json=leads[0]).status_code == 401
    bearer = {"Authorization": "Bearer another-key"}
    assert httpx.post(f"{base}/v1/score", json=leads[0], headers=bearer).status_code == 200
    for path in ("/docs", "/openapi.json", "/healthz", "/readyz", "/metrics"):
        assert httpx.get(f"{base}{path}").status_code == 200, path


def test_bad_requests_over_http(
    server: tuple[httpx.Client, Path], bad_case: tuple[str, str, Any, str]
) -> None:
    client, _ = server
    _, path, body, field = bad_case
    r = post_case(client, path, body, {})
    assert 400 <= r.status_code < 500, r.text
    assert error_names(r, field), r.json()


def test_reload_under_concurrent_load_drops_nothing(
    server: tuple[httpx.Client, Path], bundles: dict[str, Path], leads: list[dict[str, Any]]
) -> None:
    client, live = server
    base = str(client.base_url)
    stop = threading.Event()
    failures: list[str] = []
    versions: list[str] = []
    lock = threading.Lock()

    def fire(i: int) -> None:
        with httpx.Client(base_url=base, headers={"X-API-Key": API_KEY}, timeout=30) as c:
            n = 0
            while not stop.is_set() or n < 5:
                payload = leads[(i + n) % len(leads)]
                try:
                    r = (
                        c.post("/v1/score", json=payload)
                        if n % 2
                        else c.post("/v1/score/batch", json={"leads": leads[:10]})
                    )
                    if r.status_code != 200:
                        raise AssertionError(f"{r.status_code} {r.text[:200]}")
                    with lock:
                        versions.append(r.json()["model"]["version"])
                except Exception as exc:
                    with lock:
                        failures.append(repr(exc))
                n += 1

    threads = [threading.Thread(target=fire, args=(i,)) for i in range(6)]
    for t in threads:
        t.start()
    time.sleep(0.3)
    Scorer.load(bundles["2"]).save(live)
    admin = {"X-API-Key": ADMIN_KEY}
    reload = client.post("/v1/admin/reload", headers=admin)
    time.sleep(0.3)
    stop.set()
    for t in threads:
        t.join(timeout=60)
    assert reload.status_code == 200, reload.text
    assert reload.json()["version"] == "2"
    assert failures == []
    assert set(versions) == {"1", "2"}
    assert client.post("/v1/score", json=leads[0]).json()["model"]["version"] == "2"
    metrics = client.get("/metrics").text
    assert 'predictive_scoring_model_info{name="lead-scoring",version="2"} 1.0' in metrics
    Scorer.load(bundles["1"]).save(live)  # leave the server on version 1 for other tests
    assert client.post("/v1/admin/reload", headers=admin).json()["version"] == "1"


def test_an_unreachable_store_leaks_no_password_over_http(tmp_path: Path) -> None:
    password = "s3cret-pw"
    env = {k: v for k, v in os.environ.items() if not k.startswith("PREDICTIVE_SCORING_")}
    env |= {
        "PREDICTIVE_SCORING_API_KEYS": API_KEY,
        "PREDICTIVE_SCORING_ADMIN_KEYS": ADMIN_KEY,
        "PREDICTIVE_SCORING_TRACKING_URI": f"http://user:{password}@127.0.0.1:1",
        "PREDICTIVE_SCORING_LOAD_RETRY_SECONDS": "0",
        "PREDICTIVE_SCORING_LOG_ENABLED": "false",
        "MLFLOW_HTTP_REQUEST_MAX_RETRIES": "0",  # refused at once, not after minutes of retries
    }
    logs: list[Path] = []
    with uvicorn_service(env, cwd=tmp_path, until="/healthz", log=logs) as base:
        ready = httpx.get(f"{base}/readyz", timeout=30)
        scored = httpx.post(
            f"{base}/v1/score", json={"lead_id": "x"}, headers={"X-API-Key": API_KEY}, timeout=30
        )
        refused = httpx.post(
            f"{base}/v1/admin/reload", headers={"X-API-Key": ADMIN_KEY}, timeout=60
        )
        log = logs[0].read_text()
    assert (ready.status_code, scored.status_code, refused.status_code) == (503, 503, 409)
    assert "the server log says why" in ready.json()["reason"]
    for text in (ready.text, scored.text, refused.text, log):
        assert password not in text
    assert "http://***@127.0.0.1:1" in refused.text and "http://***@127.0.0.1:1" in log


@pytest.mark.parametrize(
    "command",
    [
        ["-m", "uvicorn", "--factory", "predictive_scoring.serve:create_app", "--port", "0"],
        ["-m", "predictive_scoring.cli", "serve", "--port", "0"],
    ],
    ids=["uvicorn", "predictive-scoring-serve"],
)
@pytest.mark.parametrize(
    ("settings", "message"),
    [
        ({}, "no API key configured: set PREDICTIVE_SCORING_API_KEYS"),
        (
            {"PREDICTIVE_SCORING_API_KEYS": API_KEY, "PREDICTIVE_SCORING_MAX_BATCH": "many"},
            "bad setting: PREDICTIVE_SCORING_MAX_BATCH: Input should be a valid integer",
        ),
    ],
    ids=["no-key", "bad-value"],
)
def test_a_setting_problem_prints_the_message_alone(
    command: list[str], settings: dict[str, str], message: str, tmp_path: Path
) -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith("PREDICTIVE_SCORING_")}
    done = subprocess.run(
        [sys.executable, *command],
        env=env | settings,
        cwd=tmp_path,  # no .env here
        capture_output=True,
        text=True,
        timeout=patience(),
        check=False,
    )
    assert done.returncode == 1, done.stderr
    assert message in done.stderr
    assert "Traceback" not in done.stderr + done.stdout, done.stderr
    assert len(done.stderr.strip().splitlines()) == 1, done.stderr


def test_the_command_line_shows_no_password_of_the_store(tmp_path: Path) -> None:
    password = "s3cret-pw"
    env = {k: v for k, v in os.environ.items() if not k.startswith("PREDICTIVE_SCORING_")}
    env |= {
        "PREDICTIVE_SCORING_TRACKING_URI": f"http://user:{password}@127.0.0.1:1",
        "MLFLOW_HTTP_REQUEST_MAX_RETRIES": "0",
    }
    (tmp_path / "leads.csv").write_text("lead_id,created_at\nL-1,2026-01-01T00:00:00Z\n")
    command = ["score", "--leads", "leads.csv", "--output", "out.csv", "--no-log"]
    done = subprocess.run(
        [sys.executable, "-m", "predictive_scoring.cli", *command],
        env=env,
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=patience(),
        check=False,
    )
    assert done.returncode == 1, done.stderr
    assert "error: cannot read lead-scoring@champion from http://***@127.0.0.1:1" in done.stderr
    assert password not in done.stderr + done.stdout
