"""Training/serving skew audit: every timestamp parser gives the same whole UTC epoch second.

Each path is driven the way production drives it, with the Python type production hands it:

* ``training``   CSV cells are text (``schema.read_table``), Parquet cells keep their type; then
                 ``schema.parse_timestamps`` (via ``load_raw``) and ``dataset.to_epoch_seconds``
                 (``featurize_dataset``) on the parsed column.
* ``data_end``   ``dataset.to_epoch_seconds(pd.Series([params.data_end]))`` (a str from params).
* ``pyfunc``     ``scoring.epoch_seconds_of(pd.Series(values))`` as ``batch_from_nested`` calls it.
* ``pyfunc_batch`` the event second that ``batch_from_nested`` hands the executor (int64).
* ``file_events`` ``filescore.read_any`` (CSV, pyarrow dtypes) then ``epoch_seconds_of``.
* ``file_leads`` the same, after ``score_files``' ``astype(object).where(notna, None)``.
* ``serve``      ``EventIn`` (``UtcDatetime``) validated like FastAPI does, then
                 ``convert.epoch_seconds``.
* ``lean``       ``lean.parse_leads`` on the JSON body and ``lean.parse_epoch_seconds``: None
                 (decline) or the serve value.

No mocks: the real functions on real files in ``tmp_path``.
"""

from __future__ import annotations

import json
import math
import warnings
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from pydantic import ValidationError

from predictive_scoring.batch import connect_duckdb
from predictive_scoring.config import DataParams, FeaturizeParams
from predictive_scoring.dataset import events_table, to_epoch_seconds
from predictive_scoring.errors import ScoringInputError
from predictive_scoring.filescore import read_any
from predictive_scoring.schema import parse_timestamps, read_table
from predictive_scoring.scoring import batch_from_nested, epoch_seconds_of
from predictive_scoring.serve.convert import epoch_seconds
from predictive_scoring.serve.lean import parse_epoch_seconds, parse_leads
from predictive_scoring.serve.schemas import EventIn, LeadIn

REJECTED = "rejected"
Result = int | float | str  # a number of seconds, or REJECTED

# --------------------------------------------------------------------------------------------
# The paths


def _quiet(fn: Callable[[], Result]) -> Result:
    """Run a path with warnings recorded, not raised (pytest turns warnings into errors)."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return fn()


def _training(value: Any, tmp: Path) -> Result:
    if isinstance(value, str):  # a CSV export: read_table reads every cell as text
        path = tmp / "events.csv"
        path.write_text(f"ts\n{value}\n")
    else:  # a Parquet export keeps the number type
        path = tmp / "events.parquet"
        pd.DataFrame({"ts": [value]}).to_parquet(path)
    column = read_table(path)["ts"]
    parsed, bad = parse_timestamps(column)
    if bool(bad.any()):
        return REJECTED
    return int(to_epoch_seconds(parsed)[0])


def _data_end(value: Any, tmp: Path) -> Result:
    try:
        params = FeaturizeParams(data_end=value)
        assert params.data_end is not None
        return int(to_epoch_seconds(pd.Series([params.data_end]))[0])
    except (ValidationError, ValueError):
        return REJECTED


def _scored(values: pd.Series, field: str) -> Result:
    try:
        out = float(epoch_seconds_of(values, field=field, source="audit")[0])
    except ScoringInputError:
        return REJECTED
    return REJECTED if math.isnan(out) else out


def _pyfunc(value: Any, tmp: Path) -> Result:
    return _scored(pd.Series([value]), "ts")


def _pyfunc_batch(value: Any, tmp: Path) -> Result:
    events = json.dumps([{"event_type": "web_visit", "ts": value}])
    frame = pd.DataFrame({"lead_id": ["L1"], "events": [events]})
    try:
        batch, _ = batch_from_nested(frame, now=2**40)
    except ScoringInputError:
        return REJECTED
    return int(batch.event_ts[0]) if batch.event_ts.size else REJECTED


def _csv(tmp: Path, header: str, value: Any) -> pd.DataFrame:
    path = tmp / "file.csv"
    path.write_text(f"lead_id,{header}\nL1,{value}\n")
    return read_any(path)


def _file_events(value: Any, tmp: Path) -> Result:
    return _scored(_csv(tmp, "ts", value)["ts"], "ts")


def _file_leads(value: Any, tmp: Path) -> Result:
    frame = _csv(tmp, "created_at", value)
    frame = frame.astype(object).where(frame.notna(), None)  # as filescore.score_files does
    return _scored(frame["created_at"], "created_at")


def _serve(value: Any, tmp: Path) -> Result:
    try:  # FastAPI decodes the JSON and validates the Python objects (lax mode)
        event = EventIn.model_validate(json.loads(json.dumps({"event_type": "x", "ts": value})))
    except ValidationError:
        return REJECTED
    return epoch_seconds(event.ts)


PATHS: dict[str, Callable[[Any, Path], Result]] = {
    "training": _training,
    "data_end": _data_end,
    "pyfunc": _pyfunc,
    "pyfunc_batch": _pyfunc_batch,
    "file_events": _file_events,
    "file_leads": _file_leads,
    "serve": _serve,
}


def _lean_body(value: Any) -> int | None:
    body = json.dumps({"lead_id": "L1", "events": [{"event_type": "x", "ts": value}]}).encode()
    leads = parse_leads(
        body,
        batch=False,
        now=2**40,
        max_batch=10,
        max_events=10,
        clock_skew=0,
        numeric_inputs=(),
        columns=(),
    )
    return None if leads is None else int(leads.batch.event_ts[0])


def _lean_direct(value: Any) -> int | None:
    out = parse_epoch_seconds([value])
    return None if out is None else int(out[0])


# --------------------------------------------------------------------------------------------
# The corpus: (value, the correct whole UTC second or None when invalid, in the lean subset)


def _case(value: Any, expected: int | None) -> Any:
    return pytest.param(value, expected, id=repr(value))


NOON = 1_740_830_400  # 2025-03-01T12:00:00Z

CASES = [
    _case("2025-03-01T12:00:00Z", NOON),
    _case("2025-03-01T12:00:00+02:00", NOON - 7_200),
    _case("2025-03-01T12:00:00-05:30", NOON + 19_800),
    _case("2025-03-01T12:00:00", NOON),  # naive means UTC
    _case("2025-03-01T12:00:00.1Z", NOON),
    _case("2025-03-01T12:00:00.5Z", NOON),
    _case("2025-03-01T12:00:00.999999Z", NOON),
    _case("2025-03-01T12:00:00.999999", NOON),
    _case("2025-03-01T12:00:00.5+02:00", NOON - 7_200),
    _case("2025-03-01", NOON - 43_200),
    _case("2025-03-01 12:00:00", NOON),
    _case("2025-03-01 12:00:00Z", NOON),
    _case("2025-03-01T12:00Z", NOON),
    _case("2025-03-01T12:00:00z", NOON),  # pyfunc/file scorer reject: fine
    _case("20250301T120000Z", NOON),  # serve rejects: fine
    _case(0, 0),
    _case(1_700_000_000, 1_700_000_000),
    _case(1_700_000_000.0, 1_700_000_000),
    _case("1700000000", 1_700_000_000),
    _case(9_999_999_999, 9_999_999_999),  # the lean path's largest epoch
    _case(1_700_000_000.7, 1_700_000_000),  # fractions floored everywhere
    _case("1700000000.7", 1_700_000_000),
    _case(-1, -1),
    _case("-1", -1),  # a number as text is a number, never the ISO year -1
    _case("20250301", 20_250_301),  # digits only: epoch seconds, as the service reads them
    _case(-0.5, -1),  # floored, not truncated toward zero
    # Over 2e10 a number is milliseconds (pydantic's rule, kept by every path): JavaScript's
    # Date.now() and several CRMs send them; the price is that seconds past 2603 read as ms.
    _case(1_700_000_000_000, 1_700_000_000),
    _case(NOON * 1000 + 999, NOON),
    _case(32_503_680_000, 32_503_680),
    _case(20_000_000_000, 20_000_000_000),  # the boundary itself is still seconds
    _case("1969-12-31T23:59:59.5Z", -1),
    _case("1969-07-20T20:17:40Z", -14_182_940),
    _case("1899-12-31T00:00:00Z", -2_209_075_200),  # training refuses < 1900: fine
    _case("2024-02-29T23:59:59Z", 1_709_251_199),
    _case("2024-02-29", 1_709_164_800),
    _case("2199-12-31T23:59:59Z", 7_258_118_399),
    _case("9999-12-31T23:59:59Z", 253_402_300_799),
    _case("2023-02-29T00:00:00Z", None),  # no such day
    _case("2016-12-31T23:59:60Z", None),  # leap second
    _case("2025-13-01T00:00:00Z", None),
]


def _results(value: Any, tmp: Path) -> dict[str, Result]:
    return {name: _quiet(lambda fn=fn: fn(value, tmp)) for name, fn in PATHS.items()}


@pytest.mark.parametrize(("value", "expected"), CASES)
def test_accepting_paths_agree(value: Any, expected: int | None, tmp_path: Path) -> None:
    results = _results(value, tmp_path)
    accepted = {name: r for name, r in results.items() if r != REJECTED}
    if expected is None:
        assert accepted == {}, f"{value!r} is not a valid time, yet accepted: {accepted}"
        return
    assert accepted, f"{value!r}: every path rejects it"
    wrong = {name: r for name, r in accepted.items() if r != expected}
    assert wrong == {}, f"{value!r}: expected {expected}, all results {results}"


# Strings in exactly the lean subset, and whole epoch ints in 0..9,999,999,999.
LEAN_SUBSET = [
    "2025-03-01T12:00:00Z",
    "2025-03-01T12:00:00",
    "1969-07-20T20:17:40Z",
    "1899-12-31T00:00:00Z",
    "2024-02-29T23:59:59Z",
    "0001-01-01T00:00:00Z",
    "9999-12-31T23:59:59Z",
    0,
    1_700_000_000,
    9_999_999_999,
]


_CORPUS = [p.values[0] for p in CASES]


@pytest.mark.parametrize("value", _CORPUS + [v for v in LEAN_SUBSET if v not in _CORPUS], ids=repr)
def test_lean_declines_or_matches_serve(value: Any, tmp_path: Path) -> None:
    full = _serve(value, tmp_path)
    for lean in (_lean_body(value), _lean_direct(value)):
        assert lean is None or lean == full, f"{value!r}: lean {lean}, full route {full}"
    if value in LEAN_SUBSET and type(value) in (str, int):
        assert _lean_body(value) == full, f"{value!r} is in the lean subset but was declined"


def test_lean_handles_a_mixed_batch_like_one_by_one() -> None:
    """19- and 20-character texts and ints in one request: each gets its own value."""
    values: list[object] = list(LEAN_SUBSET)
    together = parse_epoch_seconds(values)
    assert together is not None
    one_by_one = [
        epoch_seconds(EventIn.model_validate({"event_type": "x", "ts": v}).ts) for v in values
    ]
    assert together.tolist() == one_by_one


def test_a_column_parses_like_its_cells(tmp_path: Path) -> None:
    """Mixed formats in one column (as an export has them) give each cell's own second."""
    texts = [p.values[0] for p in CASES if isinstance(p.values[0], str) and p.values[1]]
    singles = {t: _quiet(lambda t=t: _training(t, tmp_path)) for t in texts}
    path = tmp_path / "column.csv"
    path.write_text("ts\n" + "\n".join(texts) + "\n")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        parsed, bad = parse_timestamps(read_table(path)["ts"])
    together = {t: REJECTED if b else None for t, b in zip(texts, bad.tolist(), strict=True)}
    ok = ~bad.to_numpy()
    for t, s in zip(
        np.asarray(texts)[ok], to_epoch_seconds(parsed[ok].reset_index(drop=True)), strict=True
    ):
        together[str(t)] = int(s)
    assert together == singles
    scorable = [t for t in texts if _pyfunc(t, tmp_path) != REJECTED]
    column = epoch_seconds_of(pd.Series(scorable), field="ts").tolist()
    assert column == [_pyfunc(t, tmp_path) for t in scorable]
    served = [_serve(t, tmp_path) for t in scorable]
    assert [c for c, s in zip(column, served, strict=True) if s != REJECTED] == [
        s for s in served if s != REJECTED
    ]


@pytest.mark.parametrize(
    "text",
    [
        "1969-12-31T23:59:59.5Z",
        "1969-07-20T20:17:40.25Z",
        "2025-03-01T12:00:00.999999+02:00",
        "2025-03-01T12:00:00.000001",
        "9999-12-31T23:59:59.999999Z",
    ],
)
def test_parquet_timestamps_agree_out_of_core_and_in_memory(text: str, tmp_path: Path) -> None:
    """A Parquet timestamp: DuckDB's events_table, load_raw's parse and the service agree."""
    instant: datetime = LeadIn.model_validate({"lead_id": "L1", "created_at": text}).created_at
    assert instant is not None
    served = epoch_seconds(instant)
    path = tmp_path / "events.parquet"
    pq.write_table(
        pa.table(
            {
                "lead_id": ["L1"],
                "event_type": ["web_visit"],
                # pyarrow would keep the wall clock of a +02:00 datetime: hand it UTC
                "ts": pa.array([instant.astimezone(UTC)], type=pa.timestamp("us", tz="UTC")),
            }
        ),
        path,
    )
    con = connect_duckdb()
    out_of_core = con.to_pandas(events_table(con, path, DataParams()))["ts_s"].tolist()
    parsed, bad = parse_timestamps(read_table(path)["ts"])
    assert not bad.any()
    in_memory = to_epoch_seconds(parsed).tolist()
    assert out_of_core == in_memory == [served]
