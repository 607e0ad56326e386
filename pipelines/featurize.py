"""DVC stage `featurize`: point-in-time snapshots, labels and features, split by lead cohort."""

from __future__ import annotations

import argparse
import logging
import sys
from pathlib import Path

from predictive_scoring.batch import connect_duckdb
from predictive_scoring.config import load_params
from predictive_scoring.dataset import featurize_files
from predictive_scoring.errors import PredictiveScoringError
from predictive_scoring.io import setup_logging, write_json, write_parquet

logger = logging.getLogger("pipelines.featurize")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--params", default="params.yaml")
    parser.add_argument("--out", type=Path, default=Path("data/features"))
    args = parser.parse_args()
    setup_logging()
    params = load_params(args.params)
    try:
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
        logger.error("featurize failed, nothing written:\n%s", exc)
        return 1
    tmp = args.out.with_name(f".{args.out.name}.tmp")
    tmp.mkdir(parents=True, exist_ok=True)
    for split, frame in features.frames.items():
        write_parquet(tmp / f"{split}.parquet", frame)
    write_json(tmp / "definition.json", features.definition.to_dict())
    write_json(tmp / "summary.json", features.summary)
    if args.out.exists():
        import shutil

        shutil.rmtree(args.out)
    tmp.rename(args.out)
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
