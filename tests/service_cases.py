"""API keys, service settings and the bad-request corpus shared by the API tests."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from predictive_scoring.serve import Settings

API_KEY = "client-key-123"
ADMIN_KEY = "admin-key-456"


def make_settings(bundle_dir: Path, **overrides: Any) -> Settings:
    """Settings for a service on ``bundle_dir`` with the test keys; no .env file is read; the score
    log goes to ``logs`` beside the bundle (else under ``project_dir``)."""
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
    if bundle_dir is not None and "log_dir" not in overrides:  # else under project_dir
        values["log_dir"] = str(Path(bundle_dir).parent / "logs")
    return Settings(_env_file=None, **values)


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
