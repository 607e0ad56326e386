"""The app factory: settings, auth, metrics, and the model loaded in the lifespan."""

from __future__ import annotations

import asyncio
import contextlib
import gc
import logging
import os
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from fastapi import FastAPI

from predictive_scoring.scoring import Scorer
from predictive_scoring.serve.handlers import install_handlers
from predictive_scoring.serve.lean import LeanScoreMiddleware, warm_up
from predictive_scoring.serve.metrics import MetricsMiddleware, ServiceMetrics
from predictive_scoring.serve.responses import OrjsonResponse
from predictive_scoring.serve.routes import admin, health, metrics, model, scores
from predictive_scoring.serve.security import AuthMiddleware, KeyChecker
from predictive_scoring.serve.settings import Settings
from predictive_scoring.serve.state import ModelHolder, ScorerLoader

__all__ = ["create_app", "load_scorer"]

logger = logging.getLogger(__name__)

DESCRIPTION = """
Scores leads with the model trained by the predictive_scoring pipeline.

Send the API key in the `X-API-Key` header or as `Authorization: Bearer <key>`.
Timestamps are ISO 8601 (UTC when no offset is given) or epoch seconds. Every response names
the model version that scored it; errors have the shape `{"detail": [{"loc", "msg", "type"}]}`
with `loc` ending in the offending field.
"""


def load_scorer(settings: Settings) -> Scorer:
    """``models:/<name>@<alias>`` when a tracking URI is configured, else the bundle directory."""
    uri = settings.effective_tracking_uri
    if uri:
        from predictive_scoring.registry import load_registered_scorer

        os.environ["MLFLOW_TRACKING_URI"] = uri
        logger.info(
            "loading models:/%s@%s from %s", settings.model_name, settings.model_alias, uri
        )
        return load_registered_scorer(settings.model_name, settings.model_alias)
    logger.info("loading the bundle in %s", settings.bundle_dir)
    return Scorer.load(settings.bundle_dir)


def _freeze_heap() -> None:
    """Move everything alive now (libraries, the model) out of the cyclic collector's scans.

    A 1,000-lead request allocates some 100,000 objects, enough to trigger full collections,
    and each full collection walks the whole heap of mlflow, pandas and the model: freezing
    the heap after a load takes that walk off the request path. Unfreezing first lets a
    replaced model's cycles be collected; the collection pauses the loop once per new model.
    """
    gc.unfreeze()
    gc.collect()
    gc.freeze()


async def _try_load(holder: ModelHolder, service_metrics: ServiceMetrics, *, poll: bool) -> bool:
    try:
        changed = (await holder.reload(only_if_changed=poll))[1]
    except Exception:  # logged by the holder; the old model (if any) keeps serving
        service_metrics.reloads.labels("refused").inc()
        return False
    current = holder.current
    if current is not None:
        service_metrics.set_model(current.scorer.name, current.version)
    if changed:
        _freeze_heap()
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


def create_app(settings: Settings | None = None, *, load: ScorerLoader = load_scorer) -> FastAPI:
    """Build the scoring service; without an API key it refuses unless anonymous is allowed."""
    settings = settings or Settings()
    checker = KeyChecker(settings)  # raises ConfigError when no key is configured
    service_metrics = ServiceMetrics()
    holder = ModelHolder(settings, load)

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        await asyncio.to_thread(warm_up)
        await _try_load(holder, service_metrics, poll=False)
        task = asyncio.create_task(_keep_loaded(holder, service_metrics))
        try:
            yield
        finally:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task

    app = FastAPI(
        title="predictive_scoring",
        description=DESCRIPTION,
        version="1",
        lifespan=lifespan,
        default_response_class=OrjsonResponse,
        max_body_size=settings.max_body_bytes,
    )
    app.state.settings = settings
    app.state.metrics = service_metrics
    app.state.holder = holder
    install_handlers(app)

    paths = {"/docs", "/docs/oauth2-redirect", "/redoc", "/openapi.json"}
    for router, prefix in (
        (scores.router, "/v1"),
        (model.router, "/v1"),
        (admin.router, "/v1"),
        (health.router, ""),
        (metrics.router, ""),
    ):
        app.include_router(router, prefix=prefix)
        paths.update(prefix + getattr(route, "path", "") for route in router.routes)

    app.add_middleware(
        LeanScoreMiddleware, holder=holder, settings=settings, metrics=service_metrics
    )
    app.add_middleware(AuthMiddleware, checker=checker, metrics_public=settings.metrics_public)
    app.add_middleware(MetricsMiddleware, metrics=service_metrics, paths=frozenset(paths))
    return app
