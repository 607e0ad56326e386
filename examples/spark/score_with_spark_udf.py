"""Batch scoring on Spark with the registered model: leads and events in, scores out as Parquet.

The registered pyfunc (``models:/lead-scoring@champion``) runs as ``mlflow.pyfunc.spark_udf``:
each executor loads the bundle once and scores Arrow batches with exactly the code the service
runs, so a lead gets the same probability here as from ``POST /v1/score``.

    export MLFLOW_TRACKING_URI=sqlite:///$PWD/mlflow.db      # or http://mlflow.internal:5000
    python examples/spark/score_with_spark_udf.py \\
        --leads data/demo/leads.parquet --events data/demo/events.parquet \\
        --as-of 2025-06-01T00:00:00Z --out /tmp/scores
    spark-submit --master yarn --conf spark.executor.memory=4g \\
        examples/spark/score_with_spark_udf.py --leads s3a://crm/leads/ \\
        --events s3a://crm/events/ --out s3a://crm/scores/

Executors need the same Python packages as the driver (``pip install predictive-scoring`` in
the cluster image, or ``--env-manager virtualenv`` to let MLflow build them from the model's
requirements).
"""

from __future__ import annotations

import argparse
import logging
import sys

from predictive_scoring.io import setup_logging
from predictive_scoring.registry import default_tracking_uri
from predictive_scoring.spark import pyfunc_input_spark, score_spark_frame, spark_session

logger = logging.getLogger("examples.spark.score")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--leads", required=True, help="Parquet: lead_id, created_at, attributes")
    parser.add_argument("--events", help="Parquet: lead_id, event_type, ts (optional)")
    parser.add_argument("--model-uri", default="models:/lead-scoring@champion")
    parser.add_argument("--as-of", help="score as of this UTC instant (default: now)")
    parser.add_argument("--out", required=True, help="Parquet folder for the scores")
    parser.add_argument("--master", default=None, help="default: spark-submit's, or local[*]")
    parser.add_argument("--env-manager", default="local", choices=["local", "virtualenv", "uv"])
    args = parser.parse_args()
    setup_logging()

    import mlflow

    mlflow.set_tracking_uri(default_tracking_uri())
    spark = spark_session({"spark.master": args.master} if args.master else {})
    leads = spark.read.parquet(args.leads)
    events = spark.read.parquet(args.events) if args.events else None
    frame = pyfunc_input_spark(leads, events, as_of=args.as_of)
    scores = score_spark_frame(spark, frame, args.model_uri, env_manager=args.env_manager)
    scores.write.mode("overwrite").parquet(args.out)
    logger.info("scored leads with %s -> %s", args.model_uri, args.out)
    return 0


if __name__ == "__main__":
    sys.exit(main())
