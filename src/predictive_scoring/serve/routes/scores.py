"""POST /v1/score and /v1/score/batch: every lead through one vectorised Scorer call.

:class:`~predictive_scoring.serve.lean.LeanScoreMiddleware` answers most requests before they
reach these routes, parsing the body straight into a columnar batch; whatever it does not accept
comes here, where the pydantic models produce the error response (or score the unusual but valid
request).
"""

from __future__ import annotations

import time
from typing import Annotated, Any

from fastapi import APIRouter, Query

from predictive_scoring.serve.convert import RequestProblem, result_dict, to_lead_input
from predictive_scoring.serve.deps import Authenticated, CurrentModel, Metrics, ServiceSettings
from predictive_scoring.serve.responses import OrjsonResponse
from predictive_scoring.serve.schemas import (
    BatchRequest,
    BatchResponse,
    ErrorResponse,
    LeadIn,
    ScoreResponse,
)

__all__ = ["router"]

_ERRORS: dict[int | str, dict[str, Any]] = {
    401: {"model": ErrorResponse, "description": "Missing or invalid API key"},
    413: {"model": ErrorResponse, "description": "Body larger than max_body_bytes"},
    422: {"model": ErrorResponse, "description": "Invalid input; loc names the field"},
    503: {"model": ErrorResponse, "description": "No model loaded yet"},
}

Reasons = Annotated[
    bool,
    Query(
        description="Compute the reasons (SHAP, most of the cost of a score); false returns "
        "empty reason lists for callers that only need the probability."
    ),
]

router = APIRouter(prefix="/score", tags=["scores"], dependencies=[Authenticated])


@router.post("", response_model=ScoreResponse, responses=_ERRORS, summary="Score one lead")
def score_one(
    lead: LeadIn,
    model: CurrentModel,
    settings: ServiceSettings,
    metrics: Metrics,
    reasons: Reasons = True,
) -> OrjsonResponse:
    """Probability, 1-99 score, stage, grade and reasons for one lead."""
    now = int(time.time())
    item = to_lead_input(
        lead, now=now, settings=settings, numeric_inputs=model.numeric_inputs, loc=["body"]
    )
    n_reasons = settings.n_reasons if reasons else 0
    result = model.scorer.score([item], now=now, n_reasons=n_reasons)[0]
    metrics.count_stages([result.stage])
    body = result_dict(result)
    body["model"] = model.ref
    return OrjsonResponse(body)


@router.post("/batch", response_model=BatchResponse, responses=_ERRORS, summary="Score many leads")
def score_batch(
    request: BatchRequest,
    model: CurrentModel,
    settings: ServiceSettings,
    metrics: Metrics,
    reasons: Reasons = True,
) -> OrjsonResponse:
    """Up to ``max_batch`` leads in one call, scored together; results keep the request order."""
    leads = request.leads
    if len(leads) > settings.max_batch:
        raise RequestProblem(
            ["body", "leads"],
            f"{len(leads)} leads; at most {settings.max_batch} per call (split the batch)",
            "too_long",
        )
    seen: set[str] = set()
    for i, lead in enumerate(leads):
        if lead.lead_id in seen:
            raise RequestProblem(
                ["body", "leads", i, "lead_id"],
                f"duplicate lead_id {lead.lead_id!r}; each lead may appear once per batch",
                "duplicate",
            )
        seen.add(lead.lead_id)
    now = int(time.time())
    items = [
        to_lead_input(
            lead,
            now=now,
            settings=settings,
            numeric_inputs=model.numeric_inputs,
            loc=["body", "leads", i],
        )
        for i, lead in enumerate(leads)
    ]
    n_reasons = settings.n_reasons if reasons else 0
    results = model.scorer.score(items, now=now, n_reasons=n_reasons)
    metrics.count_stages(r.stage for r in results)
    return OrjsonResponse({"model": model.ref, "results": [result_dict(r) for r in results]})
