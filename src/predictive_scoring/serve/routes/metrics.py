"""GET /metrics in the Prometheus text format, from this app's own registry."""

from __future__ import annotations

from fastapi import APIRouter, Response
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

from predictive_scoring.serve.deps import Metrics

__all__ = ["router"]

router = APIRouter(tags=["metrics"])


@router.get(
    "/metrics",
    response_class=Response,
    responses={200: {"content": {CONTENT_TYPE_LATEST: {}}, "description": "Prometheus text"}},
    summary="Prometheus metrics",
)
def prometheus_metrics(metrics: Metrics) -> Response:
    """Open by default (``metrics_public``); set it false to require an API key."""
    return Response(generate_latest(metrics.registry), media_type=CONTENT_TYPE_LATEST)
