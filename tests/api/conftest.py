"""A real small bundle, apps on it, and the bad-request corpus as a parameter of the API tests."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient
from tests.scorers import build_scorer, synthetic_leads
from tests.service_cases import API_KEY, BAD_CASES, make_settings

from predictive_scoring.scoring import Scorer
from predictive_scoring.serve import create_app


@pytest.fixture(scope="session")
def bundles(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """Two real bundles (versions "1" and "2") saved with Scorer.save."""
    root = tmp_path_factory.mktemp("bundles")
    return {
        "1": build_scorer(version="1", seed=0, rounds=20).save(root / "v1"),
        "2": build_scorer(version="2", seed=1, rounds=30).save(root / "v2"),
    }


@pytest.fixture(scope="session")
def leads() -> list[dict[str, Any]]:
    """Fifty request payloads, scored as of a fixed past instant."""
    return synthetic_leads(50, seed=42)[0]


@pytest.fixture
def live_bundle(bundles: dict[str, Path], tmp_path: Path) -> Path:
    """A bundle directory the test may replace (starts as version "1")."""
    return Scorer.load(bundles["1"]).save(tmp_path / "live")


@pytest.fixture
def client(live_bundle: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[TestClient]:
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    app = create_app(make_settings(live_bundle))
    with TestClient(app, headers={"X-API-Key": API_KEY}) as c:
        yield c


def pytest_generate_tests(metafunc: pytest.Metafunc) -> None:
    if "bad_case" in metafunc.fixturenames:
        metafunc.parametrize("bad_case", BAD_CASES, ids=[c[0] for c in BAD_CASES])
