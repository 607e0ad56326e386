"""POST /v1/admin/reload: load the model again through the loader and swap it in atomically."""

from __future__ import annotations

from fastapi import APIRouter

from predictive_scoring.errors import PredictiveScoringError, RequestProblem, redact
from predictive_scoring.serve.deps import AdminOnly, Holder, Metrics
from predictive_scoring.serve.responses import OrjsonResponse
from predictive_scoring.serve.schemas import ReloadResponse, error_responses

__all__ = ["router"]

router = APIRouter(prefix="/admin", tags=["admin"], dependencies=[AdminOnly])


@router.post(
    "/reload",
    response_model=ReloadResponse,
    responses=error_responses(401, 403, 409, descriptions={403: "Not an admin key"}),
    summary="Load the current champion (or bundle) now",
)
async def reload_model(holder: Holder, metrics: Metrics) -> OrjsonResponse:
    """Requests in flight finish on the old model; the response names the version now serving.

    A refusal says why, without credentials or absolute server paths (:func:`errors.redact`).
    """
    try:
        previous, changed = await holder.reload()
    except PredictiveScoringError as exc:
        metrics.reloads.labels("refused").inc()
        raise RequestProblem(
            [],
            f"new model refused, still serving the old one: {redact(str(exc), paths=True)}",
            "model_refused",
            status_code=409,
        ) from exc
    except Exception as exc:
        metrics.reloads.labels("refused").inc()
        raise RequestProblem(
            [],
            f"new model refused, still serving the old one: {redact(str(exc), paths=True)}",
            "model_refused",
            status_code=500,
        ) from exc
    current = holder.current
    assert current is not None
    metrics.reloads.labels("loaded" if changed else "unchanged").inc()
    metrics.set_model(current.scorer.name, current.version)
    return OrjsonResponse(
        {
            "previous_version": previous.version if previous else None,
            "version": current.version,
            "changed": changed,
        }
    )
