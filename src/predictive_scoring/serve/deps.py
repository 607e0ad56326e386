"""Typed dependencies: the caller's key, the settings, the metrics, the holder and the model.

They are ``async`` because they never block: FastAPI then runs them on the event loop instead
of paying a thread-pool hop for each. Each is one function of the request: FastAPI's solving of
nested dependencies costs more per level than scoring a lead's features, so the key check reads
its two headers itself (the schemes are declared in OpenAPI by the app) and the score routes take
everything they need in one :class:`ScoringContext`.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Annotated

from fastapi import Depends, Request

from predictive_scoring.errors import RequestProblem
from predictive_scoring.ingress import Limits
from predictive_scoring.serve.metrics import ServiceMetrics
from predictive_scoring.serve.security import KeyChecker, Role, presented_key
from predictive_scoring.serve.settings import Settings
from predictive_scoring.serve.state import ModelHandle, ModelHolder
from predictive_scoring.timestamps import SERVING

__all__ = [
    "AdminOnly",
    "Authenticated",
    "CurrentModel",
    "Holder",
    "Metrics",
    "OutcomesOnly",
    "Scoring",
    "ScoringContext",
    "ServiceSettings",
    "limits_of",
    "not_ready_reason",
    "require_admin",
    "require_client",
    "require_outcomes",
]


def limits_of(settings: Settings) -> Limits:
    """The settings' values in the ingress's one set of limits."""
    return Limits(
        max_leads=settings.max_batch,
        max_events_per_lead=settings.max_events_per_lead,
        times=replace(SERVING, skew_seconds=settings.clock_skew_seconds),
    )


async def get_settings(request: Request) -> Settings:
    settings: Settings = request.app.state.settings
    return settings


async def get_metrics(request: Request) -> ServiceMetrics:
    metrics: ServiceMetrics = request.app.state.metrics
    return metrics


async def get_holder(request: Request) -> ModelHolder:
    holder: ModelHolder = request.app.state.holder
    return holder


def not_ready_reason(holder: ModelHolder) -> str:
    """Why no model serves, for any caller: generic, since the load error may hold credentials
    and server paths (the log has it redacted, an admin's reload answers it without either)."""
    if holder.last_error is None:
        return "no model loaded yet: loading the model"
    return (
        "no model loaded yet: the last load failed; the server log says why, and so does "
        "POST /v1/admin/reload with an admin key"
    )


def _current(holder: ModelHolder) -> ModelHandle:
    """The model serving this request, read once: a reload mid-request does not affect it."""
    handle = holder.current
    if handle is None:
        raise RequestProblem([], not_ready_reason(holder), "not_ready", status_code=503)
    return handle


async def get_model(request: Request) -> ModelHandle:
    return _current(request.app.state.holder)


@dataclass(frozen=True)
class ScoringContext:
    """What a score route needs, in one dependency."""

    model: ModelHandle
    settings: Settings
    limits: Limits
    metrics: ServiceMetrics


async def get_scoring(request: Request) -> ScoringContext:
    """The key check (any valid key) and everything a score route needs, in one dependency:
    FastAPI solves each dependency level at a cost comparable to a lead's features."""
    _role(request)
    state = request.app.state
    return ScoringContext(_current(state.holder), state.settings, state.limits, state.metrics)


def _role(request: Request) -> Role:
    checker: KeyChecker = request.app.state.keys
    headers = request.headers
    role = checker.role(presented_key(headers.get("x-api-key"), headers.get("authorization")))
    if role is None:
        raise RequestProblem(
            ["header", "X-API-Key"],
            "missing or invalid API key: send it in the X-API-Key header or as "
            "'Authorization: Bearer <key>'",
            "unauthorized",
            status_code=401,
        )
    return role


async def require_client(request: Request) -> None:
    """Any valid key (client, outcome or admin), checked before the route reads the body."""
    _role(request)


def _forbidden(needs: str) -> RequestProblem:
    return RequestProblem(
        ["header", "X-API-Key"], f"this endpoint needs {needs}", "forbidden", status_code=403
    )


async def require_admin(request: Request) -> None:
    """An admin key (or anonymous mode)."""
    if _role(request) not in ("admin", "anonymous"):
        raise _forbidden("an admin key")


async def require_outcomes(request: Request) -> None:
    """An outcome key or an admin key (or anonymous mode)."""
    if _role(request) == "client":
        raise _forbidden("an outcome key (PREDICTIVE_SCORING_OUTCOME_KEYS) or an admin key")


ServiceSettings = Annotated[Settings, Depends(get_settings)]
Metrics = Annotated[ServiceMetrics, Depends(get_metrics)]
Holder = Annotated[ModelHolder, Depends(get_holder)]
CurrentModel = Annotated[ModelHandle, Depends(get_model)]
Scoring = Annotated[ScoringContext, Depends(get_scoring)]
Authenticated = Depends(require_client)
AdminOnly = Depends(require_admin)
OutcomesOnly = Depends(require_outcomes)
