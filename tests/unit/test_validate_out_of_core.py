"""validate reads the events in batches and finds exactly what the whole-table check finds."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from predictive_scoring.config import DataParams
from predictive_scoring.errors import DataValidationError
from predictive_scoring.read import read_batches, read_table
from predictive_scoring.schema import load_raw, validate

NOW = pd.Timestamp("2025-01-01", tz="UTC")
N_EVENTS = 200
BATCH = 7  # far below the table: every problem below lands in some later batch


def _leads(n: int = 30) -> pd.DataFrame:
    rng = np.random.default_rng(1)
    return pd.DataFrame(
        {
            "lead_id": [f"L{i}" for i in range(n)],
            "created_at": pd.date_range("2024-01-01", periods=n, freq="D", tz="UTC"),
            "industry": rng.choice(["saas", "bank", "retail"], n),
        }
    )


def _outcomes() -> pd.DataFrame:
    return pd.DataFrame(
        {
            "lead_id": ["L0", "L1", "L2", "L3", "L4", "L5"],
            "stage": ["won", "won", "lost", "won", "sql", "lost"],
            "ts": pd.to_datetime(["2024-06-01"] * 6, utc=True),
        }
    )


def _events() -> pd.DataFrame:
    rng = np.random.default_rng(2)
    start = pd.Timestamp("2024-02-01")
    seconds = rng.integers(0, 10**7, N_EVENTS)
    return pd.DataFrame(
        {
            "lead_id": [f"L{i}" for i in rng.integers(0, 30, N_EVENTS)],
            "ts": [(start + pd.Timedelta(seconds=int(s))).isoformat() for s in seconds],
            "event_type": rng.choice(["web_visit", "demo_request", "email_open"], N_EVENTS),
            "channel": rng.choice(["email", "web"], N_EVENTS),
        }
    )


def _broken_events() -> pd.DataFrame:
    """Every kind of row problem, spread over many batches of BATCH rows."""
    events = _events()
    events.loc[[3, 50, 122, 199], "ts"] = ["nope", "x", "1700000000", "z"]  # unparseable
    events.loc[[60, 150], "ts"] = ["2030-01-01", "2031-05-05"]  # future
    events.loc[[5, 61, 64, 130, 190], "lead_id"] = ["G1", "G2", "G1", "G3", "G2"]  # unknown
    events.loc[[8, 71, 155], "event_type"] = ["N/A", "", "Select"]  # missing markers
    events.loc[[11], "lead_id"] = [None]
    events.loc[[9, 80, 160], "ts"] = ["2023-01-01", "2023-06-01", "2023-02-02"]  # before creation
    return events


def _write(root: Path, events: pd.DataFrame, suffix: str) -> DataParams:
    _leads().to_parquet(root / "leads.parquet", index=False)
    _outcomes().to_parquet(root / "outcomes.parquet", index=False)
    path = root / f"events{suffix}"
    if suffix == ".csv":
        events.to_csv(path, index=False)
    else:
        events.to_parquet(path, index=False)
    return DataParams(events=path.name)


def _problems(call: Callable[[], object]) -> list[str]:
    with pytest.raises(DataValidationError) as info:
        call()
    return info.value.problems


@pytest.mark.parametrize("suffix", [".parquet", ".csv"])
def test_batches_find_exactly_the_whole_table_problems_with_file_rows(
    tmp_path: Path, suffix: str
) -> None:
    params = _write(tmp_path, _broken_events(), suffix)
    in_memory = _problems(lambda: load_raw(params, root=tmp_path, now=NOW))
    batched = _problems(lambda: validate(params, root=tmp_path, now=NOW, batch_rows=BATCH))
    one_batch = _problems(lambda: validate(params, root=tmp_path, now=NOW, batch_rows=10**6))
    assert batched == in_memory == one_batch
    file = tmp_path / f"events{suffix}"
    assert batched == [
        f"{file}: column 'lead_id': 1 row(s) are empty, e.g. data rows 12; fill in the value or "
        "remove these rows",
        f"{file}: column 'event_type': 3 row(s) are empty, e.g. data rows 9, 72, 156; fill in the "
        "value or remove these rows",
        f"{file}: column 'ts': 4 timestamp(s) cannot be parsed, e.g. data row 4 'nope', data row "
        "51 'x', data row 123 '1700000000', data row 200 'z'; write them as ISO 8601 "
        "('2024-05-01T13:45:00Z'), naive times are read as UTC",
        f"{file}: column 'ts': 2 timestamp(s) lie in the future (after "
        "2025-01-01T00:00:00+00:00), e.g. data row 61 '2030-01-01', data row 151 '2031-05-05'; "
        "fix the clock or time zone of the export (timestamps must be UTC)",
        # Five rows over four batches, three distinct ids: counted once each across batches.
        f"{file}: column 'lead_id': 5 row(s) refer to 3 lead id(s) not in "
        f"{tmp_path / 'leads.parquet'}, e.g. 'G1', 'G2', 'G3' (data rows 6, 62, 65, 131, 191); "
        "export the leads and this table from the same snapshot, or drop these rows",
    ]


@pytest.mark.parametrize("suffix", [".parquet", ".csv"])
def test_batched_report_equals_the_whole_table_report(tmp_path: Path, suffix: str) -> None:
    events = _events()
    early = events["lead_id"].isin(["L20", "L25", "L29"]) & (events.index % 3 == 0)
    events.loc[early, "ts"] = "2023-12-01T00:00:00"  # before these leads were created
    params = _write(tmp_path, events, suffix)
    batched = validate(params, root=tmp_path, now=NOW, batch_rows=BATCH).to_dict()
    whole = validate(params, root=tmp_path, now=NOW, batch_rows=10**6).to_dict()
    raw = load_raw(params, root=tmp_path, now=NOW)
    assert batched == whole
    assert raw.events is not None
    assert batched["n_events"] == N_EVENTS == len(raw.events)
    assert batched["warnings"] == raw.warnings
    assert batched["warnings"] == [
        f"{tmp_path / f'events{suffix}'}: {int(early.sum())} events happen before their lead's "
        "creation time (e.g. lead ids "
        + ", ".join(repr(i) for i in events.loc[early, "lead_id"].unique()[:5])
        + "); they count from the lead's creation on"
    ]


def test_read_batches_are_bounded_and_numbered_by_file_row(tmp_path: Path) -> None:
    path = tmp_path / "events.parquet"
    _broken_events().to_parquet(path, index=False)
    batches = list(read_batches(path, columns=["ts", "lead_id"], batch_rows=BATCH))
    assert len(batches) == -(-N_EVENTS // BATCH)
    assert max(len(b) for b in batches) == BATCH
    assert [b.index[0] for b in batches] == list(range(0, N_EVENTS, BATCH))
    whole = read_table(path)[["ts", "lead_id"]]
    pd.testing.assert_frame_equal(pd.concat(batches), whole)


def test_empty_events_table_is_one_problem_in_batches_too(tmp_path: Path) -> None:
    params = _write(tmp_path, _events().iloc[:0], ".parquet")
    problems = _problems(lambda: validate(params, root=tmp_path, now=NOW, batch_rows=BATCH))
    assert problems == [
        f"{tmp_path / 'events.parquet'}: the table is empty (no rows); export it again"
    ]
