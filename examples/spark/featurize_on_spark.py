"""Featurize on Spark: the same snapshots and features as the DuckDB stage, on a cluster.

Runs in local mode as a plain script and on a cluster under spark-submit unchanged (the master
then comes from spark-submit, not from params.yaml):

    python examples/spark/featurize_on_spark.py --params params.yaml --out data/features
    spark-submit --master yarn --deploy-mode client \\
        --conf spark.executor.memory=8g --conf spark.sql.shuffle.partitions=400 \\
        examples/spark/featurize_on_spark.py --params params.yaml --out data/features

The leads and outcomes are validated in pandas on the driver (one row per lead); the events are
read by Spark straight from Parquet (a file, a folder of parts, or s3a:// / gs:// / abfss://).
The result, one row per snapshot, is collected to the driver and written as Parquet per split.
"""

from __future__ import annotations

import argparse
import logging
import sys
from pathlib import Path

from predictive_scoring.config import load_params
from predictive_scoring.dataset import featurize_files
from predictive_scoring.errors import PredictiveScoringError
from predictive_scoring.io import setup_logging, write_json, write_parquet
from predictive_scoring.spark import spark_connection

logger = logging.getLogger("examples.spark.featurize")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--params", default="params.yaml")
    parser.add_argument("--out", type=Path, default=Path("data/features"))
    args = parser.parse_args()
    setup_logging()
    params = load_params(args.params)
    try:
        con = spark_connection(params.featurize.spark)
        features = featurize_files(
            params.data, params.featurize, root=Path(params.data.dir), con=con
        )
    except PredictiveScoringError as exc:
        logger.error("featurize on Spark failed, nothing written:\n%s", exc)
        return 1
    args.out.mkdir(parents=True, exist_ok=True)
    for split, frame in features.frames.items():
        write_parquet(args.out / f"{split}.parquet", frame)
    write_json(args.out / "definition.json", features.definition.to_dict())
    write_json(args.out / "summary.json", features.summary)
    logger.info(
        "featurize on Spark: %d features, %s snapshots -> %s",
        len(features.definition.feature_names),
        {s: len(f) for s, f in features.frames.items()},
        args.out,
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
