"""GET /healthz (the process is up) and /readyz (a model is loaded); both open."""

from __future__ import annotations

from fastapi import APIRouter

from predictive_scoring.serve.deps import Holder, not_ready_reason
from predictive_scoring.serve.responses import OrjsonResponse
from predictive_scoring.serve.schemas import HealthResponse, ReadyResponse

__all__ = ["router"]

router = APIRouter(tags=["health"])


@router.get("/healthz", response_model=HealthResponse, summary="Liveness")
def healthz() -> OrjsonResponse:
    """200 while the process runs."""
    return OrjsonResponse({"status": "ok"})


@router.get(
    "/readyz",
    response_model=ReadyResponse,
    responses={503: {"model": ReadyResponse, "description": "No model loaded yet"}},
    summary="Readiness",
)
def readyz(holder: Holder) -> OrjsonResponse:
    """200 once a model is loaded, 503 before. Open to anyone, so the reason is generic: why a
    load failed is in the server log and in an admin's ``POST /v1/admin/reload``."""
    handle = holder.current
    if handle is None:
        return OrjsonResponse(
            {"status": "loading", "reason": not_ready_reason(holder)}, status_code=503
        )
    return OrjsonResponse(
        {"status": "ready", "model": handle.scorer.name, "version": handle.version}
    )
