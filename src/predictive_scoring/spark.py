"""Apache Spark: a session for the batch executor and batch scoring with the registered model.

The same Ibis expression that runs on DuckDB runs here (DESIGN section 4), so the engine choice
never changes a number. The master comes from ``SPARK_MASTER`` or ``spark-submit --master`` when
set, else from the conf (``featurize.spark`` in params.yaml), so one script runs in ``local[*]``
on a laptop and on a cluster unchanged. Needs the optional ``spark`` extra and Java 17.
"""

from __future__ import annotations

import logging
import os
import sys
from collections.abc import Mapping
from typing import Any

from predictive_scoring.errors import ConfigError

__all__ = [
    "LOCAL_SHUFFLE_PARTITIONS",
    "RESULT_COLUMNS",
    "SPARK_EXTRA_HINT",
    "pyfunc_input_spark",
    "require_pyspark",
    "score_spark_frame",
    "spark_connection",
    "spark_session",
    "to_spark_frame",
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
    """``SPARK_MASTER``, else None under spark-submit (its --master holds), else the conf's."""
    if os.environ.get("SPARK_MASTER"):
        return os.environ["SPARK_MASTER"]
    # Under spark-submit the driver's JVM is already up (it hands Python a gateway port) and
    # carries --master; PYSPARK_SUBMIT_ARGS carries it for a plain `python` launch.
    if os.environ.get("PYSPARK_GATEWAY_PORT"):
        return None
    if "--master" in os.environ.get("PYSPARK_SUBMIT_ARGS", ""):
        return None
    return conf.get("spark.master", "local[*]")


SPARK_EXTRA_HINT = "pip install -e '.[spark]' (or bash scripts/setup.sh dev,spark)"


def require_pyspark() -> None:
    """Raise the one-line ConfigError that names the extra to install when pyspark is missing."""
    try:
        import pyspark  # noqa: F401
    except ImportError as exc:
        raise ConfigError(
            "pyspark is not installed, and Spark (featurize.engine: spark) needs the spark "
            f"extra: {SPARK_EXTRA_HINT}; Spark also needs Java 17+"
        ) from exc


def spark_session(
    conf: Mapping[str, str] | None = None, *, app_name: str = "predictive-scoring"
) -> Any:
    """Get or create the SparkSession: UTC, Arrow, and few shuffle partitions in local mode.

    ``conf`` holds Spark settings (``spark.master``, ``spark.driver.memory``, ...). The master is
    ``SPARK_MASTER`` if set, else spark-submit's ``--master``, else ``conf``, else ``local[*]``.
    Local sessions get few shuffle partitions and run Python workers with this interpreter.
    """
    require_pyspark()
    from pyspark.sql import SparkSession

    conf = dict(conf or {})
    master = _master(conf)
    builder = SparkSession.builder.appName(conf.pop("spark.app.name", app_name))
    if master:
        builder = builder.master(master)
    conf.pop("spark.master", None)
    # The feature table (one row per snapshot) is collected to the driver; Spark's 1 GB cap on
    # collected results stops at about 1.5M snapshots.
    conf.setdefault("spark.driver.maxResultSize", "8g")
    local = master is not None and master.startswith("local")
    if local:
        conf.setdefault("spark.sql.shuffle.partitions", str(LOCAL_SHUFFLE_PARTITIONS))
        conf.setdefault("spark.ui.showConsoleProgress", "false")
        # Python workers (UDFs) run this interpreter, so they see the same packages.
        conf.setdefault("spark.pyspark.python", sys.executable)
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


def _arrow_ready(frame: Any) -> Any:
    """The frame with text columns as object: pandas 3 keeps text in chunked Arrow arrays, which
    PySpark's Arrow path rejects (it then copies row by row, with a warning)."""
    import pandas as pd

    text = [c for c in frame.columns if pd.api.types.is_string_dtype(frame[c].dtype)]
    return frame.astype(dict.fromkeys(text, object)) if text else frame


def to_spark_frame(spark: Any, frame: Any) -> Any:
    """A Spark DataFrame from a pandas one, through Arrow, nulls kept as nulls."""
    return spark.createDataFrame(_arrow_ready(frame))


def _backend_class() -> type[Any]:
    import ibis
    from ibis.backends.pyspark import Backend
    from ibis.backends.pyspark.datatypes import PySparkSchema

    class _Backend(Backend):  # type: ignore[misc]
        """Ibis's PySpark backend, registering pandas memtables through Arrow on pandas 3."""

        def _register_in_memory_table(self, op: Any) -> None:
            if any(dtype.is_decimal() for dtype in op.schema.values()):
                super()._register_in_memory_table(op)
                return
            df = self._session.createDataFrame(
                _arrow_ready(op.data.to_frame()),
                schema=PySparkSchema.from_ibis(op.schema),
                verifySchema=False,
            )
            df.createOrReplaceTempView(op.name)

    _ = ibis.pyspark  # loading the backend once registers its options (ibis.options.pyspark)
    return _Backend


def spark_connection(conf: Mapping[str, str] | None = None) -> Any:
    """An Ibis PySpark backend on :func:`spark_session`, for ``dataset.featurize_dataset``."""
    require_pyspark()  # before Ibis's backend, whose import would fail with a bare traceback
    backend = _backend_class()(spark_session(conf))
    backend.reconnect()
    return backend


RESULT_COLUMNS = (
    "probability double, score long, stage string, grade string, "
    "top_positive_reasons string, top_negative_reasons string, model_version string"
)
_ISO = "yyyy-MM-dd'T'HH:mm:ss'Z'"  # the pyfunc's timestamp text, as pyfunc_input_frame writes it


def pyfunc_input_spark(leads: Any, events: Any | None, *, as_of: str | None = None) -> Any:
    """The pyfunc's input built in Spark: one row per lead, its events as a JSON list.

    The Spark twin of :func:`registry.pyfunc_input_frame` for tables that do not fit in pandas:
    ``leads`` has lead_id, created_at and attribute columns, ``events`` lead_id, event_type, ts.
    Timestamps become ISO 8601 text in UTC and integer attributes become doubles.
    """
    from pyspark.sql import functions as F
    from pyspark.sql import types as T

    cols = []
    for field in leads.schema.fields:
        col = leads[field.name]
        if field.name == "lead_id":
            col = col.cast("string")
        elif isinstance(field.dataType, T.TimestampType | T.TimestampNTZType | T.DateType):
            col = F.date_format(col, _ISO)
        elif isinstance(field.dataType, T.IntegralType | T.DecimalType | T.FloatType):
            col = col.cast("double")
        cols.append(col.alias(field.name))
    frame = leads.select(*cols)
    if events is not None:
        per_lead = events.groupBy(events["lead_id"].cast("string").alias("lead_id")).agg(
            F.to_json(
                F.collect_list(
                    F.struct(
                        events["event_type"].cast("string").alias("event_type"),
                        F.date_format(events["ts"], _ISO).alias("ts"),
                    )
                )
            ).alias("events")
        )
        frame = frame.join(per_lead, on="lead_id", how="left")
        frame = frame.withColumn("events", F.coalesce(frame["events"], F.lit("[]")))
    else:
        frame = frame.withColumn("events", F.lit("[]"))
    if as_of is not None:
        frame = frame.withColumn("as_of", F.lit(as_of))
    return frame


def score_spark_frame(
    spark: Any,
    frame: Any,
    model_uri: str,
    *,
    keep: tuple[str, ...] = ("lead_id",),
    env_manager: str = "local",
) -> Any:
    """Score a Spark DataFrame of pyfunc input rows with a logged or registered model.

    ``frame`` has the columns of :func:`registry.pyfunc_input_frame` or
    :func:`pyfunc_input_spark`. The model runs as ``mlflow.pyfunc.spark_udf``: each executor
    loads it once and scores Arrow batches. Returns the ``keep`` columns plus probability,
    score, stage, grade, the reasons and model_version.
    """
    import mlflow.pyfunc
    from pyspark.sql import functions as F

    udf = mlflow.pyfunc.spark_udf(
        spark, model_uri, result_type=RESULT_COLUMNS, env_manager=env_manager
    )
    scored = frame.withColumn("_score", udf(F.struct(*[frame[c] for c in frame.columns])))
    names = [part.strip().split(" ")[0] for part in RESULT_COLUMNS.split(",")]
    return scored.select(*keep, *[scored["_score"][c].alias(c) for c in names])
