"""The session: UTC, the test conf applied, and the master chosen as spark-submit expects."""

from __future__ import annotations

from typing import Any

import pytest

from predictive_scoring.spark import _master

pytestmark = pytest.mark.spark


def test_the_shared_session_is_utc_small_and_local(spark: Any) -> None:
    assert spark.conf.get("spark.sql.session.timeZone") == "UTC"
    assert spark.conf.get("spark.sql.shuffle.partitions") == "4"
    assert spark.sparkContext.master == "local[2]"


def test_master_comes_from_the_conf_by_default(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("SPARK_MASTER", raising=False)
    monkeypatch.delenv("PYSPARK_SUBMIT_ARGS", raising=False)
    monkeypatch.delenv("PYSPARK_GATEWAY_PORT", raising=False)
    assert _master({"spark.master": "local[3]"}) == "local[3]"
    assert _master({}) == "local[*]"


def test_spark_submit_wins_over_the_conf(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("SPARK_MASTER", raising=False)
    monkeypatch.delenv("PYSPARK_GATEWAY_PORT", raising=False)
    monkeypatch.setenv("PYSPARK_SUBMIT_ARGS", "--master yarn pyspark-shell")
    assert _master({"spark.master": "local[*]"}) is None
    monkeypatch.delenv("PYSPARK_SUBMIT_ARGS")
    monkeypatch.setenv("PYSPARK_GATEWAY_PORT", "40123")  # what spark-submit hands the driver
    assert _master({"spark.master": "local[*]"}) is None
    monkeypatch.setenv("SPARK_MASTER", "spark://head:7077")
    assert _master({"spark.master": "local[*]"}) == "spark://head:7077"
