"""The precomputed TreeSHAP tables against LightGBM's own ``pred_contrib``.

Each case trains a real booster on a small random problem chosen to exercise one part of
LightGBM's split logic (missing values, zero as missing, categorical bitsets, repeated features on
a path, early stopping), then compares every SHAP value on rows that include the awkward inputs.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import lightgbm as lgb
import numpy as np
import pytest

from predictive_scoring.treeshap import TreeShap

TOLERANCE = 1e-9


def _data(seed: int, n: int = 600, n_features: int = 6) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    X = rng.normal(size=(n, n_features))
    logit = X[:, 0] - 0.8 * X[:, 1] + 0.5 * X[:, 0] * X[:, 2] + 0.3 * np.abs(X[:, 3])
    y = (rng.random(n) < 1 / (1 + np.exp(-logit))).astype(int)
    return X, y


def _train(X: np.ndarray, y: np.ndarray, **params: Any) -> lgb.Booster:
    base = {
        "objective": "binary",
        "num_leaves": 8,
        "max_depth": 5,
        "min_data_in_leaf": 5,
        "learning_rate": 0.2,
        "verbose": -1,
        "seed": 1,
        "deterministic": True,
        "num_threads": 1,
    }
    categorical = params.pop("categorical_feature", "auto")
    rounds = params.pop("rounds", 40)
    valid = params.pop("valid", None)
    train_set = lgb.Dataset(X, y, categorical_feature=categorical, free_raw_data=False)
    kwargs: dict[str, Any] = {}
    if valid is not None:
        kwargs["valid_sets"] = [lgb.Dataset(*valid, reference=train_set)]
        kwargs["callbacks"] = [lgb.early_stopping(3, verbose=False)]
        # Keep the trees past the best iteration, so that using them would show.
        kwargs["keep_training_booster"] = True
    return lgb.train({**base, **params}, train_set, num_boost_round=rounds, **kwargs)


def _assert_matches(booster: lgb.Booster, X: np.ndarray) -> TreeShap:
    shap = TreeShap.from_booster(booster)
    assert shap is not None
    want = booster.predict(X, pred_contrib=True)[:, :-1]
    got = shap.contributions(X)
    assert got.shape == want.shape
    np.testing.assert_allclose(got, want, rtol=0, atol=TOLERANCE)
    # The values explain something: not all zero, and the row sums follow the raw score.
    assert np.abs(got).sum() > 0
    # The same pass gives Booster.predict's probabilities bit for bit, one row or many.
    contrib, pred = shap.explain(X)
    np.testing.assert_array_equal(contrib, got)
    np.testing.assert_array_equal(pred, booster.predict(X))
    one = np.array([shap.explain(X[i : i + 1])[1][0] for i in range(0, len(X), 11)])
    np.testing.assert_array_equal(one, booster.predict(X)[::11])
    return shap


def test_numerical_splits_with_missing_values() -> None:
    X, y = _data(0)
    X[::7, 0] = np.nan
    X[::5, 1] = np.nan
    booster = _train(X, y)
    rows = np.vstack([X[:300], np.full((1, X.shape[1]), np.nan), np.zeros((1, X.shape[1]))])
    _assert_matches(booster, rows)


def test_zero_as_missing_and_missing_disabled() -> None:
    X, y = _data(1)
    X[::4, 0] = 0.0
    X[::6, 2] = np.nan
    rows = np.vstack([X[:200], np.zeros((1, X.shape[1])), np.full((1, X.shape[1]), np.nan)])
    _assert_matches(_train(X, y, zero_as_missing=True), rows)
    _assert_matches(_train(X, y, use_missing=False), rows)


def test_categorical_splits_including_unseen_negative_and_missing_codes() -> None:
    X, y = _data(2)
    rng = np.random.default_rng(3)
    X[:, 4] = rng.integers(0, 40, size=X.shape[0]).astype(float)
    X[:, 5] = rng.integers(0, 5, size=X.shape[0]).astype(float)
    y = ((X[:, 4] % 3 == 0) ^ (rng.random(X.shape[0]) < 0.2)).astype(int)
    X[::9, 4] = np.nan
    booster = _train(X, y, categorical_feature=[4, 5], min_data_per_group=5, cat_smooth=1)
    odd = X[:40].copy()
    odd[:10, 4] = [-1, -0.5, 0.7, 39.9, 40, 1000, 1e12, np.nan, 63, 64]
    shap = _assert_matches(booster, np.vstack([X[:200], odd]))
    assert "==" in str(booster.dump_model())  # the model really has categorical splits
    assert shap.depth >= 1


def test_a_feature_split_twice_on_one_path() -> None:
    rng = np.random.default_rng(4)
    X = rng.normal(size=(800, 2))
    y = ((np.abs(X[:, 0]) < 0.5) ^ (X[:, 1] > 0)).astype(int)
    booster = _train(X, y, num_leaves=16, max_depth=6, rounds=20)
    _assert_matches(booster, X[:300])


def test_early_stopping_uses_the_best_iteration_like_predict() -> None:
    X, y = _data(5, n=1200)
    booster = _train(X[:800], y[:800], rounds=200, valid=(X[800:], y[800:]), learning_rate=0.5)
    assert 0 < booster.best_iteration < booster.num_trees()
    _assert_matches(booster, X[800:])


def test_batches_split_across_threads_equal_one_block() -> None:
    X, y = _data(6, n=3000)
    booster = _train(X, y)
    shap = _assert_matches(booster, X)
    one_by_one = np.vstack([shap.contributions(X[i : i + 1]) for i in range(0, 3000, 97)])
    np.testing.assert_array_equal(one_by_one, shap.contributions(X)[::97])


def test_unsupported_models_fall_back_to_none() -> None:
    X, y = _data(7)
    assert TreeShap.from_booster(_train(X, y), max_table_bytes=1) is None
    classes = (X[:, 0] > 0).astype(int) + (X[:, 1] > 0)
    multi = _train(X, classes, objective="multiclass", num_class=3)
    assert TreeShap.from_booster(multi) is None
    linear = _train(X, y, linear_tree=True)
    assert TreeShap.from_booster(linear) is None
    forest = _train(X, y, boosting="rf", bagging_fraction=0.5, bagging_freq=1)
    assert TreeShap.from_booster(forest) is None
    wide, wide_y = _data(10, n=2000, n_features=20)
    deep = _train(wide, wide_y, num_leaves=200, max_depth=-1, min_data_in_leaf=2, rounds=2)
    assert TreeShap.from_booster(deep) is None  # paths over more than 8 unique features


def test_input_with_the_wrong_width_is_refused() -> None:
    X, y = _data(8)
    shap = TreeShap.from_booster(_train(X, y))
    assert shap is not None
    with pytest.raises(ValueError, match="6 columns"):
        shap.contributions(X[:, :3])


def test_a_model_without_splits_explains_nothing() -> None:
    X, y = _data(9)
    booster = _train(np.zeros_like(X), y, rounds=3)
    shap = TreeShap.from_booster(booster)
    assert shap is not None and shap.depth == 0
    want = booster.predict(X, pred_contrib=True)[:, :-1]
    np.testing.assert_array_equal(shap.contributions(X), want)
    assert not want.any()
    # No splits: every tree is one leaf, and the prediction is still Booster.predict's.
    np.testing.assert_array_equal(shap.explain(X)[1], booster.predict(X))


def test_other_objectives_and_sigmoids_predict_like_the_booster() -> None:
    X, y = _data(11)
    booster = _train(X, y.astype(float) * 2.0 + X[:, 0], objective="regression")
    shap = TreeShap.from_booster(booster)
    assert shap is not None and shap.sigmoid == 0.0
    np.testing.assert_array_equal(shap.explain(X)[1], booster.predict(X))
    steep = _train(X, y, sigmoid=2.5)
    shap = _assert_matches(steep, X)
    assert shap.sigmoid == 2.5


@pytest.mark.slow
def test_kernels_compile_without_a_writable_cache(tmp_path: Path) -> None:
    """Where numba finds nowhere to write its cache, the kernels still compile and agree."""
    script = (
        "import numpy as np, lightgbm as lgb\n"
        "from predictive_scoring.treeshap import TreeShap\n"
        "from predictive_scoring.timestamps import read_seconds\n"
        "rng = np.random.default_rng(0)\n"
        "X = rng.normal(size=(300, 4)); y = (X[:, 0] > 0).astype(int)\n"
        "b = lgb.train({'objective': 'binary', 'verbose': -1, 'num_leaves': 4},"
        " lgb.Dataset(X, y), 5)\n"
        "got = TreeShap.from_booster(b).contributions(X)\n"
        "assert np.abs(got - b.predict(X, pred_contrib=True)[:, :-1]).max() < 1e-9\n"
        "assert read_seconds(['1970-01-02T00:00:00Z'] * 3)[0].tolist() == [86400.0] * 3\n"
        "print('ok')\n"
    )
    # A locator list that matches nothing here: numba refuses cache=True as on a read-only
    # install without a home directory.
    env = {**os.environ, "NUMBA_CACHE_LOCATOR_CLASSES": "IPythonCacheLocator"}
    done = subprocess.run(
        [sys.executable, "-c", script], env=env, capture_output=True, text=True, timeout=300
    )
    assert done.returncode == 0, done.stderr[-2000:]
    assert done.stdout.strip() == "ok"
