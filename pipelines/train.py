"""DVC stage `train`: LightGBM + calibration, tracked as one MLflow run."""

from __future__ import annotations

import argparse
import logging
import shutil
import sys
import tempfile
from pathlib import Path

import pandas as pd
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
from predictive_scoring.registry import ensure_experiment, fail_interrupted_runs
from predictive_scoring.train import (
    scorer_probabilities,
    staging_scorer,
    train_model,
    write_staging,
)

logger = logging.getLogger("pipelines.train")


def _flatten(prefix: str, data: dict[str, object]) -> dict[str, str]:
    return {f"{prefix}.{k}": str(v)[:500] for k, v in data.items()}


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
    for s in SPLITS:
        y, p = result.labels[s], result.calibrated[s]
        metrics[f"{s}_roc_auc"] = float(roc_auc_score(y, p))
        metrics[f"{s}_log_loss"] = float(log_loss(y, p, labels=[0, 1]))
    metrics.update(
        {f"calibration_oof_log_loss_{k}": v for k, v in result.calibrator.scores.items()}
    )

    fail_interrupted_runs(params.train.experiment)
    ensure_experiment(params.train.experiment)
    mlflow.set_experiment(params.train.experiment)
    with mlflow.start_run(run_name=f"lightgbm-{params.train.num_leaves}leaves") as run:
        mlflow.log_params(
            {
                **_flatten("data", params.data.model_dump()),
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
            }
        )
        mlflow.log_metrics(metrics)
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
        "train: %d trees, calibration %s, valid AUC %.3f, test AUC %.3f, MLflow run %s",
        result.best_iteration,
        result.calibrator.method,
        metrics["valid_roc_auc"],
        metrics["test_roc_auc"],
        run_id,
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
