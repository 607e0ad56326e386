"""A real small bundle, apps on it, and the bad-request corpus shared by the API tests."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import lightgbm as lgb
import numpy as np
import pytest
from fastapi.testclient import TestClient

from predictive_scoring.calibration import Calibrator
from predictive_scoring.features import (
    build_definition,
    employees_band,
    title_function,
    title_seniority,
)
from predictive_scoring.online import LeadBatch, OnlineExecutor
from predictive_scoring.scoring import Scorer
from predictive_scoring.serve import Settings, create_app
from predictive_scoring.thresholds import Thresholds

API_KEY = "client-key-123"
ADMIN_KEY = "admin-key-456"
NOW = 1_700_000_000  # data lie before this instant (2023-11-14)
EVENT_TYPES = ("demo_request", "pricing_page_view", "web_visit")
INDUSTRIES = ("software", "retail", "finance", "health")
TITLES = ("VP Marketing", "Software Engineer", "CFO", "Marketing Manager", "Intern", "")
DOMAINS = ("gmail.com", "acme.com", "example.org")


@dataclass(frozen=True)
class SyntheticLeads:
    """Tiny leads with events, as request payloads; ``as_of`` is fixed so scores are stable."""

    payloads: list[dict[str, Any]]


def _iso(seconds: float) -> str:
    return datetime.fromtimestamp(int(seconds), UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def _synthetic(n: int, seed: int) -> tuple[list[dict[str, Any]], np.ndarray]:
    rng = np.random.default_rng(seed)
    payloads: list[dict[str, Any]] = []
    logits = np.empty(n)
    for i in range(n):
        created = NOW - int(rng.integers(2, 90)) * 86_400 - int(rng.integers(0, 86_400))
        n_events = int(rng.poisson(4))
        kinds = rng.choice(len(EVENT_TYPES), size=n_events, p=[0.15, 0.25, 0.6])
        ts = np.sort(rng.integers(created, NOW - 3_600, size=n_events))
        title = TITLES[int(rng.integers(len(TITLES)))]
        attributes: dict[str, Any] = {
            "industry": INDUSTRIES[int(rng.integers(len(INDUSTRIES)))],
            "employees": float(rng.choice([5, 40, 150, 700, 3000, 12000])),
            "job_title": title or None,
            "email": f"p{i}@{DOMAINS[int(rng.integers(len(DOMAINS)))]}",
        }
        payloads.append(
            {
                "lead_id": f"L{i}",
                "attributes": attributes,
                "created_at": _iso(created),
                "events": [
                    {"event_type": EVENT_TYPES[k], "ts": _iso(t)}
                    for k, t in zip(kinds, ts, strict=True)
                ],
                "as_of": _iso(NOW),
            }
        )
        demos = int((kinds == 0).sum())
        logits[i] = -2.5 + 1.5 * demos + 0.3 * (kinds == 1).sum() + (title == "CFO")
    y = (rng.random(n) < 1 / (1 + np.exp(-logits))).astype(np.int64)
    return payloads, y


def _batch(payloads: list[dict[str, Any]], attribute_names: list[str]) -> LeadBatch:
    def epoch(text: str) -> int:
        return int(datetime.fromisoformat(text.replace("Z", "+00:00")).timestamp())

    sizes = [len(p["events"]) for p in payloads]
    return LeadBatch(
        attributes={a: [p["attributes"].get(a) for p in payloads] for a in attribute_names},
        as_of=np.array([epoch(p["as_of"]) for p in payloads], dtype=np.int64),
        created=np.array([float(epoch(p["created_at"])) for p in payloads]),
        event_lead=np.repeat(np.arange(len(payloads)), sizes).astype(np.int64),
        event_type=[e["event_type"] for p in payloads for e in p["events"]],
        event_ts=np.array([epoch(e["ts"]) for p in payloads for e in p["events"]], dtype=np.int64),
    )


def build_scorer(*, version: str, seed: int, rounds: int) -> Scorer:
    """Definition -> online features -> LightGBM -> Scorer on synthetic leads (well under 1 s)."""
    payloads, y = _synthetic(400, seed)
    definition = build_definition(
        event_types=EVENT_TYPES,
        attribute_types={"industry": "categorical", "employees": "numeric"},
        windows_days=(7, 30),
        half_life_days=14.0,
        active_days_window=30,
        job_title_column="job_title",
        email_column="email",
        employees_column="employees",
        has_events=True,
        has_created_at=True,
    )
    titles = [p["attributes"]["job_title"] for p in payloads]
    levels = {
        "industry": sorted(INDUSTRIES),
        "title_seniority": sorted({s for t in titles if (s := title_seniority(t))}),
        "title_function": sorted({f for t in titles if (f := title_function(t))}),
        "employees_band": sorted(
            {b for p in payloads if (b := employees_band(p["attributes"]["employees"]))}
        ),
    }
    X = OnlineExecutor(definition, levels).transform(
        _batch(payloads, ["industry", "employees", "job_title", "email"])
    )
    names = definition.feature_names
    data = lgb.Dataset(
        X,
        label=y,
        feature_name=names,
        categorical_feature=[names.index(c) for c in definition.categorical_features],
        free_raw_data=False,
    )
    params = {
        "objective": "binary",
        "num_leaves": 8,
        "min_data_in_leaf": 10,
        "learning_rate": 0.2,
        "seed": seed,
        "verbose": -1,
        "num_threads": 1,
    }
    booster = lgb.train(params, data, num_boost_round=rounds)
    return Scorer(
        definition=definition,
        levels=levels,
        booster=booster,
        calibrator=Calibrator(method="none"),
        thresholds=Thresholds(mql=0.2, sql=0.5, base_rate=0.1),
        metadata={"name": "lead-scoring", "version": version, "metrics": {"test_roc_auc": 0.8}},
    )


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
    return _synthetic(50, seed=42)[0]


@pytest.fixture
def live_bundle(bundles: dict[str, Path], tmp_path: Path) -> Path:
    """A bundle directory the test may replace (starts as version "1")."""
    return Scorer.load(bundles["1"]).save(tmp_path / "live")


def make_settings(bundle_dir: Path, **overrides: Any) -> Settings:
    values: dict[str, Any] = {
        "api_keys": API_KEY,
        "admin_keys": ADMIN_KEY,
        "bundle_dir": bundle_dir,
        "tracking_uri": None,
        "max_batch": 100,
        "max_events_per_lead": 50,
        "max_body_bytes": 200_000,
        "load_retry_seconds": 0,
        **overrides,
    }
    return Settings(_env_file=None, **values)


@pytest.fixture
def client(live_bundle: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[TestClient]:
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    app = create_app(make_settings(live_bundle))
    with TestClient(app, headers={"X-API-Key": API_KEY}) as c:
        yield c


def _lead(**changes: Any) -> dict[str, Any]:
    base: dict[str, Any] = {
        "lead_id": "bad-1",
        "attributes": {"industry": "software", "employees": 40},
        "created_at": "2023-10-01T00:00:00Z",
        "events": [{"event_type": "web_visit", "ts": "2023-10-02T00:00:00Z"}],
    }
    base.update(changes)
    return base


def _raw(text: str) -> bytes:
    return text.encode()


# (id, path, body (dict, or bytes sent raw), field that the error must name)
BAD_CASES: list[tuple[str, str, Any, str]] = [
    ("lead_id_missing", "/v1/score", {"attributes": {}}, "lead_id"),
    ("lead_id_object", "/v1/score", _lead(lead_id={"a": 1}), "lead_id"),
    ("lead_id_empty", "/v1/score", _lead(lead_id=""), "lead_id"),
    ("attributes_list", "/v1/score", _lead(attributes=[1, 2]), "attributes"),
    ("attribute_nested", "/v1/score", _lead(attributes={"industry": {"x": 1}}), "industry"),
    ("attribute_numeric_text", "/v1/score", _lead(attributes={"employees": "many"}), "employees"),
    (
        "nan_literal",
        "/v1/score",
        _raw('{"lead_id": "x", "attributes": {"employees": NaN}}'),
        "employees",
    ),
    (
        "infinity_literal",
        "/v1/score",
        _raw('{"lead_id": "x", "attributes": {"employees": Infinity}}'),
        "employees",
    ),
    ("nan_string_numeric", "/v1/score", _lead(attributes={"employees": "nan"}), "employees"),
    ("created_at_garbage", "/v1/score", _lead(created_at="last tuesday"), "created_at"),
    ("created_at_future", "/v1/score", _lead(created_at="2999-01-01T00:00:00Z"), "created_at"),
    ("as_of_garbage", "/v1/score", _lead(as_of="soon"), "as_of"),
    ("as_of_future", "/v1/score", _lead(as_of="2999-01-01T00:00:00Z"), "as_of"),
    ("events_dict", "/v1/score", _lead(events={"event_type": "x"}), "events"),
    ("event_ts_missing", "/v1/score", _lead(events=[{"event_type": "web_visit"}]), "ts"),
    (
        "event_ts_garbage",
        "/v1/score",
        _lead(events=[{"event_type": "web_visit", "ts": "2023-13-45"}]),
        "ts",
    ),
    (
        "event_ts_future",
        "/v1/score",
        _lead(events=[{"event_type": "web_visit", "ts": "2999-01-01T00:00:00Z"}]),
        "ts",
    ),
    (
        "event_type_number",
        "/v1/score",
        _lead(events=[{"event_type": 5, "ts": "2023-10-02T00:00:00Z"}]),
        "event_type",
    ),
    (
        "too_many_events",
        "/v1/score",
        _lead(events=[{"event_type": "web_visit", "ts": "2023-10-02T00:00:00Z"}] * 51),
        "events",
    ),
    ("unknown_top_level_field", "/v1/score", _lead(email="a@b.c"), "email"),
    ("not_json", "/v1/score", _raw("{lead_id: x"), "body"),
    ("body_is_list", "/v1/score", [1, 2], "body"),
    ("batch_empty", "/v1/score/batch", {"leads": []}, "leads"),
    ("batch_missing", "/v1/score/batch", {}, "leads"),
    (
        "batch_over_limit",
        "/v1/score/batch",
        {"leads": [_lead(lead_id=f"b{i}") for i in range(101)]},
        "leads",
    ),
    (
        "batch_duplicate_ids",
        "/v1/score/batch",
        {"leads": [_lead(lead_id="same"), _lead(lead_id="same")]},
        "lead_id",
    ),
    (
        "batch_bad_lead_inside",
        "/v1/score/batch",
        {"leads": [_lead(lead_id="ok"), _lead(lead_id="bad", as_of="2999-01-01T00:00:00Z")]},
        "as_of",
    ),
]


def pytest_generate_tests(metafunc: pytest.Metafunc) -> None:
    if "bad_case" in metafunc.fixturenames:
        metafunc.parametrize("bad_case", BAD_CASES, ids=[c[0] for c in BAD_CASES])


def post_case(http: Any, path: str, body: Any, headers: dict[str, str]) -> Any:
    """POST a corpus body with httpx or TestClient: raw bytes as-is, anything else as JSON."""
    if isinstance(body, bytes):
        return http.post(
            path, content=body, headers={**headers, "content-type": "application/json"}
        )
    return http.post(path, json=body, headers=headers)


def error_names(response: Any, field: str) -> bool:
    """Whether a 4xx error body names ``field`` in a loc."""
    detail = response.json()["detail"]
    return any(field in [str(part) for part in item["loc"]] for item in detail)
