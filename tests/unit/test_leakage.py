"""Leakage checks: post-outcome columns are flagged, honest ones are not."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from predictive_scoring.config import DataParams
from predictive_scoring.errors import LeakageError
from predictive_scoring.leakage import (
    LeakageFlag,
    detect_leakage,
    ever_reached,
    raise_if_strict,
    rank_auc,
    reached_at,
)
from predictive_scoring.schema import load_raw

REAL_DATA = Path(__file__).resolve().parents[2].parent / "shared" / "data"
OLIST_COLUMNS = [
    "business_segment",
    "lead_type",
    "lead_behaviour_profile",
    "has_company",
    "average_stock",
    "business_type",
    "declared_product_catalog_size",
    "declared_monthly_revenue",
]


@pytest.fixture
def olist_like() -> tuple[pd.DataFrame, pd.Series, pd.Series]:
    """MQLs with closed-deal columns joined on: filled only for won leads, as in Olist."""
    rng = np.random.default_rng(7)
    n, n_won = 1000, 100
    won = np.zeros(n, dtype="int8")
    won[rng.choice(n, n_won, replace=False)] = 1
    created = pd.Timestamp("2018-01-01", tz="UTC") + pd.to_timedelta(
        rng.integers(0, 300, n), unit="D"
    )
    won_at = pd.Series(created + pd.to_timedelta(rng.integers(1, 60, n), unit="D")).where(won == 1)
    leads = pd.DataFrame(
        {
            "lead_id": [f"m{i}" for i in range(n)],
            "created_at": created,
            "origin": rng.choice(["organic", "paid", "social", "email"], n),
            "landing_page_id": rng.choice([f"p{i}" for i in range(60)], n),
            "page_views": rng.poisson(3, n).astype("float64"),
        }
    )

    def only_won(values: np.ndarray, fill: float = 1.0) -> pd.Series:
        keep = (won == 1) & (rng.random(n) < fill)
        return pd.Series(values).where(keep)

    leads["business_segment"] = only_won(rng.choice(["pet", "car", "home"], n))
    leads["lead_type"] = only_won(rng.choice(["online", "industry"], n), 0.99)
    leads["lead_behaviour_profile"] = only_won(rng.choice(["cat", "eagle", "wolf"], n), 0.8)
    leads["has_company"] = only_won(rng.choice(["True", "False"], n), 0.15)
    leads["average_stock"] = only_won(rng.choice(["5-20", "200+"], n), 0.15)
    leads["business_type"] = only_won(rng.choice(["reseller", "manufacturer"], n), 0.99)
    leads["declared_product_catalog_size"] = only_won(rng.integers(1, 500, n) * 1.0, 0.15)
    leads["declared_monthly_revenue"] = only_won(np.zeros(n))
    leads["won_date"] = won_at
    return leads, pd.Series(won, name="label"), won_at


def _types(leads: pd.DataFrame) -> dict[str, str]:
    numeric = {"page_views", "declared_product_catalog_size", "declared_monthly_revenue"}
    skip = {"lead_id", "created_at", "won_date"}
    return {c: ("numeric" if c in numeric else "categorical") for c in leads if c not in skip}


def test_olist_closed_deal_columns_are_flagged_and_honest_ones_are_not(olist_like):
    leads, label, won_at = olist_like
    flags = detect_leakage(
        leads,
        label,
        _types(leads),
        DataParams(),
        outcome_time=won_at,
        datetime_columns=["won_date"],
    )
    flagged = {f.column for f in flags}
    assert set(OLIST_COLUMNS) <= flagged
    assert {"origin", "landing_page_id", "page_views"}.isdisjoint(flagged)
    reasons = {(f.column, f.reason) for f in flags}
    assert ("won_date", "timestamp_after_outcome") in reasons
    assert ("declared_monthly_revenue", "separates_classes") in reasons
    assert ("has_company", "missing_by_label") in reasons  # rare, but filled only when won


def test_value_that_separates_classes_is_flagged_by_auc():
    rng = np.random.default_rng(0)
    y = pd.Series(rng.integers(0, 2, 400))
    leads = pd.DataFrame(
        {
            "lead_quality": np.where(y == 1, "hot", "cold"),  # filled in by sales after the call
            "score_after_call": y * 10 + rng.normal(0, 1, 400),
            "noise": rng.normal(0, 1, 400),
            "near_unique": [f"x{i}" for i in range(400)],  # memorising it must not count
        }
    )
    types = {
        "lead_quality": "categorical",
        "score_after_call": "numeric",
        "noise": "numeric",
        "near_unique": "categorical",
    }
    flags = detect_leakage(leads, y, types, DataParams())
    assert {(f.column, f.reason) for f in flags} == {
        ("lead_quality", "separates_classes"),
        ("score_after_call", "separates_classes"),
    }
    assert all(f.statistic >= 0.9 for f in flags)


def test_missing_gap_threshold_is_respected():
    y = pd.Series([1] * 50 + [0] * 50)
    col = pd.Series([1.0] * 40 + [None] * 10 + [1.0] * 15 + [None] * 35)  # 80% vs 30% filled
    leads = pd.DataFrame({"c": col})
    flags = detect_leakage(leads, y, {"c": "numeric"}, DataParams(leakage_missing_gap=0.5))
    assert [f.reason for f in flags] == ["missing_by_label"]
    assert flags[0].statistic == pytest.approx(0.5)
    assert detect_leakage(leads, y, {"c": "numeric"}, DataParams(leakage_missing_gap=0.6)) == []


def test_too_few_of_a_class_means_no_verdict():
    leads = pd.DataFrame({"c": ["a", "b", "c", "d"]})
    assert detect_leakage(leads, pd.Series([1, 0, 0, 0]), {"c": "categorical"}, DataParams()) == []


def test_rank_auc_matches_a_known_value():
    assert rank_auc(np.array([0.1, 0.4, 0.35, 0.8]), np.array([0, 0, 1, 1])) == 0.75
    assert rank_auc(np.array([1.0, 1.0]), np.array([1, 1])) == 0.5


def test_ever_reached_counts_later_stages():
    leads = pd.DataFrame({"lead_id": ["a", "b", "c", "d"]})
    ts = pd.to_datetime(["2024-01-01", "2024-02-01", "2024-01-05", "2024-01-09"], utc=True)
    outcomes = pd.DataFrame(
        {"lead_id": ["a", "a", "b", "c"], "stage": ["sql", "won", "lost", "opportunity"], "ts": ts}
    )
    assert ever_reached(outcomes, leads, "won").tolist() == [1, 0, 0, 0]
    assert ever_reached(outcomes, leads, "sql").tolist() == [1, 0, 1, 0]
    when = reached_at(outcomes, leads, "sql")
    assert when.iloc[0] == ts[0] and when.iloc[2] == ts[3] and when.isna().tolist()[1]


def test_raise_if_strict_names_column_and_fix():
    flag = LeakageFlag("won_date", "timestamp_after_outcome", "after the outcome", 1.0)
    raise_if_strict([flag], DataParams())  # not strict: no error
    with pytest.raises(LeakageError) as info:
        raise_if_strict([flag], DataParams(strict=True))
    message = info.value.problems[0]
    assert "'won_date'" in message and "exclude_columns" in message


@pytest.mark.realdata
def test_real_olist_closed_deals_leak(tmp_path):
    folder = REAL_DATA / "olist_marketing_funnel"
    if not folder.exists():
        pytest.skip(f"real data not found at {folder} (place ../shared/data beside the repo)")
    mqls = pd.read_csv(folder / "olist_marketing_qualified_leads_dataset.csv", dtype=str)
    deals = pd.read_csv(folder / "olist_closed_deals_dataset.csv", dtype=str)
    mqls.merge(deals, on="mql_id", how="left").to_csv(tmp_path / "leads.csv", index=False)
    deals.assign(stage="won")[["mql_id", "won_date", "stage"]].to_csv(
        tmp_path / "outcomes.csv", index=False
    )
    params = DataParams(
        leads="leads.csv",
        events=None,
        outcomes="outcomes.csv",
        id_column="mql_id",
        created_column="first_contact_date",
        outcome_time_column="won_date",
    )
    raw = load_raw(params, root=tmp_path)
    label = ever_reached(raw.outcomes, raw.leads, "won")
    flags = detect_leakage(
        raw.leads,
        label,
        raw.attribute_types,
        params,
        outcome_time=reached_at(raw.outcomes, raw.leads, "won"),
        datetime_columns=raw.datetime_columns,
    )
    flagged = {f.column for f in flags}
    assert set(OLIST_COLUMNS) | {"won_date"} <= flagged
    assert {"origin", "landing_page_id"}.isdisjoint(flagged)
