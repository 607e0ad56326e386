"""DVC stage `train`: LightGBM + calibration, tracked as one MLflow run."""

from __future__ import annotations

import argparse
import logging
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import yaml
from sklearn.metrics import log_loss, roc_auc_score

from predictive_scoring.config import load_params
from predictive_scoring.dataset import SPLITS
from predictive_scoring.errors import PredictiveScoringError
from predictive_scoring.features import FeatureDefinition
from predictive_scoring.io import (
    dvc_out_hash,
    git_commit,
    read_json,
    setup_logging,
    write_json,
    write_parquet,
)
from predictive_scoring.plots import plot_importance
from predictive_scoring.registry import (
    ensure_experiment,
    fail_interrupted_runs,
    runs_view_url,
)
from predictive_scoring.train import (
    TrainingResult,
    encode_frame,
    scorer_probabilities,
    staging_scorer,
    train_model,
    write_staging,
)

logger = logging.getLogger("pipelines.train")


def _flatten(prefix: str, data: dict[str, object]) -> dict[str, str]:
    return {f"{prefix}.{k}": str(v)[:500] for k, v in data.items()}


# What a run shows in MLflow besides the step-wise curves; metrics/train.json keeps the rest.
MLFLOW_METRICS = ("best_iteration", "train_roc_auc", "valid_roc_auc", "valid_log_loss")
CURVE_POINTS = 200
# The columns of the experiment's saved runs view in the MLflow UI (the evaluate stage logs the
# test metrics to the same run).
VIEW_METRICS = (
    "test_roc_auc",
    "test_pr_auc",
    "test_ece",
    "test_lift_top10",
    "test_sql_precision",
    "test_sql_recall",
    "valid_roc_auc",
    "best_iteration",
)
DATA_PARAMS = ("format", "dir", "exclude_columns", "categorical", "numeric")
VIEW_PARAMS = ("train.num_leaves", "train.learning_rate", "train.min_child_samples")
CURVES = ("valid_log_loss_by_tree", "train_log_loss_by_tree")
# Logged to the same run by the thresholds and evaluate stages: no chart of their own.
OTHER_STAGES_METRICS = (
    "threshold_mql",
    "threshold_sql",
    "test_log_loss",
    "test_brier",
    "test_n",
    "test_ceiling_auc",
)


def _log_curves(
    result: TrainingResult, frames: dict[str, pd.DataFrame], definition: FeatureDefinition
) -> None:
    """Log loss of the uncalibrated booster after each tree, on train and valid, as step-wise
    MLflow metrics (at most ``CURVE_POINTS`` steps): the learning curves early stopping saw."""
    import mlflow
    from mlflow.entities import Metric

    booster = result.booster
    n_trees = booster.num_trees()
    steps = set(np.unique(np.linspace(1, n_trees, min(n_trees, CURVE_POINTS)).round().astype(int)))
    now = int(time.time() * 1000)
    logged: list[Metric] = []
    for split in ("train", "valid"):
        X = encode_frame(frames[split], definition, result.levels)
        y = result.labels[split]
        raw = np.zeros(len(X))
        for tree in range(n_trees):
            # one tree at a time; the first also carries LightGBM's starting score
            raw += booster.predict(X, raw_score=True, start_iteration=tree, num_iteration=1)
            if tree + 1 in steps:
                value = float(log_loss(y, 1.0 / (1.0 + np.exp(-raw)), labels=[0, 1]))
                logged.append(Metric(f"{split}_log_loss_by_tree", value, now, tree + 1))
    client = mlflow.MlflowClient()
    run_id = mlflow.active_run().info.run_id  # type: ignore[union-attr]
    for start in range(0, len(logged), 1000):  # MLflow takes at most 1000 metrics per batch
        client.log_batch(run_id, metrics=logged[start : start + 1000])


def _leaves(prefix: str, data: Any) -> dict[str, Any]:
    """A nested params mapping as dotted keys, as ``dvc exp run -S`` names them."""
    if not isinstance(data, dict):
        return {prefix: data}
    out: dict[str, Any] = {}
    for key, value in data.items():
        out.update(_leaves(f"{prefix}.{key}" if prefix else str(key), value))
    return out


def _changed_params(path: str) -> dict[str, tuple[Any, Any]]:
    """The params that differ from the committed ``params.yaml`` (git HEAD), old and new.

    In a DVC experiment HEAD is its baseline commit, so this is what the experiment changed.
    """
    try:
        committed = subprocess.run(
            ["git", "show", f"HEAD:./{path}"], capture_output=True, text=True, check=True
        ).stdout
    except (OSError, subprocess.CalledProcessError):
        return {}
    old = _leaves("", yaml.safe_load(committed) or {})
    new = _leaves("", yaml.safe_load(Path(path).read_text()) or {})
    return {
        key: (old.get(key), new.get(key))
        for key in sorted(old.keys() | new.keys())
        if old.get(key) != new.get(key)
    }


def _describe_run(params_path: str) -> tuple[str | None, str]:
    """The DVC experiment's name (None outside one) and a run description that starts with what
    changed, so MLflow's runs table shows it in its Description column."""
    exp_name = os.environ.get("DVC_EXP_NAME") or None
    changes = _changed_params(params_path)
    what = (
        "; ".join(f"{key}: {old} -> {new}" for key, (old, new) in changes.items())
        if changes
        else "params.yaml as committed"
    )
    how = f"DVC experiment `{exp_name}`" if exp_name else "`dvc repro`"
    return exp_name, f"{what}\n\n{how}, against the params.yaml of git HEAD."


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--params", default="params.yaml")
    parser.add_argument("--features", type=Path, default=Path("data/features"))
    parser.add_argument("--out", type=Path, default=Path("models/staging"))
    parser.add_argument("--metrics", type=Path, default=Path("metrics/train.json"))
    args = parser.parse_args()
    setup_logging()
    params = load_params(args.params)
    import mlflow

    try:
        definition = FeatureDefinition.from_dict(read_json(args.features / "definition.json"))
        frames = {s: pd.read_parquet(args.features / f"{s}.parquet") for s in SPLITS}
        result = train_model(frames, definition, params.train, progress=sys.stderr.isatty())
    except (PredictiveScoringError, FileNotFoundError) as exc:
        logger.error("train failed, nothing written:\n%s", exc)
        return 1

    metrics: dict[str, float] = {"best_iteration": float(result.best_iteration)}
    for s in ("train", "valid"):  # test: the evaluate stage's, through the exported scorer
        y, p = result.labels[s], result.calibrated[s]
        metrics[f"{s}_roc_auc"] = float(roc_auc_score(y, p))
        metrics[f"{s}_log_loss"] = float(log_loss(y, p, labels=[0, 1]))
    metrics.update(
        {f"calibration_oof_log_loss_{k}": v for k, v in result.calibrator.scores.items()}
    )

    # First: it creates a new store under a lock (parallel `dvc exp run -j` start together).
    experiment_id = ensure_experiment(
        params.train.experiment,
        view_metrics=VIEW_METRICS,
        view_params=VIEW_PARAMS,
        view_curves=CURVES,
        view_hidden=(*MLFLOW_METRICS, *OTHER_STAGES_METRICS),
    )
    fail_interrupted_runs(params.train.experiment)
    mlflow.set_experiment(params.train.experiment)
    exp_name, description = _describe_run(args.params)
    run_name = exp_name or f"lightgbm-{params.train.num_leaves}leaves"
    with mlflow.start_run(run_name=run_name, description=description) as run:
        mlflow.log_params(
            {
                # the data section's column names are plumbing: only what changes the model
                **_flatten("data", params.data.model_dump(include=set(DATA_PARAMS))),
                **_flatten("featurize", params.featurize.model_dump()),
                **_flatten("train", params.train.model_dump()),
                "calibration.chosen": result.calibrator.method,
            }
        )
        mlflow.set_tags(
            {
                "git_commit": git_commit(),
                "dvc_features_md5": dvc_out_hash(str(args.features)),
                "n_features": str(len(definition.feature_names)),
                **({"dvc_exp_name": exp_name} if exp_name else {}),
            }
        )
        mlflow.log_metrics({k: v for k, v in metrics.items() if k in MLFLOW_METRICS})
        _log_curves(result, frames, definition)
        importance = result.importance()
        with tempfile.TemporaryDirectory() as tmp:
            imp_csv = Path(tmp) / "feature_importance.csv"
            importance.to_csv(imp_csv, index=False)
            mlflow.log_artifact(str(imp_csv), "train")
            png = plot_importance(
                importance["feature"].tolist(),
                importance["gain"].to_numpy(),
                Path(tmp) / "feature_importance.png",
            )
            mlflow.log_artifact(str(png), "plots")
        run_id = run.info.run_id

    tmp_out = args.out.with_name(f".{args.out.name}.tmp")
    shutil.rmtree(tmp_out, ignore_errors=True)
    write_staging(tmp_out, result, definition, run_id=run_id)
    # The staging predictions are the scorer's, read back from what was just written: the
    # object export turns into the bundle, not the booster still in memory.
    scorer = staging_scorer(tmp_out)
    preds = [
        pd.DataFrame(
            {
                "split": s,
                "lead_id": frames[s]["lead_id"],
                "as_of_s": frames[s]["as_of_s"],
                "label": result.labels[s],
                "p_raw": result.raw[s],
                "p": scorer_probabilities(scorer, frames[s]),
            }
        )
        for s in SPLITS
    ]
    write_parquet(tmp_out / "predictions.parquet", pd.concat(preds, ignore_index=True))
    importance.to_csv(tmp_out / "feature_importance.csv", index=False)
    shutil.rmtree(args.out, ignore_errors=True)
    tmp_out.rename(args.out)
    write_json(args.metrics, metrics)
    logger.info(
        "train: %d trees, calibration %s, valid AUC %.3f, MLflow run %s (`mlflow ui`, then %s)",
        result.best_iteration,
        result.calibrator.method,
        metrics["valid_roc_auc"],
        run_id,
        runs_view_url(experiment_id),
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
