"""One router per resource: scores, the model, health, admin and metrics."""

from __future__ import annotations

from predictive_scoring.serve.routes import admin, health, metrics, model, scores

__all__ = ["admin", "health", "metrics", "model", "scores"]
