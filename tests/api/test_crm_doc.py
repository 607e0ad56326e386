"""docs/crm.md holds: its field map and both CRMs' requests, sent as written to a real uvicorn.

The CRM side (HubSpot's workflow, Salesforce's flow) cannot run here; what can is checked: the
service reads each request exactly as the page shows it, with the page's headers and map, and
answers with the fields the page tells the CRM to write back.
"""

from __future__ import annotations

import json
import os
import re
from pathlib import Path
from typing import Any

import httpx
import lightgbm as lgb
import numpy as np
import pytest
import yaml
from tests.scorers import EVENT_TYPES, INDUSTRIES, _batch, synthetic_leads
from tests.servers import uvicorn_service

from predictive_scoring.calibration import Calibrator
from predictive_scoring.config import FIELD_MAP_ENV
from predictive_scoring.features import (
    build_definition,
    employees_band,
    title_function,
    title_seniority,
)
from predictive_scoring.online import OnlineExecutor
from predictive_scoring.scoring import Scorer
from predictive_scoring.serve.schemas import ScoreResponse
from predictive_scoring.thresholds import Thresholds

pytestmark = [pytest.mark.api, pytest.mark.slow]

PAGE = Path(__file__).resolve().parents[2] / "docs" / "crm.md"
KEY = "crm-doc-key"
COUNTRIES = ("germany", "united states", "france")
SOURCES = ("webinar", "organic_search", "referral")


def _block(name: str) -> str:
    """The fenced block that follows ``<!-- crm-doc: name -->`` in the page."""
    found = re.search(rf"<!-- crm-doc: {name} -->\n```[a-z]*\n(.*?)\n```", PAGE.read_text(), re.S)
    assert found, f"docs/crm.md has no block marked {name!r}"
    return found.group(1)


def _request(name: str) -> tuple[str, dict[str, str], bytes]:
    """The path, headers and body of an ``http`` block."""
    head, _, body = _block(name).partition("\n\n")
    line, *fields = head.splitlines()
    method, path, _ = line.split(" ")
    assert method == "POST"
    headers = dict(f.split(": ", 1) for f in fields)
    headers.pop("Host")
    return path, headers, body.encode()


def _crm_scorer() -> Scorer:
    """A small real model that takes every input the page's map names."""
    payloads, y = synthetic_leads(400, seed=3)
    rng = np.random.default_rng(3)
    for p in payloads:
        p["attributes"] |= {
            "annual_revenue": float(rng.choice([1e5, 1e6, 1e7, 1e8])),
            "country": COUNTRIES[int(rng.integers(len(COUNTRIES)))],
            "lead_source": SOURCES[int(rng.integers(len(SOURCES)))],
        }
    kinds: dict[str, Any] = {
        "industry": "categorical",
        "employees": "numeric",
        "annual_revenue": "numeric",
        "country": "categorical",
        "lead_source": "categorical",
    }
    definition = build_definition(
        event_types=EVENT_TYPES,
        attribute_types=kinds,
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
        "country": sorted(COUNTRIES),
        "lead_source": sorted(SOURCES),
        "title_seniority": sorted({s for t in titles if (s := title_seniority(t))}),
        "title_function": sorted({f for t in titles if (f := title_function(t))}),
        "employees_band": sorted(
            {b for p in payloads if (b := employees_band(p["attributes"]["employees"]))}
        ),
    }
    X = OnlineExecutor(definition, levels).transform(
        _batch(payloads, [*kinds, "job_title", "email"])
    )
    names = definition.feature_names
    data = lgb.Dataset(
        X,
        label=y,
        feature_name=names,
        categorical_feature=[names.index(c) for c in definition.categorical_features],
    )
    params = {"objective": "binary", "num_leaves": 8, "min_data_in_leaf": 10, "verbose": -1}
    return Scorer(
        definition=definition,
        levels=levels,
        booster=lgb.train({**params, "seed": 3, "num_threads": 1}, data, num_boost_round=20),
        calibrator=Calibrator(method="none"),
        thresholds=Thresholds(mql=0.2, sql=0.5, base_rate=0.1),
        metadata={"name": "lead-scoring", "version": "7"},
    )


def test_the_pages_requests_are_scored_as_written(tmp_path: Path) -> None:
    mapping = yaml.safe_load(_block("field-map"))
    (tmp_path / "field-map.yaml").write_text(_block("field-map"))
    bundle = _crm_scorer().save(tmp_path / "bundle")
    env = {k: v for k, v in os.environ.items() if not k.startswith("PREDICTIVE_SCORING_")}
    env |= {
        "PREDICTIVE_SCORING_API_KEYS": KEY,
        "PREDICTIVE_SCORING_BUNDLE_DIR": str(bundle),
        FIELD_MAP_ENV: str(tmp_path / "field-map.yaml"),
        "PREDICTIVE_SCORING_LOG_ENABLED": "false",
    }
    answers = {}
    with uvicorn_service(env, cwd=tmp_path) as base:
        for crm in ("hubspot", "salesforce"):
            path, headers, body = _request(f"{crm}-request")
            headers["X-API-Key"] = KEY  # the page shows a placeholder
            sent = json.loads(body)
            assert set(sent) <= set(mapping), f"{crm}: fields the map lacks"
            answer = httpx.post(f"{base}{path}", content=body, headers=headers, timeout=60)
            assert answer.status_code == 200, (crm, answer.text)
            answers[crm] = (sent, answer.json())
    for crm, (sent, answer) in answers.items():
        ids = [v for k, v in sent.items() if mapping[k] == "lead_id"]
        assert answer["lead_id"] == ids[0], crm
        assert 1 <= answer["score"] <= 99 and answer["stage"] in {"SQL", "MQL", "nurture"}
        assert 0 < answer["probability"] < 1 and answer["model"]["version"] == "7"
        ScoreResponse.model_validate(answer)
    # the answer shown on the page has the shape the service answers with
    ScoreResponse.model_validate(json.loads(_block("response")))
    warned = {(w["field"], w["value"]) for w in answers["salesforce"][1]["warnings"]}
    assert ("lead_source", "Web") in warned  # never seen in training, as the page says
