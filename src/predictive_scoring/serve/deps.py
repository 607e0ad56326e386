"""Typed dependencies: the settings, the metrics, the holder and the model for this request.

They are ``async`` because they never block: FastAPI then runs them on the event loop instead
of paying a thread-pool hop for each.
"""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends, Request, Security
from fastapi.security import HTTPAuthorizationCredentials

from predictive_scoring.serve.convert import RequestProblem
from predictive_scoring.serve.metrics import ServiceMetrics
from predictive_scoring.serve.security import API_KEY_HEADER, BEARER
from predictive_scoring.serve.settings import Settings
from predictive_scoring.serve.state import ModelHandle, ModelHolder

__all__ = [
    "Authenticated",
    "CurrentModel",
    "Holder",
    "Metrics",
    "ServiceSettings",
    "documented_auth",
]


async def get_settings(request: Request) -> Settings:
    settings: Settings = request.app.state.settings
    return settings


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


async def documented_auth(
    api_key: Annotated[str | None, Security(API_KEY_HEADER)] = None,
    bearer: Annotated[HTTPAuthorizationCredentials | None, Security(BEARER)] = None,
) -> None:
    """Declares the key schemes in OpenAPI; :class:`AuthMiddleware` has already checked them."""


ServiceSettings = Annotated[Settings, Depends(get_settings)]
Metrics = Annotated[ServiceMetrics, Depends(get_metrics)]
Holder = Annotated[ModelHolder, Depends(get_holder)]
CurrentModel = Annotated[ModelHandle, Depends(get_model)]
Authenticated = Depends(documented_auth)
