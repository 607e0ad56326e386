"""Schemathesis against the service in-process: every operation, every check, valid and invalid
requests, a fixed seed so that a failure reproduces.

The service runs on a real small bundle, with its score log and outcome store in a temporary
folder. Requests carry the admin key, which may call every operation; schemathesis also sends
them without a key and with a wrong one (negative cases, and the ``ignored_auth`` probes).

More cases: ``PREDICTIVE_SCORING_FUZZ_CASES=5000 pytest tests/api/test_fuzz.py``; another seed:
``PREDICTIVE_SCORING_FUZZ_SEED=7`` (docs/reliability.md).
"""

from __future__ import annotations

import os
from collections import Counter
from collections.abc import Iterator
from typing import Any

import pytest
import schemathesis
from fastapi import FastAPI
from schemathesis.python import asgi
from tests.scorers import build_scorer
from tests.service_cases import ADMIN_KEY, make_settings

from predictive_scoring.serve import create_app

pytestmark = [pytest.mark.api, pytest.mark.slow]

SEED = int(os.environ.get("PREDICTIVE_SCORING_FUZZ_SEED", "20250315"))
# Cases generated per operation, valid and invalid alike; the schema's examples and the coverage
# phase's boundary cases (missing fields, wrong types, limits) come on top.
CASES = int(os.environ.get("PREDICTIVE_SCORING_FUZZ_CASES", "500"))
MIN_TOTAL = 2_000
# Small enough that some generated bodies pass it, so the 413 is fuzzed like any answer.
BODY_BYTES = 2_000

# The refusals a schema-valid request may meet: the kinds of the input rules of
# predictive_scoring.ingress and .outcomes (docs/ingress.md), which the document describes but
# does not state as JSON Schema (times against now and each other, the model's required inputs
# and numbers, lengths and limits that are settings, ids unique by value, stages in any case).
# Anything else, a decoding error above all, means the document promises what the service
# refuses.
RULES = {
    "timestamp",
    "timestamp_range",
    "future_timestamp",
    "as_of_before_created",
    "missing",
    "negative",
    "float_parsing",
    "too_long",
    "lead_id",
    "duplicate",
    "event_type",
    "stage",
}

CONFIG = schemathesis.Config.from_dict(
    {
        "seed": SEED,
        "auth": {"openapi": {"ApiKey": {"api_key": ADMIN_KEY}}},
        "generation": {
            "mode": "all",
            "max-examples": CASES,
            "deterministic": True,
            "database": "none",  # no replay of earlier runs' failures: the seed alone decides
        },
        "phases": {
            "examples": {"enabled": True},
            "coverage": {"enabled": True},
            "fuzzing": {"enabled": True},
        },
        "checks": {
            "enabled": True,  # all of them; max_response_time stays off (no timing in tests)
            # A valid request may be too large (413: BODY_BYTES is small) or refused by an input
            # rule (422, which refused_by_a_rule checks); an invalid one may be too large too.
            "positive_data_acceptance": {"expected-statuses": ["2xx", "401", "403", "413", "422"]},
            "negative_data_rejection": {
                "expected-statuses": ["400", "401", "403", "405", "413", "415", "422"]
            },
        },
    }
)


def refused_by_a_rule(
    ctx: schemathesis.CheckContext, response: schemathesis.Response, case: schemathesis.Case
) -> None:
    """A schema-valid request answered 422 was refused by an input rule, not by a decoder."""
    if case.meta is None or not case.meta.generation.mode.is_positive:
        return
    if response.status_code == 422:
        kinds = {item["type"] for item in response.json()["detail"]}
        assert kinds <= RULES, f"a schema-valid request was refused by the decoder: {kinds}"


def _document() -> dict[str, Any]:
    """The service's OpenAPI document; building it loads no model and starts nothing."""
    return create_app(make_settings(None)).openapi()  # type: ignore[arg-type]


class _Service:
    """The ASGI app the schema is bound to when the tests are collected: it forwards to the
    service that the ``service`` fixture builds and starts."""

    def __init__(self) -> None:
        self.app: FastAPI | None = None

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        assert self.app is not None, "the service fixture has not started the service"
        await self.app(scope, receive, send)


SERVICE = _Service()
schema = schemathesis.openapi.from_dict(_document(), config=CONFIG)
schema.app = SERVICE


@pytest.fixture(scope="module")
def tally() -> Iterator[Counter[str]]:
    """Cases sent per operation; the total is checked once every operation has run."""
    counts: Counter[str] = Counter()
    yield counts
    if len(counts) == len(list(schema.get_all_operations())):
        assert counts.total() >= MIN_TOTAL, f"only {counts.total()} cases: {dict(counts)}"


@pytest.fixture(scope="module")
def service(tmp_path_factory: pytest.TempPathFactory) -> Iterator[None]:
    """The service on a real small bundle, its score log and outcome store in a temporary
    folder, started (the model loaded) before the module's tests and stopped after them."""
    root = tmp_path_factory.mktemp("fuzz")
    bundle = build_scorer(version="1", seed=0, rounds=20).save(root / "bundle")
    env = pytest.MonkeyPatch()
    env.delenv("MLFLOW_TRACKING_URI", raising=False)
    app = create_app(make_settings(bundle, log_dir=str(root / "logs"), max_body_bytes=BODY_BYTES))
    assert app.openapi() == _document()  # the document fuzzed is the one served
    SERVICE.app = app
    try:
        with asgi.get_client(SERVICE) as client:  # starts the lifespan: loads the model
            assert client.get("/readyz").status_code == 200
        yield
    finally:
        asgi.shutdown_lifespans()  # the score log writes what is queued and stops
        SERVICE.app = None
        env.undo()


@schema.parametrize()
def test_every_operation_holds_its_contract_on_any_input(
    case: schemathesis.Case, service: None, tally: Counter[str]
) -> None:
    tally[case.operation.label] += 1
    case.call_and_validate(additional_checks=[refused_by_a_rule])
