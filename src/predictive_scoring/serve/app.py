"""The app factory: settings, auth, metrics, and the model and score log in the lifespan."""

from __future__ import annotations

import asyncio
import contextlib
import gc
import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

from fastapi import FastAPI
from pydantic import ValidationError
from pydantic.json_schema import models_json_schema

from predictive_scoring.errors import ConfigError
from predictive_scoring.io import setup_logging
from predictive_scoring.model_source import (
    BUNDLE_ENV,
    TRACKING_ENV,
    ModelChoice,
    choose_model,
    probe_model,
)
from predictive_scoring.scorelog import ScoreLog
from predictive_scoring.scoring import Scorer
from predictive_scoring.serve.deps import limits_of
from predictive_scoring.serve.docs import DOC_PATHS, install_docs
from predictive_scoring.serve.handlers import BodyLimitMiddleware, install_handlers
from predictive_scoring.serve.metrics import MetricsMiddleware, ServiceMetrics
from predictive_scoring.serve.responses import OrjsonResponse
from predictive_scoring.serve.routes import admin, health, metrics, model, outcomes, scores
from predictive_scoring.serve.schemas import BatchRequest, LeadIn
from predictive_scoring.serve.security import SECURITY_SCHEMES, KeyChecker
from predictive_scoring.serve.settings import Settings
from predictive_scoring.serve.state import ModelHolder, ScorerLoader
from predictive_scoring.timestamps import warm_up

__all__ = ["choose_served_model", "create_app", "load_scorer", "settings_from_environment"]

logger = logging.getLogger(__name__)

DESCRIPTION = """
Scores leads with the model trained by the predictive_scoring pipeline.

Send the API key in the `X-API-Key` header or as `Authorization: Bearer <key>`.
Timestamps are ISO 8601 (UTC when no offset is given) or epoch seconds. Every response names
the model version that scored it; errors have the shape `{"detail": [{"loc", "msg", "type"}]}`
with `loc` ending in the offending field.
"""


def choose_served_model(settings: Settings, *, bundle_set_by: str | None = None) -> ModelChoice:
    """The model the settings select, by the one rule of :mod:`predictive_scoring.model_source`.

    ``bundle_set_by`` names where ``settings.bundle_dir`` came from when it was not the
    ``PREDICTIVE_SCORING_BUNDLE_DIR`` setting (a command-line flag, for example).
    """
    return choose_model(
        bundle=settings.bundle_dir,
        bundle_set_by=bundle_set_by or f"{BUNDLE_ENV} (settings.bundle_dir)",
        tracking_uri=settings.tracking_uri,
        tracking_set_by=f"{TRACKING_ENV} (settings.tracking_uri)",
        model_name=settings.model_name,
        alias=settings.model_alias,
        root=settings.project_dir,
    )


def probe_served_model(settings: Settings) -> str:
    """What :func:`load_scorer` would load now, without loading it (for the polling reload)."""
    return probe_model(
        bundle=settings.bundle_dir,
        tracking_uri=settings.tracking_uri,
        model_name=settings.model_name,
        alias=settings.model_alias,
        root=settings.project_dir,
    )


def load_scorer(settings: Settings) -> Scorer:
    """The service's loader: the champion from the MLflow store, or the bundle if one is set.

    Its metadata says where it came from and why (``source``, ``why``): the start-up log and
    ``GET /v1/model`` report both.
    """
    return choose_served_model(settings).scorer


def _freeze_heap(*, first: bool) -> None:
    """Move everything alive now (libraries, the model) out of the cyclic collector's scans.

    A 1,000-lead request allocates some 100,000 objects, enough to trigger full collections,
    and each full collection walks the whole heap of mlflow, pandas and the model: freezing
    the heap after a load takes that walk off the request path. The first load (no traffic
    yet) collects before freezing. A swap only freezes: a full collection then would stall
    every request for about 0.1 s, and a replaced scorer holds no reference cycle, so
    reference counting frees it as soon as its last request is answered (tested).
    """
    if first:
        gc.unfreeze()
        gc.collect()
    gc.freeze()


async def _try_load(holder: ModelHolder, service_metrics: ServiceMetrics, *, poll: bool) -> bool:
    try:
        previous, changed = await holder.reload(only_if_changed=poll)
    except Exception:  # logged by the holder; the old model (if any) keeps serving
        service_metrics.reloads.labels("refused").inc()
        return False
    current = holder.current
    if current is not None:
        service_metrics.set_model(current.scorer.name, current.version)
    if changed:
        _freeze_heap(first=previous is None)
    service_metrics.reloads.labels("loaded" if changed else "unchanged").inc()
    return True


async def _keep_loaded(holder: ModelHolder, service_metrics: ServiceMetrics) -> None:
    """Retry a failed start-up load, then poll for a new model if an interval is set."""
    s = holder.settings
    while True:
        if holder.current is None:
            if s.load_retry_seconds <= 0:
                return
            await asyncio.sleep(s.load_retry_seconds)
            await _try_load(holder, service_metrics, poll=False)
        elif s.reload_interval_seconds > 0:
            await asyncio.sleep(s.reload_interval_seconds)
            await _try_load(holder, service_metrics, poll=True)
        else:
            return


def _start_score_log(settings: Settings, service_metrics: ServiceMetrics) -> ScoreLog | None:
    """The score log's writer for this worker (None when the log is turned off)."""
    if not settings.log_enabled:
        logger.info("score log off (log_enabled is false)")
        return None
    logger.info(
        "score log: %s, written at least every %g s",
        settings.log_store,
        settings.log_flush_seconds,
    )
    return ScoreLog(
        settings.log_store,
        flush_seconds=settings.log_flush_seconds,
        max_rows=settings.log_queue_size,
        on_drop=service_metrics.count_log_dropped,
        on_write=service_metrics.count_log_written,
    ).start()


def _document(app: FastAPI, settings: Settings) -> None:
    """Complete the OpenAPI document with what the routes do by hand: the request models (the
    score routes read their bodies themselves, see :mod:`~predictive_scoring.serve.decode`) and
    the key schemes (the auth dependency reads the two headers itself)."""
    build = app.openapi

    def openapi() -> dict[str, Any]:
        if app.openapi_schema is None:
            schema = build()
            _, defs = models_json_schema(
                [(LeadIn, "validation"), (BatchRequest, "validation")],
                ref_template="#/components/schemas/{model}",
            )
            components = schema.setdefault("components", {})
            components.setdefault("schemas", {}).update(defs["$defs"])
            components["securitySchemes"] = SECURITY_SCHEMES
            keyed: list[dict[str, list[str]]] = [{name: []} for name in SECURITY_SCHEMES]
            for path, operations in schema.get("paths", {}).items():
                if path.startswith("/v1/") or (path == "/metrics" and not settings.metrics_public):
                    for operation in operations.values():
                        operation["security"] = keyed
            app.openapi_schema = schema
        return app.openapi_schema

    app.openapi = openapi  # type: ignore[method-assign]


def settings_from_environment() -> tuple[Settings, KeyChecker]:
    """The settings from ``PREDICTIVE_SCORING_*`` variables and ``.env``, and their key checker;
    a bad value or no key is a :class:`ConfigError` of one line naming the variable."""
    try:
        settings = Settings()
    except ValidationError as exc:
        prefix = Settings.model_config.get("env_prefix", "")
        problems = "; ".join(
            f"{prefix}{name.upper()}: {e['msg']}"
            + ("" if "key" in name else f" (got {str(e['input'])[:60]!r})")  # keys are secret
            for e in exc.errors()
            for name in ["_".join(str(p) for p in e["loc"][:1])]
        )
        raise ConfigError(f"bad setting: {problems}") from exc
    return settings, KeyChecker(settings)


def create_app(settings: Settings | None = None, *, load: ScorerLoader = load_scorer) -> FastAPI:
    """Build the scoring service; without an API key it refuses unless anonymous is allowed.

    Given ``settings``, a problem with them raises (:class:`ConfigError`); without, as uvicorn's
    factory, the settings come from the environment and a problem with them exits with its
    message (SystemExit), never a traceback.
    """
    if settings is None:
        try:
            settings, checker = settings_from_environment()
        except ConfigError as exc:  # uvicorn would print a traceback of its loader first
            raise SystemExit(f"error: {exc}") from None
    else:
        checker = KeyChecker(settings)  # raises ConfigError when no key is configured
    service_metrics = ServiceMetrics()
    holder = ModelHolder(settings, load, probe=probe_served_model if load is load_scorer else None)

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        # Plain `uvicorn --factory` configures only uvicorn's loggers; without this the line
        # saying which model is served, and why, would not show. A no-op once configured.
        setup_logging()
        await asyncio.to_thread(warm_up)
        await _try_load(holder, service_metrics, poll=False)
        task = asyncio.create_task(_keep_loaded(holder, service_metrics))
        score_log = _start_score_log(settings, service_metrics)
        app.state.score_log = score_log
        try:
            yield
        finally:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
            if score_log is not None:  # uvicorn has finished the requests: write what is queued
                app.state.score_log = None
                await asyncio.to_thread(score_log.close)
                logger.info("score log closed: %d records written", score_log.written)

    app = FastAPI(
        title="predictive_scoring",
        description=DESCRIPTION,
        version="1",
        lifespan=lifespan,
        default_response_class=OrjsonResponse,
        docs_url=None,  # served by install_docs from local files: they render offline
        redoc_url=None,
    )
    app.state.settings = settings
    app.state.keys = checker
    app.state.limits = limits_of(settings)
    app.state.metrics = service_metrics
    app.state.holder = holder
    app.state.score_log = None  # started in the lifespan
    install_handlers(app)
    install_docs(app)

    paths = {*DOC_PATHS, "/openapi.json"}
    for router, prefix in (
        (scores.router, "/v1"),
        (model.router, "/v1"),
        (admin.router, "/v1"),
        (outcomes.router, "/v1"),
        (health.router, ""),
        (metrics.router, ""),
    ):
        app.include_router(router, prefix=prefix)
        paths.update(prefix + getattr(route, "path", "") for route in router.routes)

    _document(app, settings)
    app.add_middleware(BodyLimitMiddleware, max_bytes=settings.max_body_bytes)
    # Added last, so outermost: it counts the 413s too.
    app.add_middleware(MetricsMiddleware, metrics=service_metrics, paths=frozenset(paths))
    return app
