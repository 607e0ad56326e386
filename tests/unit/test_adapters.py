"""The real-data adapters: Olist to the contract format, UCI Online Shoppers to a flat export."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import pytest

from predictive_scoring.adapters import (
    OLIST_CLOSED_DEAL_COLUMNS,
    OLIST_DEALS_FILE,
    OLIST_MQL_FILE,
    landing_page_history,
    olist_to_contract,
    uci_shoppers_to_flat,
)
from predictive_scoring.config import DataParams
from predictive_scoring.errors import DataValidationError
from predictive_scoring.schema import load_raw, validate

N_MQLS, N_WON = 40, 12


def _write_olist(folder: Path, *, n: int = N_MQLS, won: int = N_WON) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    days = pd.date_range("2018-01-01", periods=n, freq="D")
    mqls = pd.DataFrame(
        {
            "mql_id": [f"m{i:03d}" for i in range(n)],
            "first_contact_date": days.strftime("%Y-%m-%d"),
            "landing_page_id": ["pageA" if i % 3 else "pageB" for i in range(n)],
            "origin": ["organic_search" if i % 2 else "" for i in range(n)],
        }
    )
    mqls.to_csv(folder / OLIST_MQL_FILE, index=False)
    deals = pd.DataFrame({"mql_id": mqls["mql_id"][:won]})
    deals["seller_id"] = "s"
    deals["won_date"] = (days[:won] + pd.Timedelta(days=20)).strftime("%Y-%m-%d %H:%M:%S")
    for column in OLIST_CLOSED_DEAL_COLUMNS:
        if column != "won_date":
            deals[column] = [f"{column}-{i % 2}" for i in range(won)]
    deals["declared_monthly_revenue"] = [float(1000 * (i + 1)) for i in range(won)]
    deals.to_csv(folder / OLIST_DEALS_FILE, index=False)
    return folder


def _contract_params(folder: Path) -> DataParams:
    return DataParams(dir=str(folder), events=None, latent=None)


def test_olist_writes_leads_and_outcomes_without_events(tmp_path: Path) -> None:
    src = _write_olist(tmp_path / "src")
    summary = olist_to_contract(src, tmp_path / "out")
    leads = pd.read_parquet(tmp_path / "out" / "leads.parquet")
    outcomes = pd.read_parquet(tmp_path / "out" / "outcomes.parquet")
    assert list(leads.columns) == ["lead_id", "created_at", "origin", "landing_page_id"]
    assert not (tmp_path / "out" / "events.parquet").exists()
    assert (outcomes["stage"] == "won").sum() == N_WON
    assert (outcomes["stage"] == "mql").sum() == N_MQLS
    assert summary["n_won"] == N_WON and summary["n_leads"] == N_MQLS
    raw = load_raw(_contract_params(tmp_path / "out"), root=tmp_path / "out")
    assert raw.events is None
    assert set(raw.attribute_types) == {"origin", "landing_page_id"}


def test_olist_closed_deal_columns_are_flagged_as_leaking(tmp_path: Path) -> None:
    src = _write_olist(tmp_path / "src")
    olist_to_contract(src, tmp_path / "out", join_closed_deal_columns=True)
    leads = pd.read_parquet(tmp_path / "out" / "leads.parquet")
    assert set(OLIST_CLOSED_DEAL_COLUMNS) <= set(leads.columns)
    assert leads["won_date"].notna().sum() == N_WON
    report = validate(_contract_params(tmp_path / "out"), root=tmp_path / "out")
    flagged = {flag.column for flag in report.leakage}
    assert set(OLIST_CLOSED_DEAL_COLUMNS) <= flagged
    assert not flagged & {"origin", "landing_page_id"}


def test_olist_derived_attributes_only_count_earlier_days(tmp_path: Path) -> None:
    src = _write_olist(tmp_path / "src")
    olist_to_contract(src, tmp_path / "out", derived_attributes=True)
    leads = pd.read_parquet(tmp_path / "out" / "leads.parquet")
    assert leads["first_contact_weekday"].iloc[0] == "mon"  # 2018-01-01 was a Monday
    page_b = leads[leads["landing_page_id"] == "pageB"]
    assert page_b["landing_page_prior_mqls"].tolist() == list(range(len(page_b)))


def test_landing_page_history_ignores_same_day_leads() -> None:
    created = pd.Series(pd.to_datetime(["2018-01-01", "2018-01-01", "2018-01-03"], utc=True))
    history = landing_page_history(created, pd.Series(["a", "a", "a"]))
    assert history["landing_page_prior_mqls"].tolist() == [0.0, 0.0, 2.0]
    assert history["landing_page_age_days"].tolist() == [0.0, 0.0, 2.0]


def test_olist_deal_for_unknown_mql_is_refused(tmp_path: Path) -> None:
    src = _write_olist(tmp_path / "src")
    deals = pd.read_csv(src / OLIST_DEALS_FILE, dtype=str)
    deals.loc[0, "mql_id"] = "nobody"
    deals.to_csv(src / OLIST_DEALS_FILE, index=False)
    with pytest.raises(DataValidationError, match=r"not in .*olist_marketing_qualified"):
        olist_to_contract(src, tmp_path / "out")


def test_olist_missing_column_is_named(tmp_path: Path) -> None:
    src = _write_olist(tmp_path / "src")
    mqls = pd.read_csv(src / OLIST_MQL_FILE, dtype=str).drop(columns=["origin"])
    mqls.to_csv(src / OLIST_MQL_FILE, index=False)
    with pytest.raises(DataValidationError, match="origin"):
        olist_to_contract(src, tmp_path / "out")


def test_uci_shoppers_becomes_a_flat_export(tmp_path: Path) -> None:
    csv = tmp_path / "online_shoppers_intention.csv"
    pd.DataFrame(
        {
            "PageValues": ["0", "12.5", "0", "3"] * 5,
            "Month": ["Feb", "Mar", "May", "Nov"] * 5,
            "VisitorType": ["Returning_Visitor", "New_Visitor"] * 10,
            "Browser": ["1", "2", "1", "3"] * 5,
            "Revenue": ["FALSE", "TRUE", "FALSE", "FALSE"] * 5,
        }
    ).to_csv(csv, index=False)
    summary = uci_shoppers_to_flat(tmp_path, tmp_path / "out")
    assert summary["label_rate"] == pytest.approx(0.25)
    params = DataParams(
        format="flat",
        dir=str(tmp_path / "out"),
        id_column="session_id",
        created_column=None,
        label_column="Revenue",
        categorical=["Browser"],
        events=None,
        outcomes=None,
    )
    raw = load_raw(params, root=tmp_path / "out")
    assert raw.leads["label"].sum() == 5
    assert raw.attribute_types["Browser"] == "categorical"
    assert raw.attribute_types["PageValues"] == "numeric"
