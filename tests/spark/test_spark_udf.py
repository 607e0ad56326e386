"""Batch scoring on Spark: the registered pyfunc as a Spark UDF scores like Scorer.score_batch."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest

from predictive_scoring.batch import connect_duckdb
from predictive_scoring.calibration import Calibrator
from predictive_scoring.config import DataParams, FeaturizeParams, TrainParams
from predictive_scoring.dataset import featurize_dataset
from predictive_scoring.ingress import raw_from_frames
from predictive_scoring.registry import log_bundle_model, pyfunc_input_frame
from predictive_scoring.schema import RawData
from predictive_scoring.scoring import FRAME_LIMITS, Scorer
from predictive_scoring.thresholds import Thresholds
from predictive_scoring.train import train_model

pytestmark = pytest.mark.spark

AS_OF = "2025-06-01T00:00:00Z"
N_LEADS = 120


@pytest.fixture(scope="module")
def scorer(demo_raw: RawData, demo_data: DataParams) -> Scorer:
    """A small model trained on the demo: 20 trees, no calibration, fixed cut-offs."""
    features = featurize_dataset(demo_raw, demo_data, FeaturizeParams(), con=connect_duckdb())
    params = TrainParams(n_estimators=20, early_stopping_rounds=5, min_child_samples=5)
    result = train_model(features.frames, features.definition, params.model_copy())
    return Scorer(
        definition=features.definition,
        levels=result.levels,
        booster=result.booster,
        calibrator=Calibrator(method="none"),
        thresholds=Thresholds(mql=0.2, sql=0.5, base_rate=0.1),
    )


@pytest.fixture(scope="module")
def model_uri(scorer: Scorer, tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """The scorer registered as lead-scoring@challenger in a SQLite MLflow store in tmp."""
    import mlflow

    root = tmp_path_factory.mktemp("mlflow")
    uri = f"sqlite:///{root / 'mlflow.db'}"
    mp = pytest.MonkeyPatch()
    mp.setenv("MLFLOW_TRACKING_URI", uri)
    mlflow.set_tracking_uri(uri)
    experiment = mlflow.create_experiment("spark-udf", artifact_location=str(root / "artifacts"))
    bundle = scorer.save(root / "bundle")
    with mlflow.start_run(experiment_id=experiment) as run:
        run_id = run.info.run_id
    version = log_bundle_model(
        bundle, run_id=run_id, model_name="lead-scoring", alias="challenger", root=root
    )
    assert version == "1"
    yield "models:/lead-scoring@challenger"
    mp.undo()


@pytest.fixture(scope="module")
def model_input(demo_raw: RawData) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Pyfunc input rows (events as JSON) for the first leads, and their events as a table."""
    # Leads that existed at AS_OF: scoring a lead before its creation is refused.
    leads = demo_raw.leads[demo_raw.leads["created_at"] < pd.Timestamp(AS_OF)].head(N_LEADS)
    assert len(leads) == N_LEADS and demo_raw.events is not None
    events = demo_raw.events[demo_raw.events["lead_id"].isin(leads["lead_id"])]
    events = events[["lead_id", "event_type", "ts"]].reset_index(drop=True)
    return pyfunc_input_frame(leads, events, as_of=AS_OF), events


@pytest.fixture(scope="module")
def expected(scorer: Scorer, model_input: tuple[pd.DataFrame, pd.DataFrame]) -> pd.DataFrame:
    """Scorer.score_batch on the same leads, events and as_of: the numbers Spark must give."""
    frame, events = model_input
    admitted = scorer.admit(
        raw_from_frames(frame.drop(columns=["events"]), events), limits=FRAME_LIMITS
    )
    ids = admitted.lead_ids
    results = scorer.score_admitted(admitted, n_reasons=0)
    want = pd.DataFrame(
        {
            "probability": [r.probability for r in results],
            "stage": [r.stage for r in results],
        },
        index=pd.Index(ids, name="lead_id"),
    )
    assert np.ptp(want["probability"]) > 0.01, "the tiny model should tell leads apart"
    return want


def _assert_scores(got: pd.DataFrame, want: pd.DataFrame) -> None:
    got = got.set_index("lead_id").loc[want.index]
    np.testing.assert_allclose(
        got["probability"].to_numpy(), want["probability"].to_numpy(), rtol=0, atol=1e-9
    )
    assert got["stage"].tolist() == want["stage"].tolist()
    assert got["score"].between(1, 99).all()


def test_spark_udf_scores_pandas_built_input_like_the_scorer(
    spark: Any,
    model_uri: str,
    model_input: tuple[pd.DataFrame, pd.DataFrame],
    expected: pd.DataFrame,
) -> None:
    from predictive_scoring.spark import score_spark_frame, to_spark_frame

    frame, _ = model_input
    scored = score_spark_frame(spark, to_spark_frame(spark, frame), model_uri)
    got = scored.toPandas()
    assert len(got) == N_LEADS
    assert set(got["model_version"]) == {"1"}  # the registry version the pyfunc was loaded as
    _assert_scores(got, expected)


def test_spark_built_input_from_parquet_scores_the_same(
    spark: Any, model_uri: str, demo_dir: Path, expected: pd.DataFrame
) -> None:
    """The cluster recipe: leads and events read by Spark, events grouped to JSON in Spark."""
    from pyspark.sql import functions as F

    from predictive_scoring.spark import pyfunc_input_spark, score_spark_frame

    ids = expected.index.tolist()
    leads = spark.read.parquet(str(demo_dir / "leads.parquet"))
    leads = leads.filter(F.col("lead_id").isin(ids))
    events = spark.read.parquet(str(demo_dir / "events.parquet"))
    frame = pyfunc_input_spark(leads, events, as_of=AS_OF)
    got = score_spark_frame(spark, frame, model_uri, keep=("lead_id", "events")).toPandas()
    assert len(got) == N_LEADS
    assert (got["events"] != "[]").sum() > N_LEADS // 2
    _assert_scores(got.drop(columns=["events"]), expected)
