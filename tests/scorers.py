"""A small real Scorer trained on synthetic leads, for tests that need a model but no pipeline."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import lightgbm as lgb
import numpy as np

from predictive_scoring.calibration import Calibrator
from predictive_scoring.features import (
    build_definition,
    employees_band,
    title_function,
    title_seniority,
)
from predictive_scoring.online import LeadBatch, OnlineExecutor
from predictive_scoring.scoring import Scorer
from predictive_scoring.thresholds import Thresholds

NOW = 1_700_000_000  # data lie before this instant (2023-11-14)
EVENT_TYPES = ("demo_request", "pricing_page_view", "web_visit")
INDUSTRIES = ("software", "retail", "finance", "health")
TITLES = ("VP Marketing", "Software Engineer", "CFO", "Marketing Manager", "Intern", "")
DOMAINS = ("gmail.com", "acme.com", "example.org")


def _iso(seconds: float) -> str:
    return datetime.fromtimestamp(int(seconds), UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def synthetic_leads(n: int, seed: int) -> tuple[list[dict[str, Any]], np.ndarray]:
    """``n`` request payloads (``as_of`` fixed at NOW so scores are stable) and 0/1 labels."""
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


# the inputs a CRM record brings beyond industry and head count (tests/api/test_crm_doc.py)
CRM_COUNTRIES = ("germany", "united states", "france")
CRM_SOURCES = ("webinar", "organic_search", "referral")


def build_scorer(*, version: str, seed: int, rounds: int, crm_inputs: bool = False) -> Scorer:
    """Definition -> online features -> LightGBM -> Scorer on synthetic leads (well under 1 s).

    ``crm_inputs`` adds annual revenue, country and lead source to the model's inputs.
    """
    payloads, y = synthetic_leads(400, seed)
    kinds: dict[str, Any] = {"industry": "categorical", "employees": "numeric"}
    extra_levels: dict[str, list[str]] = {}
    if crm_inputs:
        rng = np.random.default_rng(seed)
        for p in payloads:
            p["attributes"] |= {
                "annual_revenue": float(rng.choice([1e5, 1e6, 1e7, 1e8])),
                "country": CRM_COUNTRIES[int(rng.integers(len(CRM_COUNTRIES)))],
                "lead_source": CRM_SOURCES[int(rng.integers(len(CRM_SOURCES)))],
            }
        kinds |= {
            "annual_revenue": "numeric",
            "country": "categorical",
            "lead_source": "categorical",
        }
        extra_levels = {"country": sorted(CRM_COUNTRIES), "lead_source": sorted(CRM_SOURCES)}
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
        **extra_levels,
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
