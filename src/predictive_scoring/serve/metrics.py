"""Prometheus metrics in a registry owned by one app instance, and the middleware that feeds it."""

from __future__ import annotations

import time
from collections import Counter as Tally
from collections.abc import Iterable
from typing import Any

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from predictive_scoring.serve.security import route_path

__all__ = ["CLIENT_CLOSED", "MetricsMiddleware", "ServiceMetrics"]

# The status recorded for a request whose client left before any response started (nginx's 499).
CLIENT_CLOSED = 499

_LATENCY_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10)


class ServiceMetrics:
    """Request count and latency by route, leads by stage, the model version serving, the score
    log's records written and dropped."""

    def __init__(self) -> None:
        self.registry = CollectorRegistry(auto_describe=True)
        self.requests = Counter(
            "predictive_scoring_requests",
            "HTTP requests by method, route template and status code.",
            ["method", "route", "status"],
            registry=self.registry,
        )
        self.latency = Histogram(
            "predictive_scoring_request_duration_seconds",
            "Time from the request to the end of the response, by route template.",
            ["method", "route"],
            buckets=_LATENCY_BUCKETS,
            registry=self.registry,
        )
        self.leads = Counter(
            "predictive_scoring_leads_scored",
            "Leads scored, by the stage they were given.",
            ["stage"],
            registry=self.registry,
        )
        self.model_info = Gauge(
            "predictive_scoring_model_info",
            "1 for the model version now serving.",
            ["name", "version"],
            registry=self.registry,
        )
        self.refused = Counter(
            "predictive_scoring_refused_requests",
            "Requests answered with an error, by kind (the error's type: timestamp, missing, "
            "unauthorized, validation, internal, ...).",
            ["kind"],
            registry=self.registry,
        )
        self.input_warnings = Counter(
            "predictive_scoring_input_warnings",
            "Inputs the model never saw, scored as missing or ignored, by field.",
            ["field"],
            registry=self.registry,
        )
        self.reloads = Counter(
            "predictive_scoring_model_reloads",
            "Model loads by outcome (loaded, unchanged, refused).",
            ["outcome"],
            registry=self.registry,
        )
        self.log_written = Counter(
            "predictive_scoring_score_log_written",
            "Score records written to the score log.",
            registry=self.registry,
        )
        self.log_dropped = Counter(
            "predictive_scoring_score_log_dropped",
            "Score records not logged, by reason: queue_full (the writer fell behind; scoring "
            "went on), write_error (a part could not be written), closed (scored after shutdown).",
            ["reason"],
            registry=self.registry,
        )
        for reason in ("queue_full", "write_error", "closed"):  # shown at 0 from the start
            self.log_dropped.labels(reason)
        # Label children by their label values: a ``labels()`` lookup costs more than the update.
        self._stage_counts: dict[str, Any] = {}
        self._request_children: dict[tuple[str, str, int], tuple[Any, Any]] = {}

    def count_stages(self, stages: Iterable[str]) -> None:
        for stage, n in Tally(stages).items():
            child = self._stage_counts.get(stage)
            if child is None:
                child = self._stage_counts[stage] = self.leads.labels(stage)
            child.inc(n)

    def count_warnings(self, fields: Iterable[str]) -> None:
        for name, n in Tally(fields).items():
            self.input_warnings.labels(name).inc(n)

    def request_done(self, method: str, route: str, status: int, seconds: float) -> None:
        """One finished request: its latency and its count (route is a template, so bounded)."""
        key = (method, route, status)
        children = self._request_children.get(key)
        if children is None:
            children = self._request_children[key] = (
                self.latency.labels(method, route),
                self.requests.labels(method, route, str(status)),
            )
        children[0].observe(seconds)
        children[1].inc()

    def count_log_dropped(self, n: int, reason: str) -> None:
        self.log_dropped.labels(reason).inc(n)

    def count_log_written(self, n: int) -> None:
        self.log_written.inc(n)

    def set_model(self, name: str, version: str) -> None:
        self.model_info.clear()
        self.model_info.labels(name, version).set(1)


class MetricsMiddleware:
    """Pure ASGI (no BaseHTTPMiddleware overhead); unknown paths share one label.

    Every route is a fixed path, so the path of a known route is its template and the label
    set stays bounded whatever clients send.
    """

    def __init__(self, app: ASGIApp, metrics: ServiceMetrics, paths: frozenset[str]) -> None:
        self.app = app
        self.metrics = metrics
        self.paths = paths

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        start = time.perf_counter()
        status = 500
        started = gone = False

        async def send_status(message: Message) -> None:
            nonlocal status, started
            if message["type"] == "http.response.start":
                status, started = int(message["status"]), True
            await send(message)

        async def receive_watch() -> Message:
            nonlocal gone
            message = await receive()
            gone = gone or message["type"] == "http.disconnect"
            return message

        try:
            await self.app(scope, receive_watch, send_status)
        finally:
            if gone and not started:
                status = CLIENT_CLOSED

            path = route_path(scope)
            template = path if path in self.paths else "unmatched"
            method = scope.get("method", "")
            self.metrics.request_done(method, template, status, time.perf_counter() - start)
