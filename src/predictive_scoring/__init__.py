"""predictive_scoring: leakage-free, calibrated and explained lead scores."""

from __future__ import annotations

from predictive_scoring.errors import PredictiveScoringError

__all__ = ["PredictiveScoringError", "__version__"]
__version__ = "0.1.0"
