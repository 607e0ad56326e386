"""The raw-data contract: every problem named with file and column, canonical output, types."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest

from predictive_scoring.canonical import parse_timestamps
from predictive_scoring.config import DataParams
from predictive_scoring.errors import DataValidationError
from predictive_scoring.infer import infer_attribute_types
from predictive_scoring.read import read_table
from predictive_scoring.schema import load_raw, validate

NOW = pd.Timestamp("2025-01-01", tz="UTC")
Tables = dict[str, pd.DataFrame]


def _leads(n: int = 6) -> pd.DataFrame:
    return pd.DataFrame(
        {
            "lead_id": [f"L{i}" for i in range(n)],
            "created_at": pd.date_range("2024-01-01", periods=n, freq="D"),
            "industry": ["saas", "retail", "saas", "bank", "retail", "saas"][:n],
            "employees": [10, 200, 35, 5000, 80, 12][:n],
            "email": [f"p{i}@acme{i}.com" for i in range(n)],
            "job_title": ["CTO", "Engineer", "VP Sales", "Analyst", "CEO", "Intern"][:n],
        }
    )


def _events() -> pd.DataFrame:
    return pd.DataFrame(
        {
            "lead_id": ["L0", "L0", "L1", "L3"],
            "ts": ["2024-01-02T10:00:00.750Z", "2024-01-05 08:00", "2024-01-03", "2024-02-01"],
            "event_type": ["web_visit", "demo_request", "email_open", "web_visit"],
        }
    )


def _outcomes() -> pd.DataFrame:
    return pd.DataFrame(
        {
            "lead_id": ["L0", "L0", "L3"],
            "stage": ["sql", "Won", "lost"],
            "ts": ["2024-01-10", "2024-02-10", "2024-03-01"],
            "amount": ["1000", "5000", ""],
        }
    )


@pytest.fixture
def write_tables(tmp_path: Path) -> Callable[..., DataParams]:
    """Write leads/events/outcomes (CSV or parquet) under tmp_path and return DataParams."""

    def write(tables: Tables, *, suffix: str = ".csv", **params: Any) -> DataParams:
        paths: dict[str, Any] = {"events": None, "outcomes": None}
        for name, frame in tables.items():
            path = tmp_path / f"{name}{suffix}"
            if suffix == ".csv":
                frame.to_csv(path, index=False)
            else:
                frame.to_parquet(path, index=False)
            paths[name] = path.name
        return DataParams(**{**paths, **params})

    return write


def _problems(params: DataParams, root: Path) -> list[str]:
    with pytest.raises(DataValidationError) as info:
        load_raw(params, root=root, now=NOW)
    return info.value.problems


def test_clean_contract_dataset_loads_with_canonical_dtypes(write_tables, tmp_path):
    params = write_tables({"leads": _leads(), "events": _events(), "outcomes": _outcomes()})
    raw = load_raw(params, root=tmp_path, now=NOW)
    assert raw.leads["lead_id"].tolist() == [f"L{i}" for i in range(6)]
    assert pd.api.types.is_string_dtype(raw.leads["lead_id"].dtype)
    assert str(raw.leads["created_at"].dtype) == "datetime64[us, UTC]"
    assert str(raw.events["ts"].dtype) == "datetime64[us, UTC]"
    assert str(raw.outcomes["ts"].dtype) == "datetime64[us, UTC]"
    # Truncated to whole seconds: the feature code works in integer epoch seconds.
    assert raw.events["ts"].iloc[0] == pd.Timestamp("2024-01-02T10:00:00", tz="UTC")
    assert (raw.events["ts"].dt.microsecond == 0).all()
    assert raw.outcomes["stage"].tolist() == ["sql", "won", "lost"]
    assert raw.outcomes["amount"].dtype == np.float64
    assert np.isnan(raw.outcomes["amount"].iloc[2])
    assert raw.attribute_types == {
        "industry": "categorical",
        "employees": "numeric",
        "job_title": "categorical",
    }
    assert raw.leads["employees"].dtype == np.float64
    assert "email" in raw.leads.columns  # kept for derived features, never a raw attribute
    assert raw.warnings == []


def test_parquet_with_naive_and_integer_ids_is_normalised(write_tables, tmp_path):
    leads = _leads().assign(lead_id=range(100, 106))
    events = _events().assign(lead_id=[100, 100, 101, 103])
    outcomes = _outcomes().assign(lead_id=[100, 100, 103], amount=[1.0, 2.0, None])
    params = write_tables(
        {"leads": leads, "events": events, "outcomes": outcomes}, suffix=".parquet"
    )
    raw = load_raw(params, root=tmp_path, now=NOW)
    assert raw.leads["lead_id"].tolist()[:2] == ["100", "101"]
    assert raw.events["lead_id"].tolist() == ["100", "100", "101", "103"]
    assert raw.leads["created_at"].iloc[0] == pd.Timestamp("2024-01-01", tz="UTC")


def test_every_problem_is_listed_at_once_with_file_and_column(write_tables, tmp_path):
    leads = _leads()
    leads.loc[1, "lead_id"] = "L0"  # duplicate id
    leads["created_at"] = leads["created_at"].astype(str)
    leads.loc[2, "created_at"] = "not a date"
    leads.loc[3, "created_at"] = "2030-01-01"  # future
    events = _events()
    events.loc[3, "lead_id"] = "GHOST"
    outcomes = _outcomes()
    outcomes.loc[1, "stage"] = "closed-won-ish"
    outcomes = outcomes.drop(columns=["ts"])
    params = write_tables({"leads": leads, "events": events, "outcomes": outcomes})
    problems = _problems(params, tmp_path)
    text = "\n".join(problems)
    assert len(problems) == 6, text
    dup = next(p for p in problems if "more than once" in p)
    assert "leads.csv" in dup and "'lead_id'" in dup and "'L0'" in dup
    unparseable = next(p for p in problems if "cannot be parsed" in p)
    assert "leads.csv" in unparseable and "'created_at'" in unparseable
    assert "data row 3 'not a date'" in unparseable
    future = next(p for p in problems if "future" in p)
    assert "'created_at'" in future and "data row 4" in future
    unknown = next(p for p in problems if "not in" in p)
    assert "events.csv" in unknown and "'GHOST'" in unknown
    stage = next(p for p in problems if "unknown values" in p)
    assert "outcomes.csv" in stage and "'stage'" in stage and "closed-won-ish" in stage
    missing = next(p for p in problems if "required column" in p)
    assert "outcomes.csv" in missing and "'ts'" in missing


def test_missing_file_and_empty_table_are_problems(write_tables, tmp_path):
    params = write_tables(
        {"leads": _leads(), "events": _events().iloc[:0]}, outcomes="nowhere.parquet"
    )
    problems = _problems(params, tmp_path)
    assert any("events.csv" in p and "empty" in p for p in problems)
    assert any("nowhere.parquet" in p and "not found" in p for p in problems)


def test_unreadable_file_is_a_problem(tmp_path):
    (tmp_path / "leads.parquet").write_bytes(b"this is not parquet")
    with pytest.raises(DataValidationError, match=r"leads\.parquet: cannot be read"):
        read_table(tmp_path / "leads.parquet")


def test_empty_required_values_and_unknown_leads_in_outcomes(write_tables, tmp_path):
    events = _events()
    events.loc[2, "event_type"] = "N/A"  # a configured missing marker
    outcomes = _outcomes()
    outcomes.loc[2, "lead_id"] = "NOPE"
    params = write_tables({"leads": _leads(), "events": events, "outcomes": outcomes})
    problems = _problems(params, tmp_path)
    assert any("events.csv" in p and "'event_type'" in p and "empty" in p for p in problems)
    assert any("outcomes.csv" in p and "'NOPE'" in p for p in problems)


def test_configured_column_names_appear_in_messages(write_tables, tmp_path):
    leads = _leads().rename(columns={"lead_id": "mql_id"}).drop(columns=["created_at"])
    params = write_tables(
        {"leads": leads, "outcomes": _outcomes().rename(columns={"lead_id": "mql_id"})},
        id_column="mql_id",
        created_column="first_contact_date",
    )
    problems = _problems(params, tmp_path)
    assert any("'first_contact_date' is missing" in p for p in problems), problems


def test_configured_column_clashing_with_another_is_a_problem_not_a_crash(write_tables, tmp_path):
    events = _events().rename(columns={"ts": "event_time"}).assign(ts="2024-01-02")
    params = write_tables(
        {"leads": _leads(), "events": events, "outcomes": _outcomes()},
        event_time_column="event_time",
    )
    problems = _problems(params, tmp_path)
    assert problems == [
        f"{tmp_path / 'events.csv'}: column 'event_time' is configured as the 'ts' column but a "
        "different column named 'ts' also exists; rename or drop one of them"
    ]


def test_events_before_creation_warn_with_a_count(write_tables, tmp_path):
    events = _events()
    events.loc[0, "ts"] = "2023-06-01"
    params = write_tables({"leads": _leads(), "events": events, "outcomes": _outcomes()})
    raw = load_raw(params, root=tmp_path, now=NOW)
    assert any("events.csv: 1 events happen before" in w for w in raw.warnings)


def test_flat_export_label_mapping_and_row_ids(write_tables, tmp_path):
    leads = pd.DataFrame(
        {"Revenue": ["TRUE", "FALSE", "true", "FALSE"], "x": ["1", "2", "3", "4"]}
    )
    params = write_tables({"leads": leads}, format="flat", label_column="Revenue")
    raw = load_raw(params, root=tmp_path, now=NOW)
    assert raw.leads["label"].tolist() == [1, 0, 1, 0]
    assert raw.leads["label"].dtype == np.int8
    assert raw.leads["lead_id"].tolist() == ["row-1", "row-2", "row-3", "row-4"]
    assert "created_at" not in raw.leads.columns
    assert raw.events is None and raw.outcomes is None
    assert raw.attribute_types == {"x": "numeric"}


@pytest.mark.parametrize(
    ("values", "expected"),
    [
        (["yes", "no", "maybe", "no"], "not binary"),
        (["lost", "open", "lost", "open"], "no positive value"),
        (["yes", "yes", "yes", "yes"], "single class"),
        ([0, 1, 2, 1], "not binary"),
    ],
)
def test_flat_label_must_be_binary(write_tables, tmp_path, values, expected):
    leads = pd.DataFrame({"lead_id": ["a", "b", "c", "d"], "converted": values})
    params = write_tables(
        {"leads": leads}, suffix=".parquet", format="flat", label_column="converted"
    )
    problems = _problems(params, tmp_path)
    assert len(problems) == 1
    assert "leads.parquet" in problems[0] and "'converted'" in problems[0]
    assert expected in problems[0]


def test_type_inference_and_overrides():
    n = 50
    leads = pd.DataFrame(
        {
            "lead_id": [str(i) for i in range(n)],
            "revenue_text": [str(i * 1.5) for i in range(n - 1)] + ["n/a?"],  # 98% numeric
            "zip": [f"{i % 7:05d}" for i in range(n)],
            "country": ["de", "fr"] * (n // 2),
            "flag": [True, False] * (n // 2),
            "row_no": range(n),
            "token": [f"tok-{i}" for i in range(n)],
            "signed_at": pd.date_range("2024-01-01", periods=n, freq="D", tz="UTC"),
            "nothing": [None] * n,
            "job_title": [f"title {i}" for i in range(n)],  # unique but kept for derivations
        }
    )
    types, warnings = infer_attribute_types(leads, DataParams(categorical=["zip"]))
    assert types == {
        "revenue_text": "numeric",
        "zip": "categorical",
        "country": "categorical",
        "flag": "numeric",
        "job_title": "categorical",
    }
    joined = "\n".join(warnings)
    for column in ("row_no", "token", "nothing", "revenue_text"):
        assert f"'{column}'" in joined
    types, _ = infer_attribute_types(leads, DataParams(numeric=["row_no"]))
    assert types["row_no"] == "numeric"
    assert types["zip"] == "numeric"


def test_id_like_column_is_dropped_with_a_warning(write_tables, tmp_path):
    n = 40
    leads = pd.DataFrame(
        {
            "lead_id": [f"L{i}" for i in range(n)],
            "created_at": ["2024-01-01"] * n,
            "session_token": [f"s{i:04d}" for i in range(n)],
            "segment": ["a", "b"] * (n // 2),
        }
    )
    params = write_tables({"leads": leads, "outcomes": _outcomes()})
    raw = load_raw(params, root=tmp_path, now=NOW)
    assert "session_token" not in raw.leads.columns
    assert "session_token" not in raw.attribute_types
    assert any("'session_token' looks like an identifier" in w for w in raw.warnings)


def test_exclude_columns_and_missing_markers(write_tables, tmp_path):
    leads = _leads().assign(industry=["saas", "Select", "NA", "bank", " ", "saas"])
    params = write_tables({"leads": leads, "outcomes": _outcomes()}, exclude_columns=["employees"])
    raw = load_raw(params, root=tmp_path, now=NOW)
    assert "employees" not in raw.leads.columns
    assert raw.leads["industry"].isna().tolist() == [False, True, True, False, True, False]


def test_parse_timestamps_handles_zones_and_rejects_epochs_and_ambiguous_dates():
    values = ["2024-03-10T12:00:00+02:00", "10/03/2024", None, "1985-01-01", "0001-01-01"]
    parsed, bad = parse_timestamps(pd.Series(values))
    assert parsed.iloc[0] == pd.Timestamp("2024-03-10T10:00:00", tz="UTC")
    # 10 March or 3 October? Training reads ISO 8601 only, so nothing is silently misread;
    # years before 1990 are a CRM's empty date or a unit error.
    assert bad.tolist() == [False, True, False, True, True]
    assert parsed.iloc[1:].isna().all()
    _, bad = parse_timestamps(pd.Series([1_700_000_000, 1_700_000_100]))
    assert bad.all()


def test_validate_reports_counts_and_leakage(write_tables, tmp_path):
    params = write_tables({"leads": _leads(), "events": _events(), "outcomes": _outcomes()})
    report = validate(params, root=tmp_path, now=NOW)
    out = report.to_dict()
    assert (out["n_leads"], out["n_events"], out["n_outcomes"]) == (6, 4, 3)
    assert out["label_rate"] == pytest.approx(1 / 6)
    assert out["leakage"] == []  # one converted lead: too few to judge
