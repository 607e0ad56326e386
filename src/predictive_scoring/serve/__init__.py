"""The FastAPI scoring service: ``uvicorn --factory predictive_scoring.serve:create_app``."""

from __future__ import annotations

from predictive_scoring.serve.app import create_app, load_scorer
from predictive_scoring.serve.settings import Settings
from predictive_scoring.serve.state import ModelHandle, ModelHolder, ScorerLoader

__all__ = ["ModelHandle", "ModelHolder", "ScorerLoader", "Settings", "create_app", "load_scorer"]
