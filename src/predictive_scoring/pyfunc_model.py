"""MLflow "models from code" entry point: MLflow runs this file to build the pyfunc.

Logging the model as code instead of a pickled object means loading it runs no unpickling; the
model class itself lives in :mod:`predictive_scoring.registry`. Never import this module yourself.
"""

from __future__ import annotations

from mlflow.models import set_model

from predictive_scoring.registry import LeadScoringPyfunc

set_model(LeadScoringPyfunc())
