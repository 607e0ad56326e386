"""One place that maps every error to an HTTP response of the shape ``{"detail": [...]}``."""

from __future__ import annotations

import logging
import traceback
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from starlette.datastructures import Headers
from starlette.exceptions import HTTPException
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from predictive_scoring.errors import (
    BundleError,
    ConfigError,
    DataValidationError,
    ModelRegistryError,
    PredictiveScoringError,
    ScoringInputError,
    redact,
)
from predictive_scoring.serve.metrics import ServiceMetrics
from predictive_scoring.serve.responses import OrjsonResponse

__all__ = ["BodyLimitMiddleware", "install_handlers", "status_of"]

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
        logger.error("%s %s failed: %s", request.method, request.url.path, redact(str(exc)))
    kind = "config" if isinstance(exc, ConfigError) else type(exc).__name__
    return _error(status, [], redact(str(exc), paths=True), kind)


async def _validation_error(request: Request, exc: Exception) -> OrjsonResponse:
    assert isinstance(exc, RequestValidationError)
    _count_refused(request, "validation")
    # "input" is left out on purpose: it can be megabytes and holds personal data.
    items = [
        {"loc": list(e.get("loc", ())), "msg": str(e.get("msg", "")), "type": str(e.get("type"))}
        for e in exc.errors()
    ]
    return OrjsonResponse({"detail": items}, status_code=422)


def _too_large() -> OrjsonResponse:
    return _error(413, ["body"], "request body too large; split the batch", "too_large")


async def _http_error(request: Request, exc: Exception) -> OrjsonResponse:
    assert isinstance(exc, HTTPException)
    if exc.status_code == 413:
        return _too_large()
    if isinstance(exc.detail, list):
        return OrjsonResponse({"detail": exc.detail}, status_code=exc.status_code)
    response = _error(exc.status_code, [], str(exc.detail), "http")
    if exc.headers:
        response.headers.update(exc.headers)
    return response


async def _unexpected(request: Request, exc: Exception) -> OrjsonResponse:
    # the traceback's messages may quote a URL with its password: redacted like every error
    trace = "".join(traceback.format_exception(exc))
    logger.error("%s %s: unexpected error\n%s", request.method, request.url.path, redact(trace))
    _count_refused(request, "internal")
    return _error(500, [], "internal error; the server log has the details", "internal")


class BodyLimitMiddleware:
    """Refuses a body over ``max_bytes`` with the JSON 413 of every error, when a route reads
    it: before reading anything when its Content-Length says so, else as the streamed bytes
    pass the limit. A route answers as it would before it reads (401 without a key, 405).

    Starlette's own limit answers a declared length in plain text, whatever the route answers.
    """

    def __init__(self, app: ASGIApp, *, max_bytes: int) -> None:
        self.app = app
        self.max_bytes = max_bytes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        declared = Headers(scope=scope).get("content-length", "")
        too_large = declared.isdigit() and int(declared) > self.max_bytes
        received = 0

        async def limited() -> Message:
            nonlocal received
            if too_large:  # nothing is read; raised where the route reads: _http_error
                raise HTTPException(413)
            message = await receive()
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > self.max_bytes:
                    raise HTTPException(413)
            return message

        await self.app(scope, limited, send)


def install_handlers(app: FastAPI) -> None:
    """Register the handlers on ``app``."""
    app.add_exception_handler(PredictiveScoringError, _project_error)
    app.add_exception_handler(RequestValidationError, _validation_error)
    app.add_exception_handler(HTTPException, _http_error)
    app.add_exception_handler(Exception, _unexpected)
