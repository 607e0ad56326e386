"""Spark fixtures: one small local session for the whole run, and a tiny demo dataset."""

from __future__ import annotations

import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from predictive_scoring.config import DataParams, GenerateParams
from predictive_scoring.schema import RawData, load_raw
from predictive_scoring.synth import generate_demo


def _missing() -> str | None:
    """Why the Spark tests cannot run here, with the command that fixes it; None when they can."""
    try:
        import pyspark  # noqa: F401
    except ImportError:
        return (
            "the Spark tests need the spark extra: pip install -e '.[spark]' "
            "(bash scripts/setup.sh dev,spark installs it)"
        )
    if shutil.which("java") is None:
        return (
            "the Spark tests need Java 17+, and java is not on PATH: on Debian or Ubuntu "
            "sudo apt-get install -y default-jre-headless (bash scripts/setup.sh dev,spark does "
            "it as root), elsewhere any JDK 17 or 21 with java on PATH"
        )
    return None


MISSING = _missing()


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Skip this folder's tests with the reason (a skip raised while pytest loads a conftest
    would stop the whole run instead)."""
    if MISSING is None:
        return
    here = Path(__file__).parent
    for item in items:
        if here in item.path.parents:
            item.add_marker(pytest.mark.skip(reason=MISSING))


# Small and quiet: two cores, four shuffle partitions, no web UI.
SPARK_TEST_CONF = {
    "spark.master": "local[2]",
    "spark.sql.shuffle.partitions": "4",
    "spark.default.parallelism": "2",
    "spark.ui.enabled": "false",
    "spark.driver.memory": "1g",
}


@pytest.fixture(scope="session")
def spark_con() -> Iterator[Any]:
    """The Ibis PySpark backend on the shared local session (stopped at the end of the run)."""
    from predictive_scoring.spark import spark_connection, spark_session

    con = spark_connection(SPARK_TEST_CONF)
    yield con
    spark_session(SPARK_TEST_CONF).stop()


@pytest.fixture(scope="session")
def spark(spark_con: Any) -> Any:
    """The SparkSession behind ``spark_con`` (getOrCreate returns the same one)."""
    from predictive_scoring.spark import spark_session

    return spark_session(SPARK_TEST_CONF)


@pytest.fixture(scope="session")
def demo_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """300 demo leads with about 20 events each."""
    out = tmp_path_factory.mktemp("spark-demo") / "raw"
    generate_demo(out, GenerateParams(n_leads=300, events_per_lead=20))
    return out


@pytest.fixture(scope="session")
def demo_data(demo_dir: Path) -> DataParams:
    return DataParams(dir=str(demo_dir))


@pytest.fixture(scope="session")
def demo_raw(demo_dir: Path, demo_data: DataParams) -> RawData:
    return load_raw(demo_data, root=demo_dir)
