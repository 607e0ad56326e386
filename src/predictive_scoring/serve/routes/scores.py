"""POST /v1/score and /v1/score/batch: every lead through one vectorised Scorer call.

Each route has a fast handler (:mod:`predictive_scoring.serve.lean`) that parses the body
straight into a columnar batch; whatever it does not accept falls through to the pydantic route
below, which produces the error response (or scores the unusual but valid request).
"""

from __future__ import annotations

import time
from typing import Annotated, Any

from fastapi import APIRouter, Query
from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import Response

from predictive_scoring.serve.convert import RequestProblem, result_dict, to_lead_input
from predictive_scoring.serve.deps import Authenticated, CurrentModel, Metrics, ServiceSettings
from predictive_scoring.serve.lean import (
    FastPathRoute,
    fast_path,
    is_json,
    parse_leads,
    reasons_flag,
)
from predictive_scoring.serve.metrics import ServiceMetrics
from predictive_scoring.serve.responses import OrjsonResponse
from predictive_scoring.serve.schemas import (
    BatchRequest,
    BatchResponse,
    ErrorResponse,
    LeadIn,
    ScoreResponse,
)
from predictive_scoring.serve.settings import Settings
from predictive_scoring.serve.state import ModelHandle, ModelHolder

__all__ = ["router"]

_ERRORS: dict[int | str, dict[str, Any]] = {
    401: {"model": ErrorResponse, "description": "Missing or invalid API key"},
    413: {"model": ErrorResponse, "description": "Body larger than max_body_bytes"},
    422: {"model": ErrorResponse, "description": "Invalid input; loc names the field"},
    503: {"model": ErrorResponse, "description": "No model loaded yet"},
}
# A single lead is scored on the event loop (about a millisecond); bigger requests in a thread.
_INLINE_BYTES = 64 * 1024

Reasons = Annotated[
    bool,
    Query(
        description="Compute the reasons (SHAP, most of the cost of a score); false returns "
        "empty reason lists for callers that only need the probability."
    ),
]

router = APIRouter(
    prefix="/score", tags=["scores"], dependencies=[Authenticated], route_class=FastPathRoute
)


def _score_body(
    body: bytes,
    *,
    batch: bool,
    reasons: bool,
    model: ModelHandle,
    settings: Settings,
    metrics: ServiceMetrics,
) -> Response | None:
    """The lean path end to end: parse, score and render, or None to take the pydantic route."""
    now = int(time.time())
    leads = parse_leads(
        body,
        batch=batch,
        now=now,
        max_batch=settings.max_batch,
        max_events=settings.max_events_per_lead,
        clock_skew=settings.clock_skew_seconds,
        numeric_inputs=model.numeric_inputs,
        columns=model.scorer.input_columns,
    )
    if leads is None:
        return None
    results = model.scorer.score_batch(
        leads.batch, leads.lead_ids, n_reasons=settings.n_reasons if reasons else 0
    )
    if batch:
        metrics.count_stages(r.stage for r in results)
        return OrjsonResponse({"model": model.ref, "results": [result_dict(r) for r in results]})
    metrics.leads.labels(results[0].stage).inc()
    out = result_dict(results[0])
    out["model"] = model.ref
    return OrjsonResponse(out)


def _fast(*, batch: bool) -> Any:
    async def handler(request: Request) -> Response | None:
        reasons = reasons_flag(request)
        holder: ModelHolder = request.app.state.holder
        model = holder.current
        if reasons is None or model is None or not is_json(request):
            return None
        body = await request.body()
        if not body:
            return None
        kwargs: dict[str, Any] = {
            "batch": batch,
            "reasons": reasons,
            "model": model,
            "settings": request.app.state.settings,
            "metrics": request.app.state.metrics,
        }
        if len(body) <= _INLINE_BYTES:
            return _score_body(body, **kwargs)
        return await run_in_threadpool(lambda: _score_body(body, **kwargs))

    return handler


@router.post("", response_model=ScoreResponse, responses=_ERRORS, summary="Score one lead")
@fast_path(_fast(batch=False))
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
    metrics.leads.labels(result.stage).inc()
    body = result_dict(result)
    body["model"] = model.ref
    return OrjsonResponse(body)


@router.post("/batch", response_model=BatchResponse, responses=_ERRORS, summary="Score many leads")
@fast_path(_fast(batch=True))
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
