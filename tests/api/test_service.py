"""The scoring service in-process (TestClient) on a real small bundle."""

from __future__ import annotations

import json
import logging
import re
import time
from collections.abc import Iterator, Sequence
from datetime import datetime
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from fastapi.testclient import TestClient
from tests.service_cases import ADMIN_KEY, API_KEY, error_names, make_settings, post_case

from predictive_scoring.errors import BundleError, ConfigError, redact
from predictive_scoring.online import LeadBatch
from predictive_scoring.scoring import LeadInput, Scorer, ScoreResult
from predictive_scoring.serve import Settings, create_app, load_scorer
from predictive_scoring.serve.schemas import (
    BatchResponse,
    ErrorResponse,
    ModelInfoResponse,
    ScoreResponse,
)

pytestmark = pytest.mark.api


def _epoch(text: str) -> int:
    return int(datetime.fromisoformat(text.replace("Z", "+00:00")).timestamp())


def _lead_input(payload: dict[str, Any]) -> LeadInput:
    return LeadInput(
        lead_id=payload["lead_id"],
        attributes=payload["attributes"],
        events=[(e["event_type"], _epoch(e["ts"])) for e in payload["events"]],
        created_at=float(_epoch(payload["created_at"])),
        as_of=_epoch(payload["as_of"]),
    )


# --- scoring ---------------------------------------------------------------------------------
def test_score_one_lead_has_the_documented_shape(
    client: TestClient, leads: list[dict[str, Any]]
) -> None:
    r = client.post("/v1/score", json=leads[0])
    assert r.status_code == 200, r.text
    body = ScoreResponse.model_validate(r.json())
    assert body.lead_id == leads[0]["lead_id"]
    assert 1 <= body.score <= 99
    assert body.model.version == "1"
    assert body.model.thresholds.mql == 0.2
    assert body.model.thresholds.sql == 0.5
    assert len(body.reasons.positive) <= 3 and len(body.reasons.negative) <= 3
    assert all(x.impact > 0 for x in body.reasons.positive)
    assert all(x.impact < 0 for x in body.reasons.negative)


def test_service_probabilities_equal_the_scorer(
    client: TestClient, leads: list[dict[str, Any]], live_bundle: Path
) -> None:
    expected = Scorer.load(live_bundle).score([_lead_input(p) for p in leads])
    batch = client.post("/v1/score/batch", json={"leads": leads})
    assert batch.status_code == 200, batch.text
    results = BatchResponse.model_validate(batch.json()).results
    assert [r.lead_id for r in results] == [e.lead_id for e in expected]
    for got, want in zip(results, expected, strict=True):
        assert abs(got.probability - want.probability) <= 1e-9
        assert (got.score, got.stage, got.grade) == (want.score, want.stage, want.grade)
        assert [x.feature for x in got.reasons.positive] == [x.feature for x in want.positive]
    for payload, want in zip(leads[:5], expected[:5], strict=True):
        one = client.post("/v1/score", json=payload).json()
        assert abs(one["probability"] - want.probability) <= 1e-9


def test_a_lead_alone_gets_what_it_gets_inside_a_batch(
    leads: list[dict[str, Any]], live_bundle: Path
) -> None:
    # One lead takes the one-row paths (stage, grade, score on a float; list-based reasons).
    scorer = Scorer.load(live_bundle)
    inputs = [_lead_input(p) for p in leads]
    together = scorer.score(inputs, n_reasons=5)
    for lead, want in zip(inputs, together, strict=True):
        (alone,) = scorer.score([lead], n_reasons=5)
        assert (alone.lead_id, alone.score, alone.stage, alone.grade) == (
            want.lead_id,
            want.score,
            want.stage,
            want.grade,
        )
        assert alone.probability == pytest.approx(want.probability, abs=1e-12)
        # Without reasons the probability comes from LightGBM's single-row predictor instead.
        (bare,) = scorer.score([lead], n_reasons=0)
        assert bare.probability == alone.probability and not bare.positive
        for got, expected in ((alone.positive, want.positive), (alone.negative, want.negative)):
            assert [(r.feature, r.text) for r in got] == [(r.feature, r.text) for r in expected]
            assert [r.impact for r in got] == pytest.approx([r.impact for r in expected], abs=1e-6)
    assert any(r.positive for r in together) and any(r.negative for r in together)


def test_a_batch_is_scored_in_one_scorer_call(
    live_bundle: Path, leads: list[dict[str, Any]]
) -> None:
    calls: list[int] = []

    class CountingScorer(Scorer):
        def score_batch_with_features(
            self, batch: LeadBatch, lead_ids: Sequence[str], **kw: Any
        ) -> tuple[list[ScoreResult], np.ndarray]:
            calls.append(batch.size)
            return super().score_batch_with_features(batch, lead_ids, **kw)

    def load(settings: Settings) -> Scorer:
        s = Scorer.load(settings.bundle_dir)
        return CountingScorer(
            definition=s.definition,
            levels=s.levels,
            booster=s.booster,
            calibrator=s.calibrator,
            thresholds=s.thresholds,
            metadata=s.metadata,
        )

    app = create_app(make_settings(live_bundle), load=load)
    with TestClient(app, headers={"X-API-Key": API_KEY}) as c:
        calls.clear()
        assert c.post("/v1/score/batch", json={"leads": leads}).status_code == 200
    assert calls == [len(leads)]


def test_missing_attributes_and_unseen_categories_score_normally(client: TestClient) -> None:
    for attributes in (
        {},
        {"industry": "space mining", "employees": "250", "job_title": "Astronaut"},
        {"industry": None, "employees": True, "unknown_field": "whatever", "flag": 3},
    ):
        lead = {"lead_id": "x", "attributes": attributes, "created_at": "2023-10-01T00:00:00Z"}
        r = client.post("/v1/score", json=lead)
        assert r.status_code == 200, (attributes, r.text)
        assert 0 < r.json()["probability"] < 1


def test_naive_and_epoch_timestamps_mean_utc(client: TestClient) -> None:
    base = {"lead_id": "t", "attributes": {"industry": "software"}}
    events = [{"event_type": "demo_request", "ts": "2023-11-01T00:00:00Z"}]
    iso = {
        **base,
        "created_at": "2023-10-01T00:00:00Z",
        "as_of": "2023-11-02T00:00:00Z",
        "events": events,
    }
    naive = {
        **base,
        "created_at": "2023-10-01T00:00:00",
        "as_of": "2023-11-02T00:00:00",
        "events": [{"event_type": "demo_request", "ts": "2023-11-01T00:00:00"}],
    }
    epoch = {
        **base,
        "created_at": 1696118400,
        "as_of": 1698883200,
        "events": [{"event_type": "demo_request", "ts": 1698796800, "channel": "web"}],
    }
    probs = {client.post("/v1/score", json=p).json()["probability"] for p in (iso, naive, epoch)}
    assert len(probs) == 1


def test_integer_lead_ids_are_accepted_as_strings(client: TestClient) -> None:
    r = client.post("/v1/score", json={"lead_id": 12345, "created_at": "2023-10-01T00:00:00Z"})
    assert r.status_code == 200 and r.json()["lead_id"] == "12345"


def test_missing_created_at_scores(client: TestClient) -> None:
    r = client.post("/v1/score", json={"lead_id": "no-created", "attributes": {}})
    assert r.status_code == 200, r.text
    assert 0 < r.json()["probability"] < 1


# --- bad input -------------------------------------------------------------------------------
def test_bad_requests_get_a_4xx_naming_the_field(
    client: TestClient, bad_case: tuple[str, str, Any, str]
) -> None:
    _, path, body, field = bad_case
    r = post_case(client, path, body, {})
    assert 400 <= r.status_code < 500, r.text
    assert error_names(r, field), r.json()


def test_oversized_body_is_the_declared_json_413_by_header_and_by_stream(
    client: TestClient,
) -> None:
    big = b'{"lead_id": "x", "attributes": {"a": "' + b"x" * 300_000 + b'"}}'

    def chunks() -> Any:
        for _ in range(30):
            yield b" " * 10_000  # no Content-Length: only the streamed size can tell

    headers = {"content-type": "application/json", "X-API-Key": ADMIN_KEY}
    for path in ("/v1/score", "/v1/score/batch", "/v1/outcomes"):
        for body in (big, chunks()):
            r = client.post(path, content=body, headers=headers)
            assert r.status_code == 413, (path, r.text)
            assert r.headers["content-type"] == "application/json", (path, r.text)
            [problem] = ErrorResponse.model_validate(r.json()).detail
            assert (problem.loc, problem.type) == (["body"], "too_large")
    # nothing is read before the key is checked: a stranger gets the 401
    stranger = {"content-type": "application/json", "X-API-Key": "wrong"}
    assert client.post("/v1/score", content=big, headers=stranger).status_code == 401


# --- auth ------------------------------------------------------------------------------------
def test_keys_are_required_under_v1(client: TestClient, leads: list[dict[str, Any]]) -> None:
    anonymous = {"X-API-Key": ""}
    assert client.post("/v1/score", json=leads[0], headers=anonymous).status_code == 401
    wrong = client.post("/v1/score", json=leads[0], headers={"X-API-Key": "nope"})
    assert wrong.status_code == 401 and error_names(wrong, "X-API-Key")
    assert client.get("/v1/model", headers=anonymous).status_code == 401
    bearer = {"X-API-Key": "", "Authorization": f"Bearer {API_KEY}"}
    assert client.post("/v1/score", json=leads[0], headers=bearer).status_code == 200
    assert client.post("/v1/score", json=leads[0], headers={"X-API-Key": ADMIN_KEY}).is_success


def test_keys_are_required_behind_a_root_path(
    live_bundle: Path, leads: list[dict[str, Any]]
) -> None:
    """Mounted under a proxy prefix (uvicorn --root-path), the same paths need the same keys."""
    app = create_app(make_settings(live_bundle))
    with TestClient(app, root_path="/api") as c:
        assert c.post("/api/v1/score", json=leads[0]).status_code == 401
        assert c.post("/api/v1/score/batch", json={"leads": leads[:2]}).status_code == 401
        assert c.get("/api/v1/model").status_code == 401
        ok = c.post("/api/v1/score", json=leads[0], headers={"X-API-Key": API_KEY})
        assert ok.status_code == 200 and ok.json()["lead_id"] == leads[0]["lead_id"]
        assert c.post("/api/v1/admin/reload", headers={"X-API-Key": API_KEY}).status_code == 403
    scored = app.state.metrics.registry.get_sample_value(
        "predictive_scoring_requests_total",
        {"method": "POST", "route": "/v1/score", "status": "200"},
    )
    assert scored == 1


def test_open_endpoints_need_no_key(client: TestClient) -> None:
    anonymous = {"X-API-Key": ""}
    for path in ("/healthz", "/readyz", "/docs", "/openapi.json", "/metrics"):
        assert client.get(path, headers=anonymous).status_code == 200, path


def test_admin_reload_needs_an_admin_key(client: TestClient) -> None:
    assert client.post("/v1/admin/reload").status_code == 403
    assert client.post("/v1/admin/reload", headers={"X-API-Key": ""}).status_code == 401
    r = client.post("/v1/admin/reload", headers={"X-API-Key": ADMIN_KEY})
    assert r.status_code == 200 and r.json() == {
        "previous_version": "1",
        "version": "1",
        "changed": False,
    }


def test_no_key_configured_refuses_to_start(live_bundle: Path) -> None:
    with pytest.raises(ConfigError, match="PREDICTIVE_SCORING_API_KEYS"):
        create_app(make_settings(live_bundle, api_keys="", admin_keys=""))
    app = create_app(make_settings(live_bundle, api_keys="", admin_keys="", allow_anonymous=True))
    with TestClient(app) as c:
        lead = {"lead_id": "a", "created_at": "2023-10-01T00:00:00Z"}
        assert c.post("/v1/score", json=lead).status_code == 200


def test_metrics_can_require_a_key(live_bundle: Path) -> None:
    app = create_app(make_settings(live_bundle, metrics_public=False))
    with TestClient(app) as c:
        assert c.get("/metrics").status_code == 401
        assert c.get("/metrics", headers={"X-API-Key": API_KEY}).status_code == 200


def test_settings_from_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PREDICTIVE_SCORING_API_KEYS", "a, b,")
    monkeypatch.setenv("PREDICTIVE_SCORING_ADMIN_KEYS", "root")
    monkeypatch.setenv("PREDICTIVE_SCORING_MAX_BATCH", "7")
    s = Settings(_env_file=None)
    assert [k.get_secret_value() for k in s.api_keys] == ["a", "b"]
    assert [k.get_secret_value() for k in s.admin_keys] == ["root"]
    assert s.max_batch == 7 and s.model_alias == "champion"
    assert "root" not in repr(s) and "'a'" not in repr(s)


# --- model, health, metrics --------------------------------------------------------------------
def test_model_endpoint(client: TestClient, live_bundle: Path) -> None:
    body = ModelInfoResponse.model_validate(client.get("/v1/model").json())
    scorer = Scorer.load(live_bundle)
    assert body.version == "1" and body.name == "lead-scoring"
    assert body.features == scorer.feature_names
    assert body.metrics == {"test_roc_auc": 0.8}
    assert body.thresholds == {"mql": 0.2, "sql": 0.5, "base_rate": 0.1}


def test_metrics_count_requests_and_stages(
    client: TestClient, leads: list[dict[str, Any]]
) -> None:
    client.post("/v1/score/batch", json={"leads": leads[:10]})
    client.post("/v1/score", json=leads[0])
    text = client.get("/metrics").text
    ok_line = 'predictive_scoring_requests_total{method="POST",route="/v1/score",status="200"} 1.0'
    assert ok_line in text
    client.get("/no/such/path/42")
    assert 'route="unmatched",status="404"' in client.get("/metrics").text
    assert 'route="/v1/score/batch"' in text
    assert "predictive_scoring_request_duration_seconds_bucket" in text
    stages = [
        float(line.rsplit(" ", 1)[1])
        for line in text.splitlines()
        if line.startswith("predictive_scoring_leads_scored_total{")
    ]
    assert sum(stages) == 11
    assert 'predictive_scoring_model_info{name="lead-scoring",version="1"} 1.0' in text
    # a second app has its own registry: no duplicate-registration error, counts start at zero
    other = create_app(client.app.state.settings)  # type: ignore[attr-defined]
    with TestClient(other) as c2:
        assert 'route="/v1/score"' not in c2.get("/metrics").text


def test_openapi_documents_examples_and_responses(client: TestClient) -> None:
    spec = client.get("/openapi.json").json()
    schemas = spec["components"]["schemas"]
    for name in ("LeadIn", "BatchRequest", "ScoreResponse", "BatchResponse", "ModelInfoResponse"):
        assert schemas[name].get("examples"), name
    for path, ops in spec["paths"].items():
        for op in ops.values():
            assert "200" in op["responses"], path
    assert {"ApiKey", "Bearer"} <= set(spec["components"]["securitySchemes"])


# --- readiness and reload ------------------------------------------------------------------------
def test_not_ready_until_a_model_loads_then_reload_brings_it(
    bundles: dict[str, Path], tmp_path: Path, leads: list[dict[str, Any]]
) -> None:
    target = tmp_path / "later"
    app = create_app(make_settings(target))
    with TestClient(app, headers={"X-API-Key": ADMIN_KEY}) as c:
        ready = c.get("/readyz")
        assert ready.status_code == 503 and "the last load failed" in ready.json()["reason"]
        assert c.post("/v1/score", json=leads[0]).status_code == 503
        refused = c.post("/v1/admin/reload")
        assert refused.status_code == 409 and "not found" in refused.json()["detail"][0]["msg"]
        assert c.get("/healthz").status_code == 200
        Scorer.load(bundles["2"]).save(target)
        r = c.post("/v1/admin/reload")
        assert r.json() == {"previous_version": None, "version": "2", "changed": True}
        assert c.get("/readyz").json()["version"] == "2"
        assert c.post("/v1/score", json=leads[0]).json()["model"]["version"] == "2"


def test_reload_swaps_and_refuses_a_broken_model(
    client: TestClient, bundles: dict[str, Path], live_bundle: Path, leads: list[dict[str, Any]]
) -> None:
    admin = {"X-API-Key": ADMIN_KEY}
    Scorer.load(bundles["2"]).save(live_bundle)
    r = client.post("/v1/admin/reload", headers=admin)
    assert r.json() == {"previous_version": "1", "version": "2", "changed": True}
    assert client.post("/v1/score", json=leads[0]).json()["model"]["version"] == "2"

    (live_bundle / "model.txt").write_text("not a model")
    refused = client.post("/v1/admin/reload", headers=admin)
    assert refused.status_code == 409
    assert "checksum" in refused.json()["detail"][0]["msg"]
    assert client.get("/readyz").json()["version"] == "2"
    assert client.post("/v1/score", json=leads[0]).json()["model"]["version"] == "2"


def test_a_loader_that_crashes_is_refused_with_500(live_bundle: Path) -> None:
    state = {"calls": 0}

    def flaky(settings: Settings) -> Scorer:
        state["calls"] += 1
        if state["calls"] > 1:
            raise RuntimeError("disk on fire")
        return load_scorer(settings)

    app = create_app(make_settings(live_bundle), load=flaky)
    with TestClient(app, headers={"X-API-Key": ADMIN_KEY}) as c:
        r = c.post("/v1/admin/reload")
        assert r.status_code == 500 and "disk on fire" in r.json()["detail"][0]["msg"]
        assert c.get("/readyz").status_code == 200


def test_a_crash_quoting_a_password_shows_it_neither_in_the_answer_nor_in_the_log(
    live_bundle: Path, caplog: pytest.LogCaptureFixture
) -> None:
    state = {"calls": 0}

    def crashing(settings: Settings) -> Scorer:
        state["calls"] += 1
        if state["calls"] > 1:
            raise RuntimeError("cannot reach http://user:s3cret@store.example:5000/api")
        return load_scorer(settings)

    app = create_app(make_settings(live_bundle), load=crashing)
    with caplog.at_level(logging.DEBUG), TestClient(app, headers={"X-API-Key": ADMIN_KEY}) as c:
        r = c.post("/v1/admin/reload")
        assert r.status_code == 500 and "store.example" in r.text
    assert "s3cret" not in r.text
    assert "store.example" in caplog.text and "s3cret" not in caplog.text


def test_an_unexpected_error_is_logged_with_its_traceback_redacted(
    live_bundle: Path, caplog: pytest.LogCaptureFixture
) -> None:
    app = create_app(make_settings(live_bundle))

    def boom() -> None:
        raise RuntimeError("cannot reach http://user:s3cret@store.example:5000/api")

    app.add_api_route("/boom", boom)  # a route that fails as no real route should
    with caplog.at_level(logging.DEBUG), TestClient(app, raise_server_exceptions=False) as c:
        r = c.get("/boom")
    assert r.status_code == 500 and "store.example" not in r.text
    assert "Traceback" in caplog.text and "store.example" in caplog.text
    assert "s3cret" not in caplog.text


def test_polling_picks_up_a_new_model(bundles: dict[str, Path], live_bundle: Path) -> None:
    app = create_app(make_settings(live_bundle, reload_interval_seconds=0.05))
    with TestClient(app, headers={"X-API-Key": API_KEY}) as c:
        assert c.get("/v1/model").json()["version"] == "1"
        Scorer.load(bundles["2"]).save(live_bundle)
        deadline = time.monotonic() + 5
        while c.get("/v1/model").json()["version"] != "2":
            assert time.monotonic() < deadline, "polling never loaded version 2"
            time.sleep(0.05)


def test_load_scorer_reads_the_bundle_without_a_tracking_uri(
    live_bundle: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    assert load_scorer(make_settings(live_bundle)).version == "1"
    with pytest.raises(BundleError, match="not found"):
        load_scorer(make_settings(live_bundle.parent / "absent"))


# --- what the model never saw, over HTTP ----------------------------------------------------


@pytest.fixture
def profiled(live_bundle: Path, tmp_path: Path) -> Iterator[TestClient]:
    """The live bundle with the input profile training records: created_at never missing."""
    scorer = Scorer.load(live_bundle).with_metadata(
        inputs={"required": ["created_at"], "non_negative": ["employees"]}
    )
    app = create_app(make_settings(scorer.save(tmp_path / "profiled")))
    with TestClient(app, headers={"X-API-Key": API_KEY}) as c:
        yield c


def test_a_lead_without_a_required_input_is_a_422_not_a_guess(profiled: TestClient) -> None:
    for body in ({"lead_id": "X"}, {"lead_id": "L-1", "attributes": {"industry": "software"}}):
        r = profiled.post("/v1/score", json=body)
        assert r.status_code == 422, r.text
        assert r.json()["detail"][0]["loc"] == ["body", "created_at"]
    assert profiled.get("/v1/model").json()["required_inputs"] == ["created_at"]
    metrics = profiled.get("/metrics").text
    assert 'predictive_scoring_refused_requests_total{kind="missing"} 2.0' in metrics


def test_unseen_inputs_are_listed_in_warnings_and_counted(profiled: TestClient) -> None:
    lead = {
        "lead_id": "L-1",
        "created_at": "2023-10-01T00:00:00Z",
        "as_of": "2023-11-01T00:00:00Z",
        "attributes": {"industry": "Space Mining"},
        "events": [{"event_type": "chatbot_conversation", "ts": "2023-10-20T00:00:00Z"}],
    }
    one = profiled.post("/v1/score", json=lead).json()
    batch = profiled.post("/v1/score/batch", json={"leads": [lead]}).json()["results"][0]
    expected = [
        {"field": "industry", "value": "Space Mining"},
        {"field": "event_type", "value": "chatbot_conversation"},
    ]
    for result in (one, batch):
        assert [{k: w[k] for k in ("field", "value")} for w in result["warnings"]] == expected
    ScoreResponse.model_validate(one)
    metrics = profiled.get("/metrics").text
    assert 'predictive_scoring_input_warnings_total{field="industry"} 2.0' in metrics
    assert 'predictive_scoring_input_warnings_total{field="event_type"} 2.0' in metrics


@pytest.mark.parametrize(
    ("content_type", "body", "status"),
    [("text/plain", b'{"lead_id": "x"}', 415), ("application/json", b"{not json", 400)],
)
def test_wrong_content_type_and_bad_json_name_the_problem(
    profiled: TestClient, content_type: str, body: bytes, status: int
) -> None:
    r = profiled.post("/v1/score", content=body, headers={"content-type": content_type})
    assert r.status_code == status
    assert r.json()["detail"][0]["type"] in {"unsupported_media_type", "json_invalid"}


def test_each_error_is_declared_with_an_example_of_its_own_status(client: TestClient) -> None:
    spec = client.get("/openapi.json").json()
    kinds = {
        "400": "json_invalid",
        "401": "unauthorized",
        "403": "forbidden",
        "409": "model_refused",
        "413": "too_large",
        "415": "unsupported_media_type",
        "503": "not_ready",
    }
    for path, operations in spec["paths"].items():
        for operation in operations.values():
            responses = operation["responses"]
            if "security" in operation:  # a keyed route answers 401 without its key
                assert "401" in responses, path
            for status, kind in kinds.items():
                if status in responses and path != "/readyz":  # /readyz: a ReadyResponse
                    example = responses[status]["content"]["application/json"]["example"]
                    assert example["detail"][0]["type"] == kind, (path, status, example)
    assert "503" in spec["paths"]["/v1/model"]["get"]["responses"]
    assert client.get("/v1/model", headers={"X-API-Key": "wrong"}).status_code == 401


def test_openapi_declares_each_score_response_with_its_model(client: TestClient) -> None:
    paths = client.get("/openapi.json").json()["paths"]
    for path, model in (("/v1/score", "ScoreResponse"), ("/v1/score/batch", "BatchResponse")):
        ok = paths[path]["post"]["responses"]["200"]["content"]["application/json"]["schema"]
        assert ok == {"$ref": f"#/components/schemas/{model}"}, (path, ok)
        body = paths[path]["post"]["requestBody"]["content"]["application/json"]["schema"]
        assert body["$ref"].endswith("/BatchRequest" if "batch" in path else "/LeadIn")


def test_a_poll_loads_nothing_while_the_probe_is_unchanged(
    live_bundle: Path, bundles: dict[str, Path]
) -> None:
    import asyncio

    from predictive_scoring.model_source import probe_model
    from predictive_scoring.serve.state import ModelHolder

    loads: list[str] = []

    def load(settings: Settings) -> Scorer:
        loads.append(str(settings.bundle_dir))
        return Scorer.load(settings.bundle_dir)

    def probe(settings: Settings) -> str:
        return probe_model(bundle=settings.bundle_dir)

    holder = ModelHolder(make_settings(live_bundle), load, probe=probe)

    async def polls() -> list[bool]:
        changed = [(await holder.reload())[1]]
        for _ in range(3):
            changed.append((await holder.reload(only_if_changed=True))[1])
        Scorer.load(bundles["2"]).save(live_bundle)  # a new export renamed into place
        changed.append((await holder.reload(only_if_changed=True))[1])
        return changed

    assert asyncio.run(polls()) == [True, False, False, False, True]
    assert len(loads) == 2  # the start and the new export; the three quiet polls loaded nothing
    assert holder.current is not None and holder.current.version == "2"


# --- no secret and no server path in what callers see ----------------------------------------
PASSWORD = "s3cret-pw"  # the secret that no body may show


def test_an_unreachable_store_shows_its_password_to_no_one(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    monkeypatch.setenv("MLFLOW_HTTP_REQUEST_MAX_RETRIES", "0")  # refused at once, not in minutes
    monkeypatch.setenv("MLFLOW_HTTP_REQUEST_TIMEOUT", "5")
    caplog.set_level(logging.INFO, logger="predictive_scoring")
    uri = f"http://user:{PASSWORD}@127.0.0.1:1"
    settings = make_settings(None, tracking_uri=uri, project_dir=tmp_path)  # type: ignore[arg-type]
    with TestClient(create_app(settings)) as c:
        ready = c.get("/readyz")
        scored = c.post("/v1/score", json={"lead_id": "x"}, headers={"X-API-Key": API_KEY})
        refused = c.post("/v1/admin/reload", headers={"X-API-Key": ADMIN_KEY})
    assert (ready.status_code, scored.status_code, refused.status_code) == (503, 503, 409)
    for response in (ready, scored):  # strangers and clients: a generic reason
        assert PASSWORD not in response.text and "127.0.0.1:1" not in response.text
        assert "the server log says why" in response.text
    assert PASSWORD not in refused.text and "user:" not in refused.text
    assert "http://***@127.0.0.1:1" in refused.json()["detail"][0]["msg"]  # an admin sees where
    logged = "\n".join(r.getMessage() for r in caplog.records)
    assert "model load refused" in logged and "http://***@127.0.0.1:1" in logged
    assert PASSWORD not in logged


def test_a_missing_bundle_shows_no_server_path(tmp_path: Path) -> None:
    missing = tmp_path / "nowhere" / "bundle"
    with TestClient(create_app(make_settings(missing))) as c:
        ready = c.get("/readyz")
        scored = c.post("/v1/score", json={"lead_id": "x"}, headers={"X-API-Key": API_KEY})
        refused = c.post("/v1/admin/reload", headers={"X-API-Key": ADMIN_KEY})
    assert (ready.status_code, scored.status_code, refused.status_code) == (503, 503, 409)
    for response in (ready, scored, refused):
        assert str(tmp_path) not in response.text, response.text
    message = refused.json()["detail"][0]["msg"]
    assert ".../bundle/bundle.json: not found" in message, message


def test_a_malformed_calibrator_is_refused_with_409_and_no_server_path(
    client: TestClient, live_bundle: Path, leads: list[dict[str, Any]]
) -> None:
    meta = json.loads((live_bundle / "bundle.json").read_text())
    meta["calibrator"] = {}  # no 'method'
    (live_bundle / "bundle.json").write_text(json.dumps(meta))
    refused = client.post("/v1/admin/reload", headers={"X-API-Key": ADMIN_KEY})
    assert refused.status_code == 409, refused.text
    message = refused.json()["detail"][0]["msg"]
    assert "the 'calibrator' part is missing or malformed" in message
    assert str(live_bundle) not in message and ".../live/bundle.json" in message
    assert client.post("/v1/score", json=leads[0]).json()["model"]["version"] == "1"


def test_redact_removes_credentials_and_with_paths_absolute_paths() -> None:
    text = (
        "cannot read m@champion from http://user:pw@host:5000/api (sqlite:////srv/p/mlflow.db, "
        "/srv/p/models/lead-scoring/bundle.json, https://b.s3/x?X-Amz-Signature=abc&part=1)"
    )
    assert redact(text) == (
        "cannot read m@champion from http://***@host:5000/api (sqlite:////srv/p/mlflow.db, "
        "/srv/p/models/lead-scoring/bundle.json, https://b.s3/x?X-Amz-Signature=***&part=1)"
    )
    assert redact(text, paths=True) == (
        "cannot read m@champion from http://***@host:5000/api (sqlite:///.../p/mlflow.db, "
        ".../lead-scoring/bundle.json, https://b.s3/x?X-Amz-Signature=***&part=1)"
    )


# --- the API pages render offline --------------------------------------------------------------
@pytest.mark.parametrize("page", ["/docs", "/redoc"])
def test_the_api_pages_load_only_local_assets(client: TestClient, page: str) -> None:
    html = client.get(page)
    assert html.status_code == 200 and html.headers["content-type"].startswith("text/html")
    urls = re.findall(r"""<(?:script|link)\b[^>]*?\b(?:src|href)=["']([^"']+)["']""", html.text)
    assert len(urls) >= 2, html.text  # the script, and the style or the icon
    assert "openapi.json" in html.text
    for url in urls:
        assert url.startswith("/") and not url.startswith("//"), url
        asset = client.get(url)
        assert asset.status_code == 200, url
        assert len(asset.content) > 100, url
    # nothing else fetched from elsewhere: no absolute URL left in the page
    assert not re.findall(r"""["'(](?:https?:)?//[^"')]+""", html.text), html.text


# --- a CRM posts its own record ----------------------------------------------------------------
HUBSPOT_MAP = {
    "hs_object_id": "lead_id",
    "createdate": "created_at",
    "industry": "industry",
    "numberofemployees": "employees",
    "jobtitle": "job_title",
    "email": "email",
}


def test_a_hubspot_record_is_scored_as_sent(
    live_bundle: Path, leads: list[dict[str, Any]]
) -> None:
    lead = {**leads[0], "events": []}  # a CRM record carries no engagement log
    attributes = lead["attributes"]
    record = {  # what a HubSpot workflow's webhook sends: the contact's own property names
        "hs_object_id": "12345",
        "createdate": lead["created_at"],
        "industry": attributes["industry"],
        "numberofemployees": str(int(attributes["employees"])),  # HubSpot sends text
        "jobtitle": attributes["job_title"],
        "email": attributes["email"],
        "as_of": lead["as_of"],
    }
    app = create_app(make_settings(live_bundle, field_map=json.dumps(HUBSPOT_MAP)))
    with TestClient(app, headers={"X-API-Key": API_KEY}) as c:
        crm = c.post("/v1/score", json=record)
        ours = c.post("/v1/score", json=lead)
        unmapped = c.post("/v1/score", json={**record, "hs_lead_status": "NEW"})
    assert crm.status_code == 200, crm.text
    assert crm.json()["lead_id"] == "12345"
    assert crm.json()["probability"] == ours.json()["probability"]
    assert unmapped.status_code == 422 and error_names(unmapped, "hs_lead_status")


def test_a_map_to_an_input_the_model_lacks_is_refused_at_start(
    live_bundle: Path, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="predictive_scoring")
    settings = make_settings(live_bundle, field_map={"numberofemployees": "employes"})
    with TestClient(create_app(settings), headers={"X-API-Key": ADMIN_KEY}) as c:
        assert c.get("/readyz").status_code == 503
        refused = c.post("/v1/admin/reload")
    assert refused.status_code == 409
    assert "'numberofemployees': 'employes'" in refused.json()["detail"][0]["msg"]
    logged = [r.getMessage() for r in caplog.records if "model load refused" in r.getMessage()]
    assert logged and "does not take" in logged[0]
    with pytest.raises(ValueError, match="not valid JSON"):
        make_settings(live_bundle, field_map="{numberofemployees")


# --- bounds on numbers and times, and the contract that states them ------------------------------
HUGE = "1" + "0" * 309  # too large for a float: an OverflowError once, now a 422


@pytest.mark.parametrize("batch", [False, True], ids=["one", "batch"])
def test_a_huge_integer_is_a_422_naming_the_field(
    client: TestClient, leads: list[dict[str, Any]], batch: bool
) -> None:
    lead = json.dumps({**leads[0], "attributes": {"employees": 0}}).replace(
        '"employees": 0', f'"employees": {HUGE}'
    )
    body = f'{{"leads": [{lead}]}}' if batch else lead
    r = client.post(
        "/v1/score/batch" if batch else "/v1/score",
        content=body,
        headers={"content-type": "application/json"},
    )
    assert r.status_code == 422, r.text
    assert r.json()["detail"][0]["loc"][-2:] == ["attributes", "employees"]


@pytest.mark.parametrize(
    ("change", "field"),
    [
        ({"as_of": "2000-01-01T00:00:00Z"}, "as_of"),  # before created_at
        ({"as_of": 0}, "as_of"),
        ({"created_at": "0001-01-01T00:00:00Z"}, "created_at"),
        ({"events": [{"event_type": "web_visit", "ts": "0001-01-01T00:00:00Z"}]}, "ts"),
        ({"events": [{"event_type": "web_visit", "ts": -86_400}]}, "ts"),
    ],
    ids=["as_of-before-created_at", "as_of-0", "year-0001", "event-year-0001", "event-negative"],
)
def test_a_time_out_of_bounds_is_a_422_naming_the_field(
    client: TestClient, leads: list[dict[str, Any]], change: dict[str, Any], field: str
) -> None:
    for path, body in (
        ("/v1/score", {**leads[0], **change}),
        ("/v1/score/batch", {"leads": [{**leads[0], **change}]}),
    ):
        r = client.post(path, json=body)
        assert r.status_code == 422, (path, r.text)
        assert r.json()["detail"][0]["loc"][-1] == field, r.text


def test_openapi_says_times_may_be_epoch_numbers_and_batch_ids_unique(
    client: TestClient,
) -> None:
    spec = client.get("/openapi.json").json()
    schemas = spec["components"]["schemas"]
    times = [
        (name, prop, json.dumps(schema))
        for name, model in schemas.items()
        for prop, schema in model.get("properties", {}).items()
        if prop in {"as_of", "created_at", "ts"} and name in {"LeadIn", "EventIn"}
    ]
    assert {prop for _, prop, _ in times} == {"as_of", "created_at", "ts"}, times
    for name, prop, text in times:
        assert '"number"' in text or '"integer"' in text, (name, prop)
        assert "epoch" in text, (name, prop)
    assert "unique" in schemas["BatchRequest"]["description"]
    batch = spec["paths"]["/v1/score/batch"]["post"]["responses"]
    assert {"400", "413", "415", "422"} <= set(batch)
