"""Calibration error, lift, headline metrics and single-feature AUCs."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest

from predictive_scoring.config import EvaluateParams
from predictive_scoring.errors import ConfigError, DataValidationError
from predictive_scoring.evaluate import (
    ceiling_auc,
    evaluate_predictions,
    expected_calibration_error,
    lift_at,
    single_feature_aucs,
)
from predictive_scoring.thresholds import Thresholds

P = np.array([0.9, 0.8, 0.7, 0.6, 0.5, 0.4, 0.3, 0.2, 0.1, 0.05])
Y = np.array([1, 1, 0, 1, 0, 1, 0, 0, 0, 0])


@pytest.fixture
def scored() -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(0)
    p = rng.beta(1, 8, size=2000)
    y = (rng.random(2000) < p).astype(int)
    return y, p


def test_ece_is_zero_when_each_bin_matches_its_rate() -> None:
    p = np.array([0.25] * 4 + [0.75] * 4)
    y = np.array([1, 0, 0, 0, 1, 1, 1, 0])
    assert expected_calibration_error(y, p) == pytest.approx(0.0)


def test_ece_on_a_hand_case() -> None:
    # bin 1: predicted 0.1, observed 0.5; bin 9 (p = 1.0 included): predicted 0.95, observed 1
    p = np.array([0.1, 0.1, 0.9, 1.0])
    y = np.array([1, 0, 1, 1])
    assert expected_calibration_error(y, p) == pytest.approx(0.5 * 0.4 + 0.5 * 0.05)
    assert expected_calibration_error(y, p, bins=2) == pytest.approx(0.5 * 0.4 + 0.5 * 0.05)


def test_lift_and_capture_on_a_hand_case() -> None:
    assert lift_at(Y, P, 0.2) == pytest.approx((2.5, 0.5))  # top 2 leads: both of 4 positives
    assert lift_at(Y, P, 0.4) == pytest.approx((1.875, 0.75))
    assert lift_at(Y, P, 1.0) == pytest.approx((1.0, 1.0))


def test_lift_splits_tied_scores_fairly() -> None:
    y = np.array([1, 1, 0, 0])
    assert lift_at(y, np.full(4, 0.5), 0.5) == pytest.approx((1.0, 0.5))


def test_lift_rejects_bad_fractions_and_single_class() -> None:
    with pytest.raises(ConfigError, match="lift_fractions"):
        lift_at(Y, P, 0.0)
    with pytest.raises(DataValidationError, match="single class"):
        lift_at(np.zeros(10), P, 0.1)


def test_evaluate_keys_and_ranges(scored: tuple[np.ndarray, np.ndarray]) -> None:
    y, p = scored
    t = Thresholds(mql=0.1, sql=0.3, base_rate=float(y.mean()))
    metrics = evaluate_predictions(y, p, thresholds=t, params=EvaluateParams())
    expected = {
        "roc_auc", "pr_auc", "log_loss", "brier", "ece", "base_rate", "n", "n_positive",
        "lift_top5", "capture_top5", "lift_top10", "capture_top10", "lift_top20",
        "capture_top20", "sql_precision", "sql_recall", "sql_volume", "mql_precision",
        "mql_recall", "mql_volume",
    }  # fmt: skip
    assert expected <= metrics.keys()
    assert all(type(v) is float for v in metrics.values())
    json.dumps(metrics)
    assert 0.6 < metrics["roc_auc"] < 0.9  # the beta-distributed scores are informative
    assert metrics["ece"] < 0.05  # and calibrated by construction
    assert metrics["n"] == 2000
    for key in ("pr_auc", "brier", "sql_precision", "mql_recall", "capture_top10"):
        assert 0.0 <= metrics[key] <= 1.0
    assert metrics["sql_volume"] <= metrics["mql_volume"]
    assert metrics["sql_recall"] <= metrics["mql_recall"]
    assert metrics["capture_top5"] <= metrics["capture_top10"] <= metrics["capture_top20"]
    assert metrics["lift_top5"] > 1.0


def test_evaluate_refuses_a_single_class() -> None:
    t = Thresholds(mql=0.1, sql=0.3, base_rate=0.0)
    with pytest.raises(DataValidationError, match="single class"):
        evaluate_predictions(np.zeros(10), P, thresholds=t, params=EvaluateParams())


def test_single_feature_aucs() -> None:
    rng = np.random.default_rng(1)
    y = np.tile([0, 1], 100)
    X = pd.DataFrame(
        {
            "leak": y * 10.0,
            "reversed": -y.astype(float),
            "noise": rng.normal(size=200),
            "filled_for_negatives": np.where(y == 0, 1.0, np.nan),
            "all_missing": np.full(200, np.nan),
            "source": np.where(y == 1, "demo", "web"),  # a string column, not declared
            "industry": pd.Series(np.where(y == 1, 3, 7)),  # declared categorical
        }
    )
    aucs = single_feature_aucs(X, y, categorical=["industry"])
    assert aucs["leak"] == aucs["reversed"] == aucs["filled_for_negatives"] == 1.0
    assert aucs["source"] == aucs["industry"] == 1.0
    assert aucs["all_missing"] == 0.5
    assert 0.5 <= aucs["noise"] < 0.65
    assert all(type(v) is float for v in aucs.values())


def test_ceiling_auc_is_the_auc_of_the_true_propensity() -> None:
    assert ceiling_auc(Y, P) == pytest.approx(21 / 24)  # 6 + 6 + 5 + 4 of 4 x 6 pairs
    assert ceiling_auc([0, 1], [-3.0, 2.0]) == 1.0  # any score scale, e.g. a latent logit
