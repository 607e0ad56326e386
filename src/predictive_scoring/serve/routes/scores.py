"""POST /v1/score and /v1/score/batch: body -> decoder -> ingress -> one Scorer call.

The routes read the raw body themselves, so a well-formed request is decoded once, by msgspec,
instead of into pydantic models; the models still describe the body in OpenAPI and explain any
body that does not decode. Every rule is :func:`predictive_scoring.ingress.admit`'s. The scores,
the features as served and the model's lineage go to the score log's queue
(:mod:`predictive_scoring.scorelog`), which writes them off the request path.
"""

from __future__ import annotations

import functools
import time
from typing import Annotated, Any

from fastapi import APIRouter, Query, Request
from starlette.concurrency import run_in_threadpool

from predictive_scoring.ingress import FieldMap, Limits
from predictive_scoring.scorelog import ScoredBatch, ScoreLog
from predictive_scoring.serve.decode import decode_leads, json_body, result_dict
from predictive_scoring.serve.deps import Scoring, ScoringContext
from predictive_scoring.serve.metrics import ServiceMetrics
from predictive_scoring.serve.responses import OrjsonResponse
from predictive_scoring.serve.schemas import (
    BatchRequest,
    BatchResponse,
    LeadIn,
    ScoreResponse,
    error_responses,
)
from predictive_scoring.serve.state import ModelHandle

__all__ = ["router"]

_ERRORS = error_responses(400, 401, 413, 415, 422, 503)
# Bodies up to this size (one lead, a few small ones) are scored on the event loop.
_INLINE_BYTES = 64 * 1024

Reasons = Annotated[
    bool,
    Query(
        description="Compute the reasons (SHAP, most of the cost of a score); false returns "
        "empty reason lists for callers that only need the probability."
    ),
]

# The key is checked by the Scoring dependency itself (one dependency, not two).
router = APIRouter(prefix="/score", tags=["scores"])


def _body_schema(model: type[LeadIn] | type[BatchRequest]) -> dict[str, Any]:
    ref = {"$ref": f"#/components/schemas/{model.__name__}"}
    return {"requestBody": {"required": True, "content": {"application/json": {"schema": ref}}}}


def _score(
    body: bytes,
    *,
    batch: bool,
    n_reasons: int,
    model: ModelHandle,
    limits: Limits,
    fields: FieldMap,
    metrics: ServiceMetrics,
    log: ScoreLog | None,
) -> dict[str, Any]:
    raw = decode_leads(body, batch=batch, fields=fields)
    now = time.time()
    admitted = model.scorer.admit(raw, now=int(now), limits=limits)
    results, features = model.scorer.score_admitted_with_features(admitted, n_reasons=n_reasons)
    if log is not None:  # one queue append; the writer thread builds the table
        log.submit(
            ScoredBatch.of(
                results,
                features,
                feature_names=model.feature_names,
                as_of=admitted.batch.as_of,
                source="api",
                lineage=model.lineage,
                scored_at=now,
            )
        )
    metrics.count_stages(r.stage for r in results)
    metrics.count_warnings(w.field for ws in admitted.warnings for w in ws)
    if batch:
        return {"model": model.ref, "results": [result_dict(r) for r in results]}
    return {**result_dict(results[0]), "model": model.ref}


async def _answer(
    request: Request, ctx: ScoringContext, *, batch: bool, reasons: bool
) -> OrjsonResponse:
    body = await json_body(request)
    work = functools.partial(
        _score,
        body,
        batch=batch,
        n_reasons=ctx.settings.n_reasons if reasons else 0,
        model=ctx.model,
        limits=ctx.limits,
        fields=request.app.state.holder.fields,
        metrics=ctx.metrics,
        log=request.app.state.score_log,
    )
    # One lead scores in about a millisecond: on the loop; bigger bodies in a thread.
    return OrjsonResponse(work() if len(body) <= _INLINE_BYTES else await run_in_threadpool(work))


@router.post(
    "",
    response_model=ScoreResponse,
    responses=_ERRORS,
    summary="Score one lead",
    openapi_extra=_body_schema(LeadIn),
)
async def score_one(request: Request, ctx: Scoring, reasons: Reasons = True) -> OrjsonResponse:
    """Probability, 1-99 score, stage, grade, reasons and warnings for one lead."""
    return await _answer(request, ctx, batch=False, reasons=reasons)


@router.post(
    "/batch",
    response_model=BatchResponse,
    responses=_ERRORS,
    summary="Score many leads",
    openapi_extra=_body_schema(BatchRequest),
)
async def score_batch(request: Request, ctx: Scoring, reasons: Reasons = True) -> OrjsonResponse:
    """Up to ``max_batch`` leads in one call, scored together; results keep the request order."""
    return await _answer(request, ctx, batch=True, reasons=reasons)
