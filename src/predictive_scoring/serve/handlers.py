"""One place that maps every error to an HTTP response of the shape ``{"detail": [...]}``."""

from __future__ import annotations

import logging
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from starlette.exceptions import HTTPException

from predictive_scoring.errors import (
    BundleError,
    ConfigError,
    DataValidationError,
    ModelRegistryError,
    PredictiveScoringError,
    ScoringInputError,
)
from predictive_scoring.serve.metrics import ServiceMetrics
from predictive_scoring.serve.responses import OrjsonResponse

__all__ = ["install_handlers", "status_of"]

logger = logging.getLogger(__name__)


def _error(status: int, loc: list[Any], msg: str, kind: str) -> OrjsonResponse:
    return OrjsonResponse({"detail": [{"loc": loc, "msg": msg, "type": kind}]}, status_code=status)


def status_of(exc: PredictiveScoringError) -> int:
    """HTTP status of a project error: its own for refused input, 503 without a model, else 500."""
    if isinstance(exc, ScoringInputError):
        return exc.status_code
    if isinstance(exc, DataValidationError):
        return 422
    if isinstance(exc, BundleError | ModelRegistryError):
        return 503
    return 500


def _count_refused(request: Request, kind: str) -> None:
    metrics: ServiceMetrics = request.app.state.metrics
    metrics.refused.labels(kind).inc()


async def _project_error(request: Request, exc: Exception) -> OrjsonResponse:
    assert isinstance(exc, PredictiveScoringError)
    status = status_of(exc)
    if isinstance(exc, ScoringInputError):
        _count_refused(request, exc.kind)
        response = _error(status, exc.loc, exc.msg, exc.kind)
        if status == 401:
            response.headers["www-authenticate"] = 'Bearer realm="predictive_scoring"'
        return response
    if status >= 500:
        logger.error("%s %s failed: %s", request.method, request.url.path, exc)
    kind = "config" if isinstance(exc, ConfigError) else type(exc).__name__
    return _error(status, [], str(exc), kind)


async def _validation_error(request: Request, exc: Exception) -> OrjsonResponse:
    assert isinstance(exc, RequestValidationError)
    _count_refused(request, "validation")
    # "input" is left out on purpose: it can be megabytes and holds personal data.
    items = [
        {"loc": list(e.get("loc", ())), "msg": str(e.get("msg", "")), "type": str(e.get("type"))}
        for e in exc.errors()
    ]
    return OrjsonResponse({"detail": items}, status_code=422)


async def _http_error(request: Request, exc: Exception) -> OrjsonResponse:
    assert isinstance(exc, HTTPException)
    if exc.status_code == 413:
        return _error(413, ["body"], "request body too large; split the batch", "too_large")
    if isinstance(exc.detail, list):
        return OrjsonResponse({"detail": exc.detail}, status_code=exc.status_code)
    response = _error(exc.status_code, [], str(exc.detail), "http")
    if exc.headers:
        response.headers.update(exc.headers)
    return response


async def _unexpected(request: Request, exc: Exception) -> OrjsonResponse:
    logger.exception("%s %s: unexpected error", request.method, request.url.path)
    _count_refused(request, "internal")
    return _error(500, [], "internal error; the server log has the details", "internal")


def install_handlers(app: FastAPI) -> None:
    """Register the handlers on ``app``."""
    app.add_exception_handler(PredictiveScoringError, _project_error)
    app.add_exception_handler(RequestValidationError, _validation_error)
    app.add_exception_handler(HTTPException, _http_error)
    app.add_exception_handler(Exception, _unexpected)
