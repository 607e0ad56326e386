"""DVC stage `featurize`: point-in-time snapshots, labels and features, split by lead cohort.

On failure it exits non-zero and leaves the last good data/features as it was.
"""

from __future__ import annotations

import argparse
import logging
import sys
from pathlib import Path

from predictive_scoring.batch import connect_duckdb
from predictive_scoring.config import load_params
from predictive_scoring.dataset import featurize_files
from predictive_scoring.errors import PredictiveScoringError
from predictive_scoring.io import (
    atomic_dir,
    failure_text,
    setup_logging,
    write_json,
    write_parquet,
)

logger = logging.getLogger("pipelines.featurize")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--params", default="params.yaml")
    parser.add_argument("--out", type=Path, default=Path("data/features"))
    args = parser.parse_args()
    setup_logging()
    try:
        params = load_params(args.params)
        if params.featurize.engine == "spark":
            from predictive_scoring.spark import spark_connection

            con = spark_connection(params.featurize.spark)
        else:
            con = connect_duckdb(memory_limit=params.featurize.duckdb_memory_limit)
        # Parquet events are read by the engine itself (out of core), never loaded into pandas.
        features = featurize_files(
            params.data, params.featurize, root=Path(params.data.dir), con=con
        )
    except PredictiveScoringError as exc:
        logger.error("featurize failed (%s kept as it was): %s", args.out, failure_text(exc))
        return 1
    # Written beside the last good folder and swapped in whole (persist: true in dvc.yaml keeps
    # DVC from deleting it first), so a failure leaves the last good features in place.
    with atomic_dir(args.out) as tmp:
        for split, frame in features.frames.items():
            write_parquet(tmp / f"{split}.parquet", frame)
        write_json(tmp / "definition.json", features.definition.to_dict())
        write_json(tmp / "summary.json", features.summary)
    s = features.summary
    logger.info(
        "featurize: %d features; snapshots train %d / valid %d / test %d; positive rate "
        "%.1f%% / %.1f%% / %.1f%% -> %s",
        s["n_features"],
        s["train"]["snapshots"],
        s["valid"]["snapshots"],
        s["test"]["snapshots"],
        100 * s["train"]["positive_rate"],
        100 * s["valid"]["positive_rate"],
        100 * s["test"]["positive_rate"],
        args.out,
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
