"""GET /metrics in the Prometheus text format, from this app's own registry."""

from __future__ import annotations

from fastapi import APIRouter, Request, Response
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

from predictive_scoring.serve.deps import Metrics, ServiceSettings, require_client
from predictive_scoring.serve.schemas import error_responses

__all__ = ["router"]

router = APIRouter(tags=["metrics"])


@router.get(
    "/metrics",
    response_class=Response,
    responses={
        200: {"content": {CONTENT_TYPE_LATEST: {}}, "description": "Prometheus text"},
        **error_responses(
            401, descriptions={401: "Missing or invalid API key, when metrics_public is false"}
        ),
    },
    summary="Prometheus metrics",
)
async def prometheus_metrics(
    request: Request,
    metrics: Metrics,
    settings: ServiceSettings,
) -> Response:
    """Open by default (``metrics_public``); set it false to require an API key."""
    if not settings.metrics_public:
        await require_client(request)
    return Response(generate_latest(metrics.registry), media_type=CONTENT_TYPE_LATEST)
