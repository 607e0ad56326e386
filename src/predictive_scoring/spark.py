"""Apache Spark: a session for the batch executor and batch scoring with the registered model.

The same Ibis expression that runs on DuckDB runs here (DESIGN section 4), so the engine choice
never changes a number. The master comes from the conf (``featurize.spark`` in params.yaml), or
from ``spark-submit`` (``SPARK_MASTER`` / ``PYSPARK_SUBMIT_ARGS``), so one script runs in
``local[*]`` on a laptop and on a cluster unchanged. Needs the optional ``spark`` extra and Java.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Mapping
from typing import Any

from predictive_scoring.errors import ConfigError

__all__ = [
    "LOCAL_SHUFFLE_PARTITIONS",
    "score_spark_frame",
    "spark_connection",
    "spark_session",
]

logger = logging.getLogger(__name__)

LOCAL_SHUFFLE_PARTITIONS = 8  # Spark's 200 is for clusters; on one machine it is all overhead

# Fixed settings: timestamps are UTC everywhere (the executors' shared clock) and pandas <-> Spark
# transfers go through Arrow.
_FIXED = {
    "spark.sql.session.timeZone": "UTC",
    "spark.sql.execution.arrow.pyspark.enabled": "true",
}


def _master(conf: Mapping[str, str]) -> str | None:
    """The conf's master, unless spark-submit already chose one (then Spark's own wins)."""
    if os.environ.get("SPARK_MASTER"):
        return os.environ["SPARK_MASTER"]
    if "--master" in os.environ.get("PYSPARK_SUBMIT_ARGS", ""):
        return None
    return conf.get("spark.master")


def spark_session(conf: Mapping[str, str] | None = None, *, app_name: str = "predictive-scoring") -> Any:
    """Get or create the SparkSession: UTC, Arrow, and few shuffle partitions in local mode.

    ``conf`` holds Spark settings (``spark.master``, ``spark.driver.memory``, ...). The master is
    taken from ``SPARK_MASTER`` or from ``spark-submit --master`` when set, else from ``conf``,
    else ``local[*]``.
    """
    try:
        from pyspark.sql import SparkSession
    except ImportError as exc:
        raise ConfigError(
            "featurize.engine is 'spark' but pyspark is not installed; "
            "pip install 'predictive-scoring[spark]' (and Java 17)"
        ) from exc
    conf = dict(conf or {})
    master = _master(conf)
    builder = SparkSession.builder.appName(conf.pop("spark.app.name", app_name))
    if master:
        builder = builder.master(master)
    conf.pop("spark.master", None)
    local = (master or "local").startswith("local")
    if local:
        conf.setdefault("spark.sql.shuffle.partitions", str(LOCAL_SHUFFLE_PARTITIONS))
        conf.setdefault("spark.ui.showConsoleProgress", "false")
    for key, value in {**conf, **_FIXED}.items():
        builder = builder.config(key, str(value))
    session = builder.getOrCreate()
    for key, value in _FIXED.items():  # getOrCreate may return a session built elsewhere
        session.conf.set(key, value)
    logger.info(
        "spark session %s (master %s, %s shuffle partitions)",
        session.version,
        session.sparkContext.master,
        session.conf.get("spark.sql.shuffle.partitions"),
    )
    return session


def _backend_class() -> type[Any]:
    import ibis
    import pandas as pd
    from ibis.backends.pyspark import Backend
    from ibis.backends.pyspark.datatypes import PySparkSchema

    class _Backend(Backend):  # type: ignore[misc]
        """Ibis's PySpark backend, registering pandas memtables through Arrow on pandas 3."""

        def _register_in_memory_table(self, op: Any) -> None:
            # pandas 3 keeps text in chunked Arrow arrays, which PySpark's Arrow path rejects
            # (it then falls back to a slow row-by-row copy with a warning); object columns
            # go through Arrow fine and hold the same values.
            if any(dtype.is_decimal() for dtype in op.schema.values()):
                super()._register_in_memory_table(op)
                return
            frame = op.data.to_frame()
            text = [c for c in frame.columns if pd.api.types.is_string_dtype(frame[c].dtype)]
            frame = frame.astype(dict.fromkeys(text, object))
            df = self._session.createDataFrame(
                frame, schema=PySparkSchema.from_ibis(op.schema), verifySchema=False
            )
            df.createOrReplaceTempView(op.name)

    _ = ibis.pyspark  # loading the backend once registers its options (ibis.options.pyspark)
    return _Backend


def spark_connection(conf: Mapping[str, str] | None = None) -> Any:
    """An Ibis PySpark backend on :func:`spark_session`, for ``dataset.featurize_dataset``."""
    backend = _backend_class()(spark_session(conf))
    backend.reconnect()
    return backend


def score_spark_frame(
    spark: Any,
    frame: Any,
    model_uri: str,
    *,
    env_manager: str = "local",
) -> Any:
    """Score a Spark DataFrame of pyfunc input rows with the registered model, as a Spark UDF.

    ``frame`` has the columns of :func:`registry.pyfunc_input_frame` (lead_id, created_at, as_of,
    events as a JSON string, attributes). Returns it with the columns probability, score, stage,
    grade and model_version added; each executor loads the model once and scores Arrow batches.
    """
    import mlflow.pyfunc

    result_type = (
        "probability double, score long, stage string, grade string, "
        "top_positive_reasons string, top_negative_reasons string, model_version string"
    )
    udf = mlflow.pyfunc.spark_udf(
        spark, model_uri, result_type=result_type, env_manager=env_manager
    )
    from pyspark.sql import functions as F

    scored = frame.withColumn("_score", udf(F.struct(*[frame[c] for c in frame.columns])))
    out = ["probability", "score", "stage", "grade", "model_version"]
    return scored.select(*frame.columns, *[scored["_score"][c].alias(c) for c in out])
