"""Large score logs are read by Spark: the same folder, the same records as DuckDB reads."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa

from predictive_scoring import records
from predictive_scoring.scorelog import read_scores


def _part(n: int, *, version: str, features: list[str], seed: int) -> pa.Table:
    rng = np.random.default_rng(seed)
    now = datetime(2026, 11, 30, tzinfo=UTC)
    columns: dict[str, Any] = {
        "lead_id": [f"{version}-{i}" for i in range(n)],
        "scored_at": [now] * n,
        "as_of": [now] * n,
        "source": ["api"] * n,
        "model_name": ["lead-scoring"] * n,
        "model_version": [version] * n,
        "model_sha256": ["0" * 64] * n,
        "definition_hash": [f"def-{version}"] * n,
        "thresholds_version": ["t"] * n,
        "data_hash": ["d"] * n,
        "probability": rng.random(n),
        "score": rng.integers(1, 100, n),
        "stage": rng.choice(["SQL", "MQL", "nurture"], n).tolist(),
        "grade": rng.choice(["A", "B", "C", "D"], n).tolist(),
    }
    schema = dict(records.SCORE_COLUMNS)
    for name in features:
        columns[records.feature_column(name)] = rng.normal(size=n)
        schema[records.feature_column(name)] = pa.float64()
    return pa.table(columns, schema=pa.schema(schema))


def test_spark_reads_the_score_log_as_duckdb_does(spark: Any, tmp_path: Path) -> None:
    store = tmp_path / "logs"
    # Two model versions with different inputs, as after a retrain, and a part being written.
    records.write_part(store, records.SCORES, _part(40, version="7", features=["a", "b"], seed=1))
    records.write_part(store, records.SCORES, _part(25, version="8", features=["b", "c"], seed=2))
    day = next((store / records.SCORES).iterdir())
    (day / ".half-written.parquet.tmp").write_bytes(b"PAR1 not yet")

    want = read_scores(store).sort_values("lead_id").reset_index(drop=True)
    got = (
        spark.read.option("mergeSchema", "true")
        .parquet(str(store / records.SCORES / "*"))
        .toPandas()
        .sort_values("lead_id")
        .reset_index(drop=True)
    )
    assert len(got) == len(want) == 65
    assert got["lead_id"].tolist() == want["lead_id"].tolist()
    np.testing.assert_array_equal(got["probability"], want["probability"])
    for name in ("f__a", "f__b", "f__c"):  # a version's missing inputs are null on both sides
        np.testing.assert_array_equal(got[name].isna(), want[name].isna())
        np.testing.assert_allclose(got[name].dropna(), want[name].dropna())
