"""Typed dependencies: the caller's key, the settings, the metrics, the holder and the model.

They are ``async`` because they never block: FastAPI then runs them on the event loop instead
of paying a thread-pool hop for each.
"""

from __future__ import annotations

from dataclasses import replace
from typing import Annotated

from fastapi import Depends, Request, Security
from fastapi.security import HTTPAuthorizationCredentials

from predictive_scoring.errors import RequestProblem
from predictive_scoring.ingress import Limits
from predictive_scoring.serve.metrics import ServiceMetrics
from predictive_scoring.serve.security import API_KEY_HEADER, BEARER, KeyChecker, presented_key
from predictive_scoring.serve.settings import Settings
from predictive_scoring.serve.state import ModelHandle, ModelHolder
from predictive_scoring.timestamps import SERVING

__all__ = [
    "AdminOnly",
    "Authenticated",
    "CurrentModel",
    "Holder",
    "Metrics",
    "ServiceLimits",
    "ServiceSettings",
    "limits_of",
    "require_client",
]


async def get_settings(request: Request) -> Settings:
    settings: Settings = request.app.state.settings
    return settings


async def get_limits(request: Request) -> Limits:
    limits: Limits = request.app.state.limits
    return limits


def limits_of(settings: Settings) -> Limits:
    """The settings' values in the ingress's one set of limits."""
    return Limits(
        max_leads=settings.max_batch,
        max_events_per_lead=settings.max_events_per_lead,
        times=replace(SERVING, skew_seconds=settings.clock_skew_seconds),
    )


async def get_metrics(request: Request) -> ServiceMetrics:
    metrics: ServiceMetrics = request.app.state.metrics
    return metrics


async def get_holder(request: Request) -> ModelHolder:
    holder: ModelHolder = request.app.state.holder
    return holder


async def get_model(holder: Annotated[ModelHolder, Depends(get_holder)]) -> ModelHandle:
    """The model serving this request, read once: a reload mid-request does not affect it."""
    handle = holder.current
    if handle is None:
        raise RequestProblem(
            [],
            f"no model loaded yet ({holder.last_error or 'loading'})",
            "not_ready",
            status_code=503,
        )
    return handle


async def _role(
    request: Request,
    api_key: str | None,
    bearer: HTTPAuthorizationCredentials | None,
) -> str:
    checker: KeyChecker = request.app.state.keys
    role = checker.role(presented_key(api_key, bearer.credentials if bearer else None))
    if role is None:
        raise RequestProblem(
            ["header", "X-API-Key"],
            "missing or invalid API key: send it in the X-API-Key header or as "
            "'Authorization: Bearer <key>'",
            "unauthorized",
            status_code=401,
        )
    return role


async def require_client(
    request: Request,
    api_key: Annotated[str | None, Security(API_KEY_HEADER)] = None,
    bearer: Annotated[HTTPAuthorizationCredentials | None, Security(BEARER)] = None,
) -> None:
    """Any valid key (client or admin), checked before the route reads the body."""
    await _role(request, api_key, bearer)


async def require_admin(
    request: Request,
    api_key: Annotated[str | None, Security(API_KEY_HEADER)] = None,
    bearer: Annotated[HTTPAuthorizationCredentials | None, Security(BEARER)] = None,
) -> None:
    """An admin key (or anonymous mode)."""
    if await _role(request, api_key, bearer) == "client":
        raise RequestProblem(
            ["header", "X-API-Key"],
            "this endpoint needs an admin key",
            "forbidden",
            status_code=403,
        )


ServiceSettings = Annotated[Settings, Depends(get_settings)]
ServiceLimits = Annotated[Limits, Depends(get_limits)]
Metrics = Annotated[ServiceMetrics, Depends(get_metrics)]
Holder = Annotated[ModelHolder, Depends(get_holder)]
CurrentModel = Annotated[ModelHandle, Depends(get_model)]
Authenticated = Depends(require_client)
AdminOnly = Depends(require_admin)
