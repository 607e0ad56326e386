"""DVC stage `thresholds`: MQL/SQL cut-offs from the agreement in params.yaml, chosen on valid."""

from __future__ import annotations

import argparse
import logging
import sys
import tempfile
from pathlib import Path

import numpy as np
import pandas as pd

from predictive_scoring.config import load_params
from predictive_scoring.errors import PredictiveScoringError
from predictive_scoring.io import read_json, setup_logging, write_json
from predictive_scoring.registry import default_tracking_uri
from predictive_scoring.thresholds import choose_thresholds, threshold_table
from predictive_scoring.train import scorer_probabilities, staging_run_id, staging_scorer

logger = logging.getLogger("pipelines.thresholds")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--params", default="params.yaml")
    parser.add_argument("--staging", type=Path, default=Path("models/staging"))
    parser.add_argument("--features", type=Path, default=Path("data/features"))
    parser.add_argument("--summary", type=Path, default=Path("data/features/summary.json"))
    parser.add_argument("--out", type=Path, default=Path("models/thresholds.json"))
    parser.add_argument("--table", type=Path, default=Path("reports/thresholds.csv"))
    args = parser.parse_args()
    setup_logging()
    params = load_params(args.params)
    summary = read_json(args.summary)
    try:
        # The probabilities of the scorer that export will write, not the training booster's.
        scorer = staging_scorer(args.staging)
        frames = {s: pd.read_parquet(args.features / f"{s}.parquet") for s in ("valid", "test")}
        labels = {s: f["label"].to_numpy(dtype=np.int64) for s, f in frames.items()}
        probs = {s: scorer_probabilities(scorer, f) for s, f in frames.items()}
        thresholds = choose_thresholds(
            labels["valid"],
            probs["valid"],
            weeks=float(summary["valid"]["weeks"]),
            params=params.thresholds,
        )
    except PredictiveScoringError as exc:
        logger.error("thresholds failed, nothing written:\n%s", exc)
        return 1
    # Without dates (a stratified random split) there are no weeks: a volume is per scored batch.
    timed = summary.get("split") != "stratified_random"
    per = {s: "week" if timed else f"batch of {len(labels[s]):,} leads" for s in labels}
    rows = []
    for split in ("valid", "test"):
        rows += threshold_table(
            labels[split],
            probs[split],
            weeks=float(summary[split]["weeks"]),
            thresholds=thresholds,
            split=split,
            per=per[split],
        )
    table = pd.DataFrame(rows)
    write_json(args.out, thresholds.to_dict())
    args.table.parent.mkdir(parents=True, exist_ok=True)
    table.to_csv(args.table, index=False)

    import mlflow

    mlflow.set_tracking_uri(default_tracking_uri())
    run_id = staging_run_id(args.staging)
    with mlflow.start_run(run_id=run_id):
        mlflow.log_metrics({"threshold_mql": thresholds.mql, "threshold_sql": thresholds.sql})
        with tempfile.TemporaryDirectory() as tmp:
            path = Path(tmp) / "thresholds.csv"
            table.to_csv(path, index=False)
            mlflow.log_artifact(str(path), "thresholds")
    test_sql = table[(table["split"] == "test") & (table["stage"] == "SQL")].iloc[0]
    logger.info(
        "thresholds: MQL >= %.3f (%s), SQL >= %.3f (%s); test SQL %.0f per %s at precision %s",
        thresholds.mql,
        thresholds.method.get("mql", ""),
        thresholds.sql,
        thresholds.method.get("sql", ""),
        test_sql["leads_per_week"],
        per["test"] if timed else f"scored {per['test']} (no dates, so no weekly volume)",
        f"{test_sql['precision']:.2f}" if pd.notna(test_sql["precision"]) else "n/a",
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
