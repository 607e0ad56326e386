"""The lean request path: same batch as the pydantic route, None for anything unusual."""

from __future__ import annotations

import asyncio
from datetime import datetime
from typing import Any

import numpy as np
import orjson
import pytest
from conftest import API_KEY, BAD_CASES, _synthetic, build_scorer, error_names, make_settings
from fastapi.testclient import TestClient
from hypothesis import given
from hypothesis import settings as hsettings
from hypothesis import strategies as st
from pydantic import TypeAdapter

from predictive_scoring.serve import create_app
from predictive_scoring.serve.convert import epoch_seconds, to_lead_input
from predictive_scoring.serve.lean import parse_epoch_seconds, parse_leads
from predictive_scoring.serve.schemas import LeadIn, UtcDatetime
from predictive_scoring.serve.settings import Settings

NOW = 1_700_000_000
SCORER = build_scorer(version="1", seed=0, rounds=5)
NUMERIC = frozenset({"employees"})
SETTINGS = Settings(_env_file=None, allow_anonymous=True, max_events_per_lead=50, max_batch=100)
DT = TypeAdapter(UtcDatetime)


def lean(body: Any, *, batch: bool) -> Any:
    raw = body if isinstance(body, bytes) else orjson.dumps(body)
    return parse_leads(
        raw,
        batch=batch,
        now=NOW,
        max_batch=100,
        max_events=50,
        clock_skew=300,
        numeric_inputs=NUMERIC,
        columns=SCORER.input_columns,
    )


def slow_X(payloads: list[dict[str, Any]]) -> np.ndarray:
    items = [
        to_lead_input(
            LeadIn.model_validate(p), now=NOW, settings=SETTINGS, numeric_inputs=NUMERIC, loc=[]
        )
        for p in payloads
    ]
    return SCORER.executor.transform(SCORER.to_batch(items, now=NOW))


def test_lean_batch_equals_the_pydantic_route() -> None:
    payloads = _synthetic(60, seed=3)[0]
    payloads[0] = {**payloads[0], "as_of": None}
    payloads[1] = {k: v for k, v in payloads[1].items() if k != "created_at"}
    payloads[2] = {**payloads[2], "lead_id": 777, "created_at": 1_690_000_000}
    payloads[3] = {
        **payloads[3],
        "events": [{**e, "ts": e["ts"][:-1], "url": "/x"} for e in payloads[3]["events"]],
    }
    payloads[4] = {**payloads[4], "attributes": {"employees": "250", "industry": None, "x": [1]}}
    got = lean({"leads": payloads[:4] + payloads[5:]}, batch=True)
    assert got is not None
    ok = payloads[:4] + payloads[5:]
    assert got.lead_ids == [str(p["lead_id"]) for p in ok]
    np.testing.assert_array_equal(SCORER.executor.transform(got.batch), slow_X(ok))
    assert lean({"leads": payloads}, batch=True) is None  # a list attribute: pydantic explains


@pytest.mark.parametrize("case", BAD_CASES, ids=[c[0] for c in BAD_CASES])
def test_every_bad_request_falls_back(case: tuple[str, str, Any, str]) -> None:
    _, path, body, _ = case
    assert lean(body, batch=path.endswith("batch")) is None


@hsettings(max_examples=300, deadline=None)
@given(
    st.datetimes(min_value=datetime(1, 1, 1), max_value=datetime(9999, 12, 31, 23, 59, 59)),
    st.booleans(),
)
def test_timestamps_equal_pydantic(value: datetime, z: bool) -> None:
    text = value.replace(microsecond=0).strftime("%Y-%m-%dT%H:%M:%S") + ("Z" if z else "")
    text = text.rjust(19 + z, "0")
    want = epoch_seconds(DT.validate_python(text))
    for values in ([text], [text] * 300):  # one by one, and the vectorised pass
        got = parse_epoch_seconds(values)
        assert got is not None and int(got[-1]) == want


@hsettings(max_examples=500, deadline=None)
@given(
    st.text(alphabet="0123456789-T:Z .+tz", min_size=10, max_size=22)
    | st.integers(-(10**12), 10**12)
)
def test_lean_timestamps_never_disagree(value: Any) -> None:
    for values in ([value], [value] * 300, [value, *[1_600_000_000] * 300]):
        got = parse_epoch_seconds(values)
        if got is not None:
            assert int(got[0]) == epoch_seconds(DT.validate_python(value))


def test_future_and_limits_fall_back() -> None:
    p = _synthetic(1, seed=1)[0][0]
    assert lean(p, batch=False) is not None
    assert lean({**p, "as_of": "2999-01-01T00:00:00Z"}, batch=False) is None
    assert (
        lean(
            {**p, "events": p["events"] * 0 + [{"event_type": "a", "ts": NOW + 301}]}, batch=False
        )
        is None
    )
    assert lean({**p, "events": [{"event_type": "a", "ts": NOW + 300}]}, batch=False) is not None
    assert lean({**p, "lead_id": True}, batch=False) is None
    assert lean({"leads": [p, p]}, batch=True) is None


@pytest.mark.parametrize(
    "change",
    [
        {"attributes": None},
        {"events": None},
        {"lead_id": "x" * 257},
        {"created_at": 1.5e9},
        {"events": [{"event_type": "a", "ts": 1.5e9}]},
        {"events": [{"event_type": "a", "ts": True}]},
        {"events": [{"event_type": "a" * 201, "ts": 1}]},
        {"events": [{"event_type": "", "ts": 1}]},
        {"events": [["a", 1]]},
    ],
    ids=lambda c: ",".join(f"{k}={str(v)[:12]}" for k, v in c.items()),
)
def test_shapes_the_decoder_refuses_fall_back(change: dict[str, Any]) -> None:
    p = _synthetic(1, seed=2)[0][0]
    assert lean(p, batch=False) is not None
    assert lean({**p, **change}, batch=False) is None
    assert lean({"leads": [{**p, "lead_id": "first"}, {**p, **change}]}, batch=True) is None


def test_reasons_false_skips_only_the_reasons(
    live_bundle: Any, leads: list[dict[str, Any]]
) -> None:
    with TestClient(create_app(make_settings(live_bundle)), headers={"X-API-Key": API_KEY}) as c:
        full = c.post("/v1/score/batch", json={"leads": leads}).json()["results"]
        bare = c.post("/v1/score/batch?reasons=false", json={"leads": leads}).json()["results"]
        assert [r["probability"] for r in bare] == [r["probability"] for r in full]
        assert all(r["reasons"] == {"positive": [], "negative": []} for r in bare)
        assert c.post("/v1/score?reasons=maybe", json=leads[0]).status_code == 422


def _lean_count(app: Any, outcome: str) -> float:
    value = app.state.metrics.registry.get_sample_value(
        "predictive_scoring_lean_requests_total", {"outcome": outcome}
    )
    return float(value or 0.0)


def test_the_lean_middleware_answers_and_declines_to_the_full_route(
    live_bundle: Any, leads: list[dict[str, Any]]
) -> None:
    app = create_app(make_settings(live_bundle))
    with TestClient(app, headers={"X-API-Key": API_KEY}) as c:
        one = c.post("/v1/score", json=leads[0])
        many = c.post("/v1/score/batch", json={"leads": leads[:5]})
        assert one.status_code == many.status_code == 200
        assert many.json()["results"][0] == {k: v for k, v in one.json().items() if k != "model"}
        assert (_lean_count(app, "answered"), _lean_count(app, "declined")) == (2, 0)

        # A body outside the lean subset goes on, replayed, to the pydantic route.
        bad = c.post("/v1/score", json={**leads[0], "created_at": "last tuesday"})
        assert bad.status_code == 422 and error_names(bad, "created_at")
        # An offset timestamp is valid but not lean: the full route scores it.
        offset = {**leads[0], "lead_id": "tz", "as_of": "2024-06-01T12:00:00+02:00"}
        assert c.post("/v1/score", json=offset).status_code == 200
        # No Content-Length (a streamed body): the full route reads and scores it.
        streamed = c.post(
            "/v1/score",
            content=iter([orjson.dumps(leads[1])]),
            headers={"content-type": "application/json"},
        )
        assert streamed.status_code == 200
        assert streamed.json()["lead_id"] == leads[1]["lead_id"]
        assert (_lean_count(app, "answered"), _lean_count(app, "declined")) == (2, 2)

        # Without a key the API-key middleware refuses before the lean path reads anything.
        assert c.post("/v1/score", json=leads[0], headers={"X-API-Key": ""}).status_code == 401
        assert _lean_count(app, "answered") == 2


def test_bytes_pydantic_refuses_are_refused_even_in_ignored_fields() -> None:
    p = _synthetic(1, seed=4)[0][0]
    event = orjson.dumps({**p["events"][0], "url": "/pricing"})
    body = orjson.dumps({**p, "events": []}).replace(b'"events":[]', b'"events":[' + event + b"]")
    assert lean(body, batch=False) is not None
    assert lean(body.replace(b"/pricing", b"/pr\xffcing"), batch=False) is None
    assert lean(body.replace(b"/pricing", b"/pr\xc3\xa9cing"), batch=False) is not None  # UTF-8


def test_no_leads_score_to_no_results() -> None:
    assert SCORER.score([]) == []
    assert SCORER.score([], n_reasons=0) == []


def test_a_client_that_leaves_mid_body_is_counted_as_499(
    live_bundle: Any, leads: list[dict[str, Any]]
) -> None:
    app = create_app(make_settings(live_bundle))
    body = orjson.dumps(leads[0])
    scope = {
        "type": "http",
        "asgi": {"version": "3.0"},
        "http_version": "1.1",
        "method": "POST",
        "scheme": "http",
        "path": "/v1/score",
        "raw_path": b"/v1/score",
        "root_path": "",
        "query_string": b"",
        "headers": [
            (b"content-type", b"application/json"),
            (b"content-length", str(len(body)).encode()),
            (b"x-api-key", API_KEY.encode()),
        ],
        "client": ("127.0.0.1", 1),
        "server": ("127.0.0.1", 80),
    }
    messages = [
        {"type": "http.request", "body": body[:10], "more_body": True},
        {"type": "http.disconnect"},
    ]
    sent: list[dict[str, Any]] = []

    async def receive() -> dict[str, Any]:
        return messages.pop(0)

    async def send(message: dict[str, Any]) -> None:
        sent.append(message)

    with TestClient(app):  # runs the lifespan, so the model is loaded
        asyncio.run(app(scope, receive, send))
    assert sent == []
    requests = app.state.metrics.registry.get_sample_value
    labels = {"method": "POST", "route": "/v1/score"}
    assert requests("predictive_scoring_requests_total", {**labels, "status": "499"}) == 1
    assert requests("predictive_scoring_requests_total", {**labels, "status": "500"}) is None
