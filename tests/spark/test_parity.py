"""The engine choice changes no number: DuckDB and Spark give the same snapshots and features."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest

from predictive_scoring.batch import connect_duckdb
from predictive_scoring.config import DataParams, FeaturizeParams
from predictive_scoring.dataset import FeatureSet, featurize_dataset, featurize_files
from predictive_scoring.schema import RawData

pytestmark = pytest.mark.spark

TOLERANCE = 1e-9


def assert_same_features(expected: FeatureSet, actual: FeatureSet) -> None:
    """Same splits, rows, columns and values (nulls in the same cells), floats within 1e-9."""
    assert actual.definition == expected.definition
    assert actual.summary == expected.summary
    for split, want in expected.frames.items():
        got = actual.frames[split]
        assert list(got.columns) == list(want.columns), split
        assert len(got) == len(want) > 0, split
        for col in want.columns:
            w, g = want[col], got[col]
            assert g.isna().tolist() == w.isna().tolist(), f"{split}.{col}: nulls differ"
            if pd.api.types.is_numeric_dtype(w.dtype) and not pd.api.types.is_bool_dtype(w):
                wv = w.to_numpy(dtype=np.float64, na_value=np.nan)
                gv = g.to_numpy(dtype=np.float64, na_value=np.nan)
                np.testing.assert_allclose(
                    gv, wv, rtol=0, atol=TOLERANCE, equal_nan=True, err_msg=f"{split}.{col}"
                )
            else:
                assert g.astype(str).tolist() == w.astype(str).tolist(), f"{split}.{col}"


@pytest.fixture(scope="module")
def duckdb_features(demo_raw: RawData, demo_data: DataParams) -> FeatureSet:
    return featurize_dataset(demo_raw, demo_data, FeaturizeParams(), con=connect_duckdb())


def test_the_demo_has_events_attributes_and_both_classes(duckdb_features: FeatureSet) -> None:
    d = duckdb_features.definition
    assert d.has_events and len(d.event_types) >= 3 and d.categorical_features
    train = duckdb_features.frames["train"]
    assert 0 < train["label"].mean() < 1
    assert any(train[d.recency_name(t)].isna().any() for t in d.event_types)


def test_events_read_from_parquet_by_duckdb_give_the_same_features(
    duckdb_features: FeatureSet, demo_dir: Path, demo_data: DataParams
) -> None:
    """The out-of-core path (events never in pandas) matches schema.load_raw's in-memory path."""
    from_files = featurize_files(demo_data, FeaturizeParams(), root=demo_dir)
    assert_same_features(duckdb_features, from_files)


def test_spark_gives_the_duckdb_features(
    duckdb_features: FeatureSet, demo_raw: RawData, demo_data: DataParams, spark_con: Any
) -> None:
    spark_features = featurize_dataset(demo_raw, demo_data, FeaturizeParams(), con=spark_con)
    assert_same_features(duckdb_features, spark_features)


def test_events_read_from_parquet_by_spark_give_the_same_features(
    duckdb_features: FeatureSet, demo_dir: Path, demo_data: DataParams, spark_con: Any
) -> None:
    from_files = featurize_files(demo_data, FeaturizeParams(), root=demo_dir, con=spark_con)
    assert_same_features(duckdb_features, from_files)
