"""Real MLflow stores in a temp project: bundles logged and registered as the export stage does."""

from __future__ import annotations

import uuid
from pathlib import Path

import mlflow
from mlflow import MlflowClient

from predictive_scoring.registry import log_bundle_model
from predictive_scoring.scoring import Scorer

MODEL = "lead-scoring"


def store_uri(project: Path) -> str:
    """The project's default store, as ``registry.default_tracking_uri`` spells it."""
    return f"sqlite:///{project.resolve() / 'mlflow.db'}"


def client_of(project: Path) -> MlflowClient:
    uri = store_uri(project)
    return MlflowClient(tracking_uri=uri, registry_uri=uri)


def register(
    scorer: Scorer,
    *,
    project: Path,
    alias: str,
    metrics: dict[str, float] | None = None,
) -> str:
    """Log ``scorer`` to a new run in ``project/mlflow.db`` and register it under ``alias``.

    Artifacts go to ``project/mlruns`` (never the working directory). Returns the version.
    """
    uri = store_uri(project)
    mlflow.set_tracking_uri(uri)
    client = client_of(project)
    exp = client.get_experiment_by_name(MODEL)
    exp_id = (
        exp.experiment_id
        if exp is not None
        else client.create_experiment(MODEL, artifact_location=str(project / "mlruns"))
    )
    run = client.create_run(exp_id)
    for key, value in (metrics or {}).items():
        client.log_metric(run.info.run_id, key, value)
    client.set_terminated(run.info.run_id)
    bundle = scorer.save(project / "staging" / uuid.uuid4().hex)
    version = log_bundle_model(
        bundle, run_id=run.info.run_id, model_name=MODEL, alias=alias, root=project
    )
    assert version is not None
    return version
