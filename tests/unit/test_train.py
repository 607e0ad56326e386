"""Training, calibration and the bundle round trip on a small synthetic frame."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from predictive_scoring.calibration import Calibrator, fit_calibrator
from predictive_scoring.config import TrainParams
from predictive_scoring.errors import BundleError, FeatureError
from predictive_scoring.features import FeatureDefinition, build_definition
from predictive_scoring.scoring import LeadInput, Scorer, probability_to_score
from predictive_scoring.thresholds import Thresholds
from predictive_scoring.train import category_levels, encode_frame, train_model


def attribute_definition(attribute_types: dict[str, str]) -> FeatureDefinition:
    """A definition of attributes only (a flat export)."""
    return build_definition(
        event_types=[],
        attribute_types=attribute_types,  # type: ignore[arg-type]
        windows_days=[7],
        half_life_days=7,
        active_days_window=30,
        job_title_column=None,
        email_column=None,
        employees_column=None,
        has_events=False,
        has_created_at=False,
    )


def frames(seed: int = 0) -> tuple[dict[str, pd.DataFrame], object]:
    d = attribute_definition({"x": "numeric", "tier": "categorical"})
    rng = np.random.default_rng(seed)
    out = {}
    for split, n in (("train", 3000), ("valid", 1500), ("test", 1500)):
        x = rng.normal(size=n)
        tier = rng.choice(["gold", "silver", "bronze"], size=n)
        logit = 1.5 * x + np.where(tier == "gold", 1.0, -0.5) - 1.5
        y = (rng.random(n) < 1 / (1 + np.exp(-logit))).astype(int)
        out[split] = pd.DataFrame({"x": x, "tier": tier, "label": y})
    return out, d


def test_training_is_deterministic_calibrated_and_beats_chance() -> None:
    data, d = frames()
    params = TrainParams(n_estimators=300, early_stopping_rounds=20, num_threads=1)
    a = train_model(data, d, params, progress=True)  # type: ignore[arg-type]
    b = train_model(data, d, params)  # type: ignore[arg-type]
    np.testing.assert_array_equal(a.calibrated["test"], b.calibrated["test"])
    y, p = a.labels["test"], a.calibrated["test"]
    from sklearn.metrics import roc_auc_score

    assert roc_auc_score(y, p) > 0.75
    assert abs(p.mean() - y.mean()) < 0.03
    assert a.calibrator.method in {"isotonic", "platt"}
    assert set(a.calibrator.scores) == {"isotonic", "platt"}


def test_one_class_split_is_rejected_with_the_split_named() -> None:
    data, d = frames()
    data["valid"] = data["valid"].assign(label=0)
    with pytest.raises(FeatureError, match="'valid' split has only one class"):
        train_model(data, d, TrainParams(n_estimators=5))  # type: ignore[arg-type]


def test_levels_and_encoding() -> None:
    data, d = frames()
    levels = category_levels(data["train"], d)  # type: ignore[arg-type]
    assert sorted(levels["tier"]) == ["bronze", "gold", "silver"]
    X = encode_frame(pd.DataFrame({"x": [1.0], "tier": ["platinum"]}), d, levels)  # type: ignore[arg-type]
    assert X[0, 0] == 1.0 and np.isnan(X[0, 1])


@pytest.mark.parametrize("method", ["isotonic", "platt", "none"])
def test_calibrator_round_trips(method: str) -> None:
    rng = np.random.default_rng(1)
    p = rng.random(500)
    y = (rng.random(500) < p**2).astype(int)
    cal = fit_calibrator(p, y, method=method, seed=0)  # type: ignore[arg-type]
    again = Calibrator.from_dict(cal.to_dict())
    np.testing.assert_array_equal(cal.transform(p), again.transform(p))
    assert ((cal.transform(p) > 0) & (cal.transform(p) < 1)).all()


def test_calibrator_clips_as_np_clip() -> None:
    from predictive_scoring.calibration import _EPS, _clip

    p = np.array([np.nan, -1.0, 0.0, _EPS / 2, _EPS, 0.5, 1 - _EPS, 1 - _EPS / 3, 1.0, 2.0])
    np.testing.assert_array_equal(_clip(p), np.clip(p, _EPS, 1 - _EPS))


def test_bundle_round_trip_and_tamper_check(tmp_path: Path) -> None:
    data, d = frames()
    res = train_model(data, d, TrainParams(n_estimators=50))  # type: ignore[arg-type]
    scorer = Scorer(
        definition=d,  # type: ignore[arg-type]
        levels=res.levels,
        booster=res.booster,
        calibrator=res.calibrator,
        thresholds=Thresholds(mql=0.2, sql=0.5, base_rate=0.2),
        metadata={"version": "7"},
    )
    path = scorer.save(tmp_path / "bundle")
    loaded = Scorer.load(path)
    leads = [LeadInput("a", {"x": 2.0, "tier": "gold"}), LeadInput("b", {"x": -2.0})]
    assert [r.probability for r in loaded.score(leads)] == [
        r.probability for r in scorer.score(leads)
    ]
    assert loaded.version == "7"
    (path / "model.txt").write_text((path / "model.txt").read_text() + "\n")
    with pytest.raises(BundleError, match="checksum"):
        Scorer.load(path)
    with pytest.raises(BundleError, match="not found"):
        Scorer.load(tmp_path / "missing")


def test_score_is_between_1_and_99() -> None:
    assert probability_to_score(np.array([0.0, 0.004, 0.5, 0.996, 1.0])).tolist() == [
        1,
        1,
        50,
        99,
        99,
    ]


def test_crm_headers_with_punctuation_train() -> None:
    data, _ = frames()
    d = attribute_definition({"Score [web]": "numeric", "Tier: {A,B}": "categorical"})
    renamed = {
        s: f.rename(columns={"x": "Score [web]", "tier": "Tier: {A,B}"}) for s, f in data.items()
    }
    res = train_model(renamed, d, TrainParams(n_estimators=20))
    assert res.importance()["feature"].tolist()[0] in {"Score [web]", "Tier: {A,B}"}
