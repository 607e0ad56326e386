"""LightGBM's fast single-row C API against ``Booster.predict``, also from many threads."""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor

import lightgbm as lgb
import numpy as np
import pytest

from predictive_scoring.rowpredict import RowPredictor


def _booster(*, early_stop: bool) -> tuple[lgb.Booster, np.ndarray]:
    rng = np.random.default_rng(0)
    X = rng.normal(size=(1200, 5))
    X[::6, 1] = np.nan
    X[:, 4] = rng.integers(0, 6, size=1200)
    y = (X[:, 0] + (X[:, 4] == 2) + rng.normal(size=1200) > 0.5).astype(int)
    params = {"objective": "binary", "num_leaves": 8, "verbose": -1, "learning_rate": 0.3}
    train = lgb.Dataset(X[:800], y[:800], categorical_feature=[4])
    kwargs = {}
    if early_stop:
        valid = lgb.Dataset(X[800:], y[800:], reference=train)
        kwargs = {
            "valid_sets": [valid],
            "callbacks": [lgb.early_stopping(2, verbose=False)],
            "keep_training_booster": True,
        }
    booster = lgb.train(params, train, num_boost_round=200, **kwargs)
    return booster, X


@pytest.mark.parametrize("early_stop", [False, True])
def test_equals_booster_predict(early_stop: bool) -> None:
    booster, X = _booster(early_stop=early_stop)
    if early_stop:
        assert 0 < booster.best_iteration < booster.num_trees()
    fast = RowPredictor.for_booster(booster)
    assert fast is not None
    got = np.array([fast.predict(np.ascontiguousarray(X[i])) for i in range(len(X))])
    np.testing.assert_array_equal(got, booster.predict(X))


def test_threads_each_get_their_own_predictor() -> None:
    booster, X = _booster(early_stop=False)
    fast = RowPredictor.for_booster(booster)
    assert fast is not None
    want = booster.predict(X)

    def run(offset: int) -> np.ndarray:
        rows = range(offset, len(X), 4)
        return np.array([fast.predict(np.ascontiguousarray(X[i])) for i in rows])

    with ThreadPoolExecutor(max_workers=4) as pool:
        parts = list(pool.map(run, range(4)))
    for offset, part in enumerate(parts):
        np.testing.assert_array_equal(part, want[offset::4])


def test_rows_of_the_wrong_shape_are_refused() -> None:
    booster, X = _booster(early_stop=False)
    fast = RowPredictor.for_booster(booster)
    assert fast is not None
    with pytest.raises(ValueError, match="5 values"):
        fast.predict(X[0, :3].copy())
    with pytest.raises(ValueError, match="float64"):
        fast.predict(X[0].astype(np.float32))
