"""GET /metrics in the Prometheus text format, from this app's own registry."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Request, Response, Security
from fastapi.security import HTTPAuthorizationCredentials
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

from predictive_scoring.serve.deps import Metrics, ServiceSettings, require_client
from predictive_scoring.serve.security import API_KEY_HEADER, BEARER

__all__ = ["router"]

router = APIRouter(tags=["metrics"])


@router.get(
    "/metrics",
    response_class=Response,
    responses={200: {"content": {CONTENT_TYPE_LATEST: {}}, "description": "Prometheus text"}},
    summary="Prometheus metrics",
)
async def prometheus_metrics(
    request: Request,
    metrics: Metrics,
    settings: ServiceSettings,
    api_key: Annotated[str | None, Security(API_KEY_HEADER)] = None,
    bearer: Annotated[HTTPAuthorizationCredentials | None, Security(BEARER)] = None,
) -> Response:
    """Open by default (``metrics_public``); set it false to require an API key."""
    if not settings.metrics_public:
        await require_client(request, api_key, bearer)
    return Response(generate_latest(metrics.registry), media_type=CONTENT_TYPE_LATEST)
