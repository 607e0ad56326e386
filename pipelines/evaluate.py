"""DVC stage `evaluate`: test metrics, ceiling AUC and plots, into DVC metrics/plots and MLflow."""

from __future__ import annotations

import argparse
import logging
import sys
from pathlib import Path

import numpy as np
import pandas as pd

from predictive_scoring.config import load_params
from predictive_scoring.evaluate import (
    ceiling_auc,
    evaluate_predictions,
    gains_curve,
    single_feature_aucs,
)
from predictive_scoring.features import FeatureDefinition
from predictive_scoring.io import read_json, setup_logging, write_json
from predictive_scoring.plots import (
    curve_points,
    plot_calibration,
    plot_gains,
    plot_importance,
    plot_pr,
    plot_roc,
    plot_score_histogram,
)
from predictive_scoring.registry import default_tracking_uri
from predictive_scoring.thresholds import Thresholds
from predictive_scoring.train import scorer_probabilities, staging_run_id, staging_scorer

logger = logging.getLogger("pipelines.evaluate")

# The test metrics a run shows in MLflow (as test_<name>): ranking, calibration, what sales gets
# at the SQL cut-off, the test set's size (promotion compares like with like) and, on the demo,
# the ceiling. metrics/evaluate.json and the run's evaluate/evaluate.json keep every metric.
MLFLOW_METRICS = (
    "roc_auc",
    "pr_auc",
    "log_loss",
    "brier",
    "ece",
    "lift_top10",
    "sql_precision",
    "sql_recall",
    "n",
    "ceiling_auc",
)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--params", default="params.yaml")
    parser.add_argument("--staging", type=Path, default=Path("models/staging"))
    parser.add_argument("--thresholds", type=Path, default=Path("models/thresholds.json"))
    parser.add_argument("--features", type=Path, default=Path("data/features"))
    parser.add_argument("--metrics", type=Path, default=Path("metrics/evaluate.json"))
    parser.add_argument("--report", type=Path, default=Path("reports/evaluate.json"))
    parser.add_argument("--plots", type=Path, default=Path("plots"))
    args = parser.parse_args()
    setup_logging()
    params = load_params(args.params)
    thresholds = Thresholds.from_dict(read_json(args.thresholds))
    # Measured through the scorer export writes and the service loads, on its own encoding.
    scorer = staging_scorer(args.staging, thresholds=thresholds)
    test = pd.read_parquet(args.features / "test.parquet")
    y, p = test["label"].to_numpy(dtype=np.int64), scorer_probabilities(scorer, test)
    metrics = evaluate_predictions(y, p, thresholds=thresholds, params=params.evaluate)

    definition = FeatureDefinition.from_dict(read_json(args.features / "definition.json"))
    single = single_feature_aucs(
        test[definition.feature_names],
        y,
        categorical=definition.categorical_features,
    )
    best_name = max(single, key=lambda k: single[k]) if single else ""
    metrics["best_single_feature_auc"] = single.get(best_name, float("nan"))
    latent_path = Path(params.data.dir) / (params.data.latent or "")
    if params.data.latent and latent_path.is_file():
        latent = pd.read_parquet(latent_path)
        prop = test["lead_id"].map(latent.set_index("lead_id")["propensity"])
        if prop.notna().all():
            metrics["ceiling_auc"] = ceiling_auc(y, prop.to_numpy())
    write_json(args.metrics, metrics)
    write_json(
        args.report,
        {
            "metrics": metrics,
            "best_single_feature": best_name,
            "single_feature_auc": dict(sorted(single.items(), key=lambda kv: -kv[1])),
            "thresholds": thresholds.to_dict(),
        },
    )

    args.plots.mkdir(parents=True, exist_ok=True)
    # Each curve's rows carry its headline figure, which the DVC templates (.dvc/plots) put in
    # the legend next to the experiment's name: `dvc plots diff` then compares them too.
    summaries = {
        "roc": f"AUC {metrics['roc_auc']:.3f}",
        "pr": f"AP {metrics['pr_auc']:.3f}, base rate {metrics['base_rate']:.3f}",
        "calibration": f"ECE {metrics['ece']:.3f}",
        "gains": f"top 10%: {np.interp(0.1, *gains_curve(y, p)):.0%} of conversions",
    }
    for name, points in curve_points(y, p, bins=params.evaluate.ece_bins).items():
        write_json(
            args.plots / f"{name}.json", [{**row, "curve": summaries[name]} for row in points]
        )
    importance = pd.read_csv(args.staging / "feature_importance.csv")
    pngs = [
        plot_roc(y, p, args.plots / "roc.png"),
        plot_pr(y, p, args.plots / "pr.png"),
        plot_calibration(y, p, args.plots / "calibration.png", bins=params.evaluate.ece_bins),
        plot_gains(y, p, args.plots / "gains.png"),
        plot_score_histogram(p, thresholds, args.plots / "score_histogram.png"),
        plot_importance(
            importance["feature"].tolist(),
            importance["gain"].to_numpy(dtype=np.float64),
            args.plots / "feature_importance.png",
        ),
    ]

    import mlflow

    mlflow.set_tracking_uri(default_tracking_uri())
    run_id = staging_run_id(args.staging)
    with mlflow.start_run(run_id=run_id):
        mlflow.log_metrics(
            {
                f"test_{k}": float(metrics[k])
                for k in MLFLOW_METRICS
                if k in metrics and np.isfinite(metrics[k])
            }
        )
        for png in pngs:
            mlflow.log_artifact(str(png), "plots")
        mlflow.log_artifact(str(args.report), "evaluate")
    logger.info(
        "evaluate: test ROC-AUC %.3f (ceiling %s, best single feature %s %.3f), PR-AUC %.3f, "
        "ECE %.3f, lift@10%% %.2f",
        metrics["roc_auc"],
        f"{metrics['ceiling_auc']:.3f}" if "ceiling_auc" in metrics else "n/a",
        best_name,
        metrics["best_single_feature_auc"],
        metrics["pr_auc"],
        metrics["ece"],
        metrics.get("lift_top10", float("nan")),
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
