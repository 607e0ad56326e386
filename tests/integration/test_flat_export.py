"""A flat CRM export with real-world headers goes through validate, featurize and train."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from predictive_scoring.config import DataParams, FeaturizeParams, TrainParams
from predictive_scoring.dataset import featurize_dataset
from predictive_scoring.errors import LeakageError
from predictive_scoring.leakage import raise_if_strict
from predictive_scoring.schema import load_raw, validate
from predictive_scoring.train import train_model

pytestmark = pytest.mark.integration


@pytest.fixture
def export_dir(tmp_path: Path) -> Path:
    rng = np.random.default_rng(3)
    n = 3000
    time_spent = rng.gamma(2, 300, n)
    occupation = rng.choice(["Unemployed", "Working Professional", "Student", "Select", None], n)
    logit = -1.5 + 0.002 * time_spent + 1.0 * (occupation == "Working Professional")
    y = (rng.random(n) < 1 / (1 + np.exp(-logit))).astype(int)
    frame = pd.DataFrame(
        {
            "Prospect ID": [f"7927b2df-{i:04d}-4b7e-{i * 7:06d}" for i in range(n)],
            "Lead Number": np.arange(660000, 660000 + n),
            "Lead Source [web]": rng.choice(["Google", "Direct Traffic", "google", "Referral"], n),
            "Converted": np.where(y == 1, "Yes", "No"),
            "Total Time Spent on Website": time_spent.round(),
            "What is your current occupation": occupation,
            "Tags": np.where(y == 1, "Will revert after reading the email", "Ringing"),
            "Lead Quality": np.where(y == 1, "High in Relevance", None),
        }
    )
    frame.to_csv(tmp_path / "Leads.csv", index=False)
    return tmp_path


def params(**overrides: object) -> DataParams:
    base: dict[str, object] = {
        "format": "flat",
        "leads": "Leads.csv",
        "events": None,
        "outcomes": None,
        "latent": None,
        "id_column": "Prospect ID",
        "created_column": None,
        "label_column": "Converted",
    }
    return DataParams(**(base | overrides))  # type: ignore[arg-type]


def test_leaky_columns_are_flagged_by_name_and_strict_fails(export_dir: Path) -> None:
    report = validate(params(), root=export_dir)
    flagged = {flag.column for flag in report.leakage}
    assert {"Tags", "Lead Quality"} <= flagged
    assert "Total Time Spent on Website" not in flagged
    assert "Lead Number" not in report.attribute_types  # id-like, dropped with a warning
    assert any("Lead Number" in w for w in report.warnings)
    with pytest.raises(LeakageError, match="Tags"):
        raise_if_strict(report.leakage, params(strict=True))


def test_flat_export_trains_with_the_leaks_excluded(export_dir: Path) -> None:
    data = params(exclude_columns=["Tags", "Lead Quality"])
    assert validate(data, root=export_dir).leakage == []
    raw = load_raw(data, root=export_dir)
    assert raw.attribute_types["What is your current occupation"] == "categorical"
    assert raw.leads["What is your current occupation"].isin(["Select"]).sum() == 0
    features = featurize_dataset(raw, data, FeaturizeParams())
    assert features.summary["split"] == "stratified_random"
    result = train_model(features.frames, features.definition, TrainParams(n_estimators=200))
    from sklearn.metrics import roc_auc_score

    assert roc_auc_score(result.labels["test"], result.calibrated["test"]) > 0.65
