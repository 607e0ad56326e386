"""Which model is served: one rule for the service, `uvicorn --factory`, `score` and the pyfunc.

A temp project holds an MLflow store whose champion is one model and, in models/, a bundle of
another: without an explicit bundle everything loads the champion, and says why.
"""

from __future__ import annotations

import logging
import os
import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import mlflow
import pandas as pd
import pytest
from fastapi.testclient import TestClient
from tests.registries import client_of, register, store_uri
from tests.scorers import build_scorer
from tests.servers import uvicorn_service
from tests.service_cases import ADMIN_KEY, API_KEY, make_settings
from typer.testing import CliRunner

from predictive_scoring.cli import app as cli
from predictive_scoring.errors import ModelRegistryError
from predictive_scoring.model_source import BUNDLE_ENV, choose_model
from predictive_scoring.registry import pyfunc_input_frame
from predictive_scoring.serve import create_app

pytestmark = [pytest.mark.api, pytest.mark.slow]

CHAMPION = "models:/lead-scoring@champion"


@pytest.fixture(scope="module")
def project(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A project whose store's champion (registered version 1, exported as "run-0f3c2a1b")
    differs from the bundle in models/lead-scoring (version "2", another model)."""
    root = tmp_path_factory.mktemp("project")
    version = register(
        build_scorer(version="run-0f3c2a1b", seed=0, rounds=20),
        project=root,
        alias="champion",
        metrics={"test_roc_auc": 0.8},
    )
    assert version == "1"
    build_scorer(version="2", seed=1, rounds=30).save(root / "models/lead-scoring")
    return root


@pytest.fixture(autouse=True)
def _no_outside_settings(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in list(os.environ):
        if name.startswith("PREDICTIVE_SCORING_") or name == "MLFLOW_TRACKING_URI":
            monkeypatch.delenv(name)


def _served(settings: Any, lead: dict[str, Any]) -> tuple[dict[str, Any], dict[str, Any]]:
    """GET /v1/model and POST /v1/score from an in-process service on ``settings``."""
    with TestClient(create_app(settings), headers={"X-API-Key": API_KEY}) as c:
        info = c.get("/v1/model")
        scored = c.post("/v1/score", json=lead)
    assert info.status_code == 200, info.text
    assert scored.status_code == 200, scored.text
    return info.json(), scored.json()


def test_the_service_serves_the_champion_of_the_project_store_and_says_why(
    project: Path, leads: list[dict[str, Any]], caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="predictive_scoring")
    info, scored = _served(make_settings(None, project_dir=project), leads[0])  # type: ignore[arg-type]
    assert (info["version"], info["alias"], info["source"]) == ("1", "champion", CHAMPION)
    assert info["why"] == (
        f"{CHAMPION} (version 1) from {store_uri(project)}: the project's MLflow store has a "
        "@champion and no bundle is set"
    )
    assert scored["model"]["version"] == "1"
    _, from_bundle = _served(make_settings(project / "models/lead-scoring"), leads[0])
    assert scored["probability"] != from_bundle["probability"], "that is the bundle's model"
    started = [r.getMessage() for r in caplog.records if "serving" in r.getMessage()]
    assert any("lead-scoring version 1" in m and info["why"] in m for m in started), started


def test_an_explicit_bundle_is_served_instead(project: Path, leads: list[dict[str, Any]]) -> None:
    bundle = project / "models/lead-scoring"
    info, scored = _served(make_settings(bundle, project_dir=project), leads[0])
    assert (info["version"], info["source"]) == ("2", f"bundle {bundle}")
    assert info["why"] == f"bundle {bundle} (version 2): set by {BUNDLE_ENV} (settings.bundle_dir)"
    assert scored["model"]["version"] == "2"


@pytest.mark.parametrize("variable", ["MLFLOW_TRACKING_URI", "PREDICTIVE_SCORING_TRACKING_URI"])
def test_a_store_set_in_the_environment_is_read_from_anywhere(
    project: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, variable: str
) -> None:
    monkeypatch.setenv(variable, store_uri(project))
    settings = make_settings(None, project_dir=tmp_path)  # type: ignore[arg-type]
    if variable != "MLFLOW_TRACKING_URI":
        settings = settings.model_copy(update={"tracking_uri": store_uri(project)})
    with TestClient(create_app(settings), headers={"X-API-Key": API_KEY}) as c:
        info = c.get("/v1/model").json()
    assert (info["version"], info["source"]) == ("1", CHAMPION)
    assert f"the MLflow store set by {variable}" in info["why"]
    assert not (tmp_path / "mlflow.db").exists()


def test_a_store_without_a_champion_says_to_promote(project: Path, tmp_path: Path) -> None:
    # the same versions and artifacts, in a copy of the store whose champion alias is gone
    shutil.copy2(project / "mlflow.db", tmp_path / "mlflow.db")
    client_of(tmp_path).delete_registered_model_alias("lead-scoring", "champion")
    with pytest.raises(ModelRegistryError) as err:
        choose_model(root=tmp_path)
    message = str(err.value)
    assert "no lead-scoring@champion" in message
    assert "`predictive-scoring promote`" in message and BUNDLE_ENV in message

    app = create_app(make_settings(None, project_dir=tmp_path))  # type: ignore[arg-type]
    with TestClient(app, headers={"X-API-Key": ADMIN_KEY}) as c:
        ready = c.get("/readyz")
        refused = c.post("/v1/admin/reload")
    assert ready.status_code == 503  # open to anyone: a generic reason
    assert refused.status_code == 409  # an admin is told what to do
    assert "predictive-scoring promote" in refused.text


def test_without_a_store_a_bundle_on_disk_is_not_picked_up(tmp_path: Path) -> None:
    build_scorer(version="9", seed=2, rounds=5).save(tmp_path / "models/lead-scoring")
    with pytest.raises(ModelRegistryError) as err:
        choose_model(root=tmp_path)
    message = str(err.value)
    assert "no bundle is set" in message and "does not exist" in message
    assert "dvc repro" in message and "predictive-scoring promote" in message
    assert BUNDLE_ENV in message
    assert not (tmp_path / "mlflow.db").exists(), "looking must not create an empty store"


def test_the_pyfunc_reports_its_registry_version(
    project: Path, leads: list[dict[str, Any]]
) -> None:
    mlflow.set_tracking_uri(store_uri(project))
    pyfunc = mlflow.pyfunc.load_model(CHAMPION)
    frame = _frames(leads[:3])
    out = pyfunc.predict(pyfunc_input_frame(frame[0], frame[1], as_of=leads[0]["as_of"]))
    assert set(out["model_version"]) == {"1"}


def _frames(payloads: list[dict[str, Any]]) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Leads and events tables (as a CRM exports them) of request payloads."""
    leads = pd.DataFrame(
        [
            {"lead_id": p["lead_id"], "created_at": p["created_at"], **p["attributes"]}
            for p in payloads
        ]
    )
    events = pd.DataFrame(
        [{"lead_id": p["lead_id"], **e} for p in payloads for e in p["events"]],
        columns=["lead_id", "event_type", "ts"],
    )
    return leads, events


def test_score_follows_the_same_rule(
    project: Path, leads: list[dict[str, Any]], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    lead_frame, events = _frames(leads)
    lead_frame.to_csv(tmp_path / "leads.csv", index=False)
    events.to_csv(tmp_path / "events.csv", index=False)
    monkeypatch.chdir(project)
    runner = CliRunner()
    args = ["score", "--leads", str(tmp_path / "leads.csv"), "--events"]
    args += [str(tmp_path / "events.csv"), "--as-of", leads[0]["as_of"]]

    champion = runner.invoke(cli, [*args, "--output", str(tmp_path / "a.csv")])
    assert champion.exit_code == 0, champion.output
    assert "with lead-scoring v1" in champion.output
    assert set(pd.read_csv(tmp_path / "a.csv", dtype=str)["model_version"]) == {"1"}

    bundle = project / "models/lead-scoring"
    explicit = runner.invoke(
        cli, [*args, "--output", str(tmp_path / "b.csv"), "--bundle", str(bundle)]
    )
    assert explicit.exit_code == 0, explicit.output
    assert set(pd.read_csv(tmp_path / "b.csv", dtype=str)["model_version"]) == {"2"}


@pytest.fixture
def uvicorn_env(project: Path) -> Iterator[dict[str, str]]:
    env = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith("PREDICTIVE_SCORING_") and k != "MLFLOW_TRACKING_URI"
    }
    yield env | {"PREDICTIVE_SCORING_API_KEYS": API_KEY}


def test_uvicorn_factory_serves_the_champion_from_the_working_directory(
    project: Path, uvicorn_env: dict[str, str]
) -> None:
    with uvicorn_service(uvicorn_env, cwd=project) as base:
        info = httpx.get(f"{base}/v1/model", headers={"X-API-Key": API_KEY}, timeout=30).json()
    assert (info["version"], info["source"]) == ("1", CHAMPION)
    assert "the project's MLflow store" in info["why"]
