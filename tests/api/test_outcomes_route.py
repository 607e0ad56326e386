"""POST /v1/outcomes in-process: who may post, the 4xx shapes, all or nothing, idempotence."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient
from tests.service_cases import ADMIN_KEY, API_KEY, make_settings

from predictive_scoring.outcomes import read_outcomes
from predictive_scoring.serve import Settings, create_app

OUTCOME_KEY = "outcome-key-789"

BATCH: dict[str, Any] = {
    "outcomes": [
        {"lead_id": "L-1", "stage": "sql", "ts": "2025-11-03T10:00:00Z"},
        {
            "lead_id": "L-1",
            "stage": "sql_rejected",
            "ts": "2025-11-04T09:30:00Z",
            "reason": "no budget",
        },
        {"lead_id": 7, "stage": "won", "ts": 1_762_000_000_000},
    ]
}


@pytest.fixture
def store(tmp_path: Path) -> Path:
    return tmp_path / "logs"


@pytest.fixture
def http(live_bundle: Path, store: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[TestClient]:
    """The service with client, admin and outcome keys; no key sent unless a test sends one."""
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    settings = make_settings(live_bundle, outcome_keys=OUTCOME_KEY, log_dir=str(store))
    with TestClient(create_app(settings)) as c:
        yield c


def _post(http: TestClient, body: Any, key: str | None = OUTCOME_KEY) -> Any:
    return http.post("/v1/outcomes", json=body, headers={"X-API-Key": key} if key else {})


def test_an_outcome_key_and_an_admin_key_may_post(http: TestClient, store: Path) -> None:
    first = _post(http, {"outcomes": BATCH["outcomes"][:2]})
    assert first.status_code == 200, first.text
    assert first.json() == {"received": 2, "stored": 2, "already_known": 0}
    by_admin = _post(http, BATCH, key=ADMIN_KEY)
    assert by_admin.status_code == 200, by_admin.text
    assert by_admin.json() == {"received": 3, "stored": 1, "already_known": 2}
    assert len(read_outcomes(store)) == 3


def test_a_client_key_is_forbidden_and_no_key_is_unauthorized(
    http: TestClient, store: Path
) -> None:
    forbidden = _post(http, BATCH, key=API_KEY)
    assert forbidden.status_code == 403
    assert forbidden.json()["detail"] == [
        {
            "loc": ["header", "X-API-Key"],
            "msg": "this endpoint needs an outcome key (PREDICTIVE_SCORING_OUTCOME_KEYS) or an "
            "admin key",
            "type": "forbidden",
        }
    ]
    assert _post(http, BATCH, key=None).status_code == 401
    assert _post(http, BATCH, key="wrong").status_code == 401
    assert read_outcomes(store).empty


def test_an_outcome_key_scores_but_does_not_reload(http: TestClient) -> None:
    headers = {"X-API-Key": OUTCOME_KEY}
    assert http.get("/v1/model", headers=headers).status_code == 200
    assert http.post("/v1/admin/reload", headers=headers).status_code == 403
    assert http.post("/v1/admin/reload", headers={"X-API-Key": ADMIN_KEY}).status_code == 200


def test_posting_the_same_batch_twice_stores_it_once(http: TestClient, store: Path) -> None:
    assert _post(http, BATCH).json() == {"received": 3, "stored": 3, "already_known": 0}
    assert _post(http, BATCH).json() == {"received": 3, "stored": 0, "already_known": 3}
    stored = read_outcomes(store)
    assert sorted(zip(stored["lead_id"], stored["stage"], strict=True)) == [
        ("7", "won"),
        ("L-1", "sql"),
        ("L-1", "sql_rejected"),
    ]
    assert stored.set_index("stage").loc["sql_rejected", "reason"] == "no budget"


@pytest.mark.parametrize(
    ("row", "field", "kind"),
    [
        ({"lead_id": "", "stage": "sql", "ts": "2025-11-03"}, "lead_id", "lead_id"),
        ({"lead_id": "a", "stage": "closed", "ts": "2025-11-03"}, "stage", "stage"),
        ({"lead_id": "a", "stage": "sql", "ts": "2999-01-01T00:00:00Z"}, "ts", "future_timestamp"),
        ({"lead_id": "a", "stage": "sql", "ts": "1970-01-02"}, "ts", "timestamp_range"),
        ({"lead_id": "a", "stage": "sql", "ts": "soon"}, "ts", "timestamp"),
        (
            {"lead_id": "a", "stage": "lost", "ts": 1_762_000_000, "reason": "x" * 201},
            "reason",
            "too_long",
        ),
        # decoding: the wrong type or an unknown field, in FastAPI's own shape
        ({"lead_id": "a", "stage": 5, "ts": "2025-11-03"}, "stage", "string_type"),
        ({"lead_id": "a", "stage": "sql"}, "ts", "missing"),
        (
            {"lead_id": "a", "stage": "sql", "ts": "2025-11-03", "amount": 5},
            "amount",
            "extra_forbidden",
        ),
    ],
)
def test_a_bad_row_is_a_422_naming_it_and_nothing_is_stored(
    http: TestClient, store: Path, row: dict[str, Any], field: str, kind: str
) -> None:
    refused = _post(http, {"outcomes": [BATCH["outcomes"][0], row, BATCH["outcomes"][2]]})
    assert refused.status_code == 422, refused.text
    detail = refused.json()["detail"]
    assert detail[0]["loc"] == ["body", "outcomes", 1, field]
    assert detail[0]["type"] == kind
    assert read_outcomes(store).empty  # the good rows around it were not stored either


def test_an_id_sent_as_14_0_is_stored_as_14(http: TestClient, store: Path) -> None:
    # JSON Schema's integer includes 14.0: the declared "string or integer" must take it.
    done = _post(http, {"outcomes": [{"lead_id": 14.0, "stage": "sql", "ts": "2025-11-03"}]})
    assert done.status_code == 200, done.text
    assert read_outcomes(store)["lead_id"].tolist() == ["14"]


def test_a_batch_over_max_batch_is_refused_whole(http: TestClient, store: Path) -> None:
    rows = [{"lead_id": f"L-{i}", "stage": "mql", "ts": "2025-11-03"} for i in range(101)]
    refused = _post(http, {"outcomes": rows})
    assert refused.status_code == 422
    assert refused.json()["detail"][0]["loc"] == ["body", "outcomes"]
    assert "at most 100 per call" in refused.json()["detail"][0]["msg"]
    assert read_outcomes(store).empty


def test_a_body_that_is_not_json_or_not_declared_json(http: TestClient) -> None:
    headers = {"X-API-Key": OUTCOME_KEY}
    broken = http.post(
        "/v1/outcomes",
        content=b'{"outcomes": [',
        headers={**headers, "content-type": "application/json"},
    )
    assert broken.status_code == 400 and broken.json()["detail"][0]["type"] == "json_invalid"
    text = http.post(
        "/v1/outcomes", content=b"lead_id,stage", headers={**headers, "content-type": "text/csv"}
    )
    assert text.status_code == 415
    assert _post(http, {}).json()["detail"][0]["loc"] == ["body", "outcomes"]


def test_an_empty_batch_stores_nothing(http: TestClient, store: Path) -> None:
    assert _post(http, {"outcomes": []}).json() == {"received": 0, "stored": 0, "already_known": 0}
    assert not (store / "outcomes").exists()


def test_anonymous_mode_may_post(live_bundle: Path, store: Path) -> None:
    settings = make_settings(live_bundle, api_keys="", admin_keys="", allow_anonymous=True)
    settings = settings.model_copy(update={"log_dir": str(store)})
    with TestClient(create_app(settings)) as c:
        assert _post(c, BATCH, key=None).status_code == 200
    assert len(read_outcomes(store)) == 3


def test_outcome_keys_alone_are_a_configuration(
    live_bundle: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("PREDICTIVE_SCORING_OUTCOME_KEYS", f" {OUTCOME_KEY} ,other-key")
    settings = Settings(_env_file=None, bundle_dir=live_bundle)
    assert [k.get_secret_value() for k in settings.outcome_keys] == [OUTCOME_KEY, "other-key"]
    create_app(settings)  # no ConfigError: an outcome key is a key


def test_the_route_is_documented_with_its_body_and_keys(http: TestClient) -> None:
    operation = http.get("/openapi.json").json()["paths"]["/v1/outcomes"]["post"]
    body = operation["requestBody"]["content"]["application/json"]["schema"]
    assert body["required"] == ["outcomes"]
    item = body["properties"]["outcomes"]["items"]
    assert set(item["properties"]) == {"lead_id", "stage", "ts", "reason"}
    assert "sql_rejected" in item["properties"]["stage"]["description"]
    assert {"ApiKey": []} in operation["security"]
    assert {"200", "401", "403", "422"} <= set(operation["responses"])
