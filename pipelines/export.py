"""DVC stage `export`: the model registered in MLflow as the challenger, then its bundle.

One step as seen from outside: the version is registered and published first, then the bundle,
already labelled with that version, replaces the old one in a single swap. Killed at any point,
the registry and the bundle are each the old or the new model, never a mix; the next start
marks the interrupted MLflow run FAILED and deletes a version registered but never published.

The bundle also carries the monitor's reference: the distribution of every model input and of
the probability on the test split, and what the thresholds promised per week and per stage.
"""

from __future__ import annotations

import argparse
import datetime as dt
import logging
import os
import shutil
import sys
import tempfile
from pathlib import Path

import pandas as pd

from predictive_scoring.config import load_params
from predictive_scoring.io import dvc_out_hash, git_commit, read_json, setup_logging
from predictive_scoring.profile import monitor_metadata
from predictive_scoring.registry import fail_interrupted_runs, log_bundle_model
from predictive_scoring.thresholds import Thresholds
from predictive_scoring.train import staging_run_id, staging_scorer

logger = logging.getLogger("pipelines.export")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--params", default="params.yaml")
    parser.add_argument("--staging", type=Path, default=Path("models/staging"))
    parser.add_argument("--thresholds", type=Path, default=Path("models/thresholds.json"))
    parser.add_argument("--metrics", type=Path, default=Path("metrics/evaluate.json"))
    parser.add_argument("--features", type=Path, default=Path("data/features"))
    parser.add_argument("--table", type=Path, default=Path("reports/thresholds.csv"))
    parser.add_argument("--out", type=Path, default=None)
    args = parser.parse_args()
    setup_logging()
    all_params = load_params(args.params)
    params = all_params.export
    out = args.out or Path(params.model_dir)
    fail_interrupted_runs(all_params.train.experiment)
    run_id = staging_run_id(args.staging)
    # The same scorer the thresholds and evaluate stages measured, now with its metadata.
    scorer = staging_scorer(
        args.staging,
        thresholds=Thresholds.from_dict(read_json(args.thresholds)),
        metadata={
            "name": params.model_name,
            "version": f"run-{run_id[:8]}",
            "run_id": run_id,
            "git_commit": git_commit(),
            "data_md5": dvc_out_hash("data/features"),
            "metrics": read_json(args.metrics),
            "exported_at": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
        },
    )
    # In place: the scorer is ours alone, and a copy would rebuild its tables.
    scorer.metadata.update(
        monitor_metadata(
            scorer,
            pd.read_parquet(args.features / "test.parquet"),
            pd.read_csv(args.table),
            label={
                "target_stage": all_params.featurize.target_stage,
                "horizon_days": all_params.featurize.horizon_days,
            },
        )
    )
    # Registered from a copy beside the bundle (named so the next write cleans it up if this
    # process dies); the bundle itself changes once, at the end.
    out.parent.mkdir(parents=True, exist_ok=True)
    staged = Path(tempfile.mkdtemp(prefix=f".{out.name}.{os.getpid()}.", dir=out.parent))
    try:
        version = log_bundle_model(
            scorer.save(staged / out.name),
            run_id=run_id,
            model_name=params.model_name,
            alias=params.alias,
            register=params.register_model,
        )
    finally:
        shutil.rmtree(staged, ignore_errors=True)
    if version is not None:
        scorer = scorer.with_metadata(version=version)
    scorer.save(out)
    logger.info(
        "export: MLflow %s version %s @%s (run %s); bundle -> %s",
        params.model_name,
        version or "(not registered)",
        params.alias,
        run_id,
        out,
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
