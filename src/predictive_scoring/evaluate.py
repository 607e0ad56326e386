"""Test-set metrics: ranking, calibration, lift, and what the MQL/SQL cut-offs deliver."""

from __future__ import annotations

import logging
from collections.abc import Sequence

import numpy as np
import numpy.typing as npt
import pandas as pd
from sklearn.metrics import (
    average_precision_score,
    brier_score_loss,
    log_loss,
    roc_auc_score,
)

from predictive_scoring.config import EvaluateParams
from predictive_scoring.errors import ConfigError, DataValidationError
from predictive_scoring.thresholds import Thresholds, check_labels_and_scores, cutoff_curve

__all__ = [
    "calibration_bins",
    "ceiling_auc",
    "evaluate_predictions",
    "expected_calibration_error",
    "gains_curve",
    "lift_at",
    "single_feature_aucs",
]

logger = logging.getLogger(__name__)

FloatArray = npt.NDArray[np.float64]


def _require_both_classes(y: FloatArray, context: str) -> None:
    n_pos = int(y.sum())
    if n_pos == 0 or n_pos == y.size:
        raise DataValidationError(
            [
                f"{context}: labels hold a single class ({n_pos} positives out of {y.size}); "
                "ranking metrics need both; use a longer period for the split"
            ]
        )


def calibration_bins(
    y: npt.ArrayLike, p: npt.ArrayLike, *, bins: int = 10
) -> tuple[FloatArray, FloatArray, FloatArray]:
    """Mean predicted, observed rate and count in each non-empty equal-width bin of [0, 1]."""
    if bins < 1:
        raise ConfigError(f"evaluate.ece_bins: need at least one bin, got {bins}")
    y_arr, p_arr = check_labels_and_scores(y, p, context="calibration")
    idx = np.minimum((p_arr * bins).astype(np.int64), bins - 1)
    counts = np.bincount(idx, minlength=bins).astype(np.float64)
    sum_p = np.bincount(idx, weights=p_arr, minlength=bins)
    sum_y = np.bincount(idx, weights=y_arr, minlength=bins)
    keep = counts > 0
    return sum_p[keep] / counts[keep], sum_y[keep] / counts[keep], counts[keep]


def expected_calibration_error(y: npt.ArrayLike, p: npt.ArrayLike, *, bins: int = 10) -> float:
    """Count-weighted mean gap between predicted and observed rates over equal-width bins."""
    predicted, observed, counts = calibration_bins(y, p, bins=bins)
    return float(np.sum(counts * np.abs(predicted - observed)) / counts.sum())


def gains_curve(y: npt.ArrayLike, p: npt.ArrayLike) -> tuple[FloatArray, FloatArray]:
    """Cumulative gains: share of leads taken (by falling score) vs share of positives captured.

    Points sit at distinct scores; linear interpolation between them is the expected capture
    when ties are broken at random.
    """
    y_arr, p_arr = check_labels_and_scores(y, p, context="gains")
    _require_both_classes(y_arr, "gains")
    curve = cutoff_curve(y_arr, p_arr)
    fraction = np.r_[0.0, curve.selected / curve.n]
    capture = np.r_[0.0, curve.true_positives / curve.n_positive]
    return fraction, capture


def lift_at(y: npt.ArrayLike, p: npt.ArrayLike, fraction: float) -> tuple[float, float]:
    """(lift, capture) in the top ``fraction`` of leads by score; ties are split fairly."""
    if not 0 < fraction <= 1:
        raise ConfigError(f"evaluate.lift_fractions: each must be in (0, 1], got {fraction}")
    fractions, captures = gains_curve(y, p)
    capture = float(np.interp(fraction, fractions, captures))
    return capture / fraction, capture


def _fraction_key(fraction: float) -> str:
    return f"top{fraction * 100:g}".replace(".", "_")


def _at_or_above(y: FloatArray, p: FloatArray, cutoff: float) -> tuple[float, float, float]:
    selected = p >= cutoff
    n_sel = int(selected.sum())
    tp = float(y[selected].sum())
    precision = tp / n_sel if n_sel else 0.0
    return precision, tp / float(y.sum()), n_sel / y.size


def evaluate_predictions(
    y: npt.ArrayLike,
    p: npt.ArrayLike,
    *,
    thresholds: Thresholds,
    params: EvaluateParams,
) -> dict[str, float]:
    """All headline metrics for one split as plain floats (DVC metrics, MLflow, the promote gate).

    ``sql_*``/``mql_*`` are measured at or above each cut-off, so MQL includes the SQL leads;
    a cut-off that selects nobody reports precision 0.
    """
    y_arr, p_arr = check_labels_and_scores(y, p, context="evaluate")
    _require_both_classes(y_arr, "evaluate")
    metrics: dict[str, float] = {
        "roc_auc": float(roc_auc_score(y_arr, p_arr)),
        "pr_auc": float(average_precision_score(y_arr, p_arr)),
        "log_loss": float(log_loss(y_arr, np.clip(p_arr, 1e-15, 1 - 1e-15), labels=[0, 1])),
        "brier": float(brier_score_loss(y_arr, p_arr)),
        "ece": expected_calibration_error(y_arr, p_arr, bins=params.ece_bins),
        "base_rate": float(y_arr.mean()),
        "mean_probability": float(p_arr.mean()),
        "n": float(y_arr.size),
        "n_positive": float(y_arr.sum()),
    }
    for fraction in params.lift_fractions:
        lift, capture = lift_at(y_arr, p_arr, fraction)
        key = _fraction_key(fraction)
        metrics[f"lift_{key}"] = lift
        metrics[f"capture_{key}"] = capture
    for name, cutoff in (("sql", thresholds.sql), ("mql", thresholds.mql)):
        precision, recall, volume = _at_or_above(y_arr, p_arr, cutoff)
        metrics[f"{name}_precision"] = precision
        metrics[f"{name}_recall"] = recall
        metrics[f"{name}_volume"] = volume
    return metrics


def _out_of_fold_rates(series: pd.Series, y: FloatArray, *, folds: int = 5) -> FloatArray:
    """Each row's level scored by the smoothed target rate of that level in the other folds."""
    codes, _ = pd.factorize(series, use_na_sentinel=False)
    fold = np.random.default_rng(0).permutation(len(codes)) % folds
    prior = float(y.mean())
    score = np.empty(len(codes), dtype=np.float64)
    n_levels = int(codes.max()) + 1 if len(codes) else 0
    for k in range(folds):
        fit, held = fold != k, fold == k
        pos = np.bincount(codes[fit], weights=y[fit], minlength=n_levels)
        cnt = np.bincount(codes[fit], minlength=n_levels)
        rates = (pos + prior * 10.0) / (cnt + 10.0)
        score[held] = rates[codes[held]]
    return score


def single_feature_aucs(
    X: pd.DataFrame, y: npt.ArrayLike, *, categorical: Sequence[str]
) -> dict[str, float]:
    """AUC of each column on its own, folded to >= 0.5: shows whether one column gives it away.

    Numeric columns rank missing values lowest; categorical (and any non-numeric) columns score
    each level, missing included, by its target rate out of fold (5 folds), so a column with
    many levels is not rewarded for memorising the labels.
    """
    y_arr = np.asarray(y, dtype=np.float64).ravel()
    if y_arr.size != len(X):
        raise DataValidationError([f"single-feature AUCs: {len(X)} rows but {y_arr.size} labels"])
    if not np.isin(y_arr, (0.0, 1.0)).all():
        raise DataValidationError(["single-feature AUCs: labels must be 0 or 1"])
    _require_both_classes(y_arr, "single-feature AUCs")
    categorical_set = set(categorical)
    out: dict[str, float] = {}
    for col in X.columns:
        series = X[col]
        if col not in categorical_set and (
            pd.api.types.is_numeric_dtype(series) or pd.api.types.is_bool_dtype(series)
        ):
            values = series.to_numpy(dtype=np.float64, na_value=np.nan)
            finite = np.isfinite(values)
            if not finite.any():
                out[str(col)] = 0.5
                continue
            score = np.where(finite, values, values[finite].min() - 1.0)
        else:
            score = _out_of_fold_rates(series, y_arr)
        auc = float(roc_auc_score(y_arr, score))
        out[str(col)] = max(auc, 1.0 - auc)
    return out


def ceiling_auc(y: npt.ArrayLike, propensity: npt.ArrayLike) -> float:
    """AUC of the true (simulated) propensity: the best any model can expect on these labels."""
    y_arr = np.asarray(y, dtype=np.float64).ravel()
    score = np.asarray(propensity, dtype=np.float64).ravel()
    if y_arr.shape != score.shape or not np.isfinite(score).all():
        raise DataValidationError(
            [
                "ceiling AUC: need one finite propensity per label, "
                f"got {score.size} values for {y_arr.size} labels"
            ]
        )
    if not np.isin(y_arr, (0.0, 1.0)).all():
        raise DataValidationError(["ceiling AUC: labels must be 0 or 1"])
    _require_both_classes(y_arr, "ceiling AUC")
    return float(roc_auc_score(y_arr, score))
