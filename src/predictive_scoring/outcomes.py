"""Outcomes back in: the stage changes a CRM reports, checked and kept in the outcome store.

A batch (``POST /v1/outcomes``'s body, or a CRM export read by ``outcomes import``) is checked
whole by :func:`check_outcomes` before anything is stored: a lead id of 1 to 256 characters, a
known stage, a readable time (the one timestamp rule, :mod:`predictive_scoring.timestamps`,
under the serving policy: not in the future beyond the clock skew, not before 1990) and a
reason of at most 200 characters. The first bad row is refused with its place (``["body",
"outcomes", 3, "ts"]``, or the file, column and row) and nothing of the batch is stored.

The store is idempotent on (lead id, stage, time), times counted in whole seconds. Two layers
make it so: :func:`store_outcomes` skips the rows already stored (and repeats within the batch),
so a retried post adds nothing and the answer says how many were already known; and
:func:`read_outcomes` deduplicates with DuckDB, which is what makes the guarantee hold when two
replicas store the same row at the same moment (each checks before the other has written). When
the same (lead, stage, time) arrives with two reasons, the first one stored is kept.
"""

from __future__ import annotations

import math
import threading
import time
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pyarrow as pa

from predictive_scoring import config
from predictive_scoring.errors import DataValidationError, ScoringInputError
from predictive_scoring.ingress import lead_id_text
from predictive_scoring.read import read_table
from predictive_scoring.records import OUTCOME_COLUMNS, OUTCOMES, empty_table, scan, write_part
from predictive_scoring.timestamps import (
    SERVING,
    TIME_FIX,
    TimePolicy,
    out_of_bounds,
    outside,
    read_seconds,
)

__all__ = [
    "MAX_ID_LENGTH",
    "MAX_REASON_LENGTH",
    "STAGES",
    "OutcomeSource",
    "RawOutcomes",
    "StoredOutcomes",
    "check_outcomes",
    "outcomes_from_frame",
    "outcomes_from_items",
    "read_outcome_file",
    "read_outcomes",
    "store_outcomes",
]

# The data contract's stages, plus sales accepting or rejecting an SQL (with a reason).
STAGES: tuple[str, ...] = (*config.STAGES, "sql_accepted", "sql_rejected")
MAX_ID_LENGTH = 256
MAX_REASON_LENGTH = 200
FIELDS = ("lead_id", "stage", "ts", "reason")
KEY = ("lead_id", "stage", "ts")

# One writer at a time per process: the check for stored rows and the write it decides on go
# together, so one worker never stores a row twice. Across processes read_outcomes deduplicates.
_WRITE_LOCK = threading.Lock()


@dataclass(frozen=True)
class OutcomeSource:
    """Where a batch came from, so a problem names its place as the sender knows it.

    A JSON body's rows are named FastAPI's way (``["body", "outcomes", 3, "ts"]``); a file's rows
    by the file, the column as the file spells it, and the data row (1 for the first under the
    header).
    """

    name: str = "body"
    table: bool = False
    columns: Mapping[str, str] = field(default_factory=dict)

    def place(self, row: int, name: str) -> tuple[list[str | int], str]:
        """(loc, where) of field ``name`` of row ``row`` (0-based)."""
        if self.table:
            column = self.columns.get(name, name)
            return [row + 1, column], f"{self.name}: column '{column}' row {row + 1}"
        return ["body", "outcomes", row, name], f"outcomes[{row}].{name}"

    def problem(self, row: int, name: str, message: str, kind: str) -> ScoringInputError:
        loc, where = self.place(row, name)
        return ScoringInputError(f"{where}: {message}", field=name, row=row, loc=loc, kind=kind)

    def whole(self, message: str, kind: str) -> ScoringInputError:
        loc: list[str | int] = [self.name] if self.table else ["body", "outcomes"]
        where = self.name if self.table else "outcomes"
        return ScoringInputError(f"{where}: {message}", field="outcomes", loc=loc, kind=kind)


@dataclass
class RawOutcomes:
    """Outcome rows as a decoder found them: values as given, one sequence per field."""

    lead_ids: Sequence[object]
    stages: Sequence[object]
    times: Sequence[object] | pd.Series
    reasons: Sequence[object]
    source: OutcomeSource = field(default_factory=OutcomeSource)

    def __len__(self) -> int:
        return len(self.lead_ids)


@dataclass(frozen=True)
class StoredOutcomes:
    """What storing a batch did: rows received, newly stored, and already known (stored before,
    or repeated within the batch)."""

    received: int
    stored: int
    already_known: int


# --------------------------------------------------------------------------------------------
# Decoding: values as given, no rule


def outcomes_from_items(items: Sequence[Mapping[str, object]]) -> RawOutcomes:
    """Rows of a JSON body's ``outcomes`` list (mappings with lead_id, stage, ts, reason)."""
    return RawOutcomes(
        lead_ids=[item.get("lead_id") for item in items],
        stages=[item.get("stage") for item in items],
        times=[item.get("ts") for item in items],
        reasons=[item.get("reason") for item in items],
    )


def _cells(frame: pd.DataFrame, column: str | None) -> list[object]:
    if column is None or column not in frame.columns:
        return [None] * len(frame)
    series = frame[column]
    cells: list[object] = series.astype(object).where(series.notna(), None).tolist()
    return cells


def outcomes_from_frame(
    frame: pd.DataFrame,
    *,
    source: str,
    id_column: str = "lead_id",
    stage_column: str = "stage",
    time_column: str = "ts",
    reason_column: str | None = "reason",
) -> RawOutcomes:
    """Rows of a table in the data contract's outcomes shape; the reason column is optional.

    Raises :class:`ScoringInputError` naming a required column that is missing (and the
    separator, when the header was read as one column holding another separator).
    """
    columns = {"lead_id": id_column, "stage": stage_column, "ts": time_column}
    for name, column in columns.items():
        if column not in frame.columns:
            found = ", ".join(map(str, frame.columns[:12]))
            seps = [s for s in (";", "\t", "|") if len(frame.columns) == 1 and s in found]
            hint = f"; the separator looks like {seps[0]!r} (--sep or data.sep)" if seps else ""
            raise ScoringInputError(
                f"{source}: required column '{column}' ({name}) is missing (columns found: "
                f"{found}){hint}; name it with the command's options or in the data section "
                "of params.yaml",
                field=column,
                loc=[source, column],
                kind="missing_column",
            )
    if reason_column is not None:
        columns["reason"] = reason_column
    return RawOutcomes(
        lead_ids=_cells(frame, id_column),
        stages=_cells(frame, stage_column),
        times=frame[time_column].reset_index(drop=True),
        reasons=_cells(frame, reason_column),
        source=OutcomeSource(name=source, table=True, columns=columns),
    )


def read_outcome_file(
    path: Path,
    *,
    data: config.DataParams | None = None,
    reason_column: str | None = "reason",
) -> RawOutcomes:
    """A CRM export (CSV or Parquet) in the outcomes shape, read as training reads its tables
    (:func:`predictive_scoring.read.read_table`, the data section's separator and column names).
    """
    data = data or config.DataParams()
    try:
        frame = read_table(path, sep=data.sep)
    except DataValidationError as exc:  # one line: the reader names the file and the fix
        raise ScoringInputError(exc.problems[0], field=str(path), loc=[str(path)]) from None
    return outcomes_from_frame(
        frame,
        source=str(path),
        id_column=data.id_column,
        stage_column=data.stage_column,
        time_column=data.outcome_time_column,
        reason_column=reason_column,
    )


# --------------------------------------------------------------------------------------------
# The rules


def _missing(value: object) -> bool:
    return value is None or value is pd.NA or (isinstance(value, float) and math.isnan(value))


def _stage(value: object) -> str | None:
    """A stage, case and surrounding spaces aside; None when it is not text."""
    return value.strip().lower() if isinstance(value, str) else None


def _reason(value: object) -> str | None:
    if _missing(value):
        return None
    text = (value if isinstance(value, str) else str(value)).strip()
    return text or None


def _first_bad_id(values: Sequence[object]) -> tuple[int, str] | None:
    for i, value in enumerate(values):
        text = lead_id_text(value)
        if text is None or not 1 <= len(text) <= MAX_ID_LENGTH:
            shown = "nothing" if _missing(value) else repr(str(value)[:40])
            return i, f"a lead id is 1 to {MAX_ID_LENGTH} characters, got {shown}"
    return None


def _first_bad_stage(values: Sequence[object]) -> tuple[int, str] | None:
    known = frozenset(STAGES)
    for i, value in enumerate(values):
        if _stage(value) not in known:
            shown = "nothing" if _missing(value) else repr(str(value)[:40])
            return i, f"unknown stage {shown}; use one of {', '.join(STAGES)}"
    return None


def _first_bad_reason(values: Sequence[object]) -> tuple[int, str] | None:
    for i, value in enumerate(values):
        text = _reason(value)
        if text is not None and len(text) > MAX_REASON_LENGTH:
            return i, f"a reason is at most {MAX_REASON_LENGTH} characters, got {len(text)}"
    return None


def _first_bad_time(
    values: Sequence[object] | pd.Series,
    seconds: np.ndarray,
    unreadable: np.ndarray,
    *,
    policy: TimePolicy,
    now: int,
) -> tuple[int, str, str] | None:
    """(row, why, kind) of the first time that is unreadable, missing or out of bounds."""
    early, late = outside(seconds, policy=policy, now=now)
    bad = unreadable | np.isnan(seconds) | early | late
    if not bad.any():
        return None
    i = int(np.flatnonzero(bad)[0])
    if unreadable[i]:
        given = values.iloc[i] if isinstance(values, pd.Series) else values[i]
        return i, f"cannot read {str(given)[:60]!r} as a timestamp; {TIME_FIX}", "timestamp"
    if np.isnan(seconds[i]):
        return i, f"the time of the stage change is required; {TIME_FIX}", "missing"
    refused = out_of_bounds(seconds[i : i + 1], policy=policy, now=now)
    assert refused is not None
    return i, refused[2], refused[1]


def check_outcomes(
    raw: RawOutcomes,
    *,
    now: int | None = None,
    skew_seconds: int = 300,
    max_rows: int | None = None,
    source: str = "api",
) -> pa.Table:
    """The batch as the outcome store's Arrow table, or :class:`ScoringInputError` naming the
    first bad row and its field (and nothing is returned to store).

    ``now`` is the server's clock (epoch seconds; default: now), ``skew_seconds`` how far ahead
    of it a time may lie, ``source`` what the rows are recorded as coming from (api or file).
    """
    now = int(time.time()) if now is None else now
    n, origin = len(raw), raw.source
    if max_rows is not None and n > max_rows:
        raise origin.whole(f"{n} rows; at most {max_rows} per call (split the batch)", "too_long")
    policy = replace(SERVING, skew_seconds=skew_seconds)
    seconds, unreadable = read_seconds(raw.times, numbers=policy.numbers)
    # The first bad row is named; within a row, the first bad field in FIELDS order.
    problems: list[tuple[int, int, str, str, str]] = []  # row, field order, field, why, kind
    for name, kind, found in (
        ("lead_id", "lead_id", _first_bad_id(raw.lead_ids)),
        ("stage", "stage", _first_bad_stage(raw.stages)),
        ("reason", "too_long", _first_bad_reason(raw.reasons)),
    ):
        if found is not None:
            problems.append((found[0], FIELDS.index(name), name, found[1], kind))
    bad_time = _first_bad_time(raw.times, seconds, unreadable, policy=policy, now=now)
    if bad_time is not None:
        problems.append((bad_time[0], FIELDS.index("ts"), "ts", bad_time[1], bad_time[2]))
    if problems:
        row, _, name, why, kind = min(problems)
        raise origin.problem(row, name, why, kind)
    micros = seconds.astype(np.int64) * 1_000_000
    columns: dict[str, pa.Array] = {
        "lead_id": pa.array([lead_id_text(v) for v in raw.lead_ids], OUTCOME_COLUMNS["lead_id"]),
        "stage": pa.array([_stage(v) for v in raw.stages], OUTCOME_COLUMNS["stage"]),
        "ts": pa.array(micros, OUTCOME_COLUMNS["ts"]),
        "reason": pa.array([_reason(v) for v in raw.reasons], OUTCOME_COLUMNS["reason"]),
        "received_at": pa.array(
            np.full(n, now * 1_000_000, dtype=np.int64), OUTCOME_COLUMNS["received_at"]
        ),
        "source": pa.array([source] * n, OUTCOME_COLUMNS["source"]),
    }
    return pa.table({name: columns[name] for name in OUTCOME_COLUMNS})


# --------------------------------------------------------------------------------------------
# The store


@contextmanager
def _connection(con: Any | None) -> Iterator[Any]:
    if con is not None:
        yield con
        return
    import duckdb

    own = duckdb.connect()
    try:
        yield own
    finally:
        own.close()


def store_outcomes(
    store: str | Path, table: pa.Table, *, con: Any | None = None
) -> StoredOutcomes:
    """Add the rows of a checked batch that the store does not hold yet, as one part.

    A row is known when its (lead_id, stage, ts) is stored already or came earlier in the same
    batch; nothing is written when every row is known.
    """
    n = table.num_rows
    if n == 0:
        return StoredOutcomes(received=0, stored=0, already_known=0)
    keys = table.select(list(KEY)).append_column("_pos", pa.array(np.arange(n), pa.int64()))
    with _WRITE_LOCK, _connection(con) as c:
        stored = scan(c, store, OUTCOMES, columns=KEY)
        if stored is None:
            stored = c.from_arrow(empty_table({k: OUTCOME_COLUMNS[k] for k in KEY}))
        c.register("_outcomes_batch", keys)
        try:
            fresh = stored.query(
                "_outcomes_stored",
                "SELECT _pos FROM _outcomes_batch b "
                "WHERE NOT EXISTS (SELECT 1 FROM _outcomes_stored s "
                "WHERE s.lead_id = b.lead_id AND s.stage = b.stage AND s.ts = b.ts) "
                "QUALIFY row_number() OVER (PARTITION BY lead_id, stage, ts ORDER BY _pos) = 1 "
                "ORDER BY _pos",
            ).fetchnumpy()["_pos"]
        finally:
            c.unregister("_outcomes_batch")
        new = table.take(pa.array(np.asarray(fresh, dtype=np.int64)))
        if new.num_rows:
            write_part(store, OUTCOMES, new)
    return StoredOutcomes(received=n, stored=new.num_rows, already_known=n - new.num_rows)


_READ = (
    "SELECT lead_id, stage, ts, reason FROM _outcome_parts "
    "QUALIFY row_number() OVER (PARTITION BY lead_id, stage, ts "
    "ORDER BY received_at, reason NULLS LAST) = 1 "
    "ORDER BY ts, lead_id, stage"
)


def read_outcomes(store: str | Path, con: Any | None = None) -> pd.DataFrame:
    """Every (lead, stage, time) in the store once, whatever was posted twice, in time order.

    Columns ``lead_id``, ``stage``, ``reason`` (text, missing when none was given; the first
    stored reason wins) and ``ts`` (UTC). ``con``: a DuckDB connection (default: a new one).
    """
    with _connection(con) as c:
        parts = scan(c, store, OUTCOMES, columns=[*FIELDS, "received_at"])
        if parts is None:
            parts = c.from_arrow(empty_table(OUTCOME_COLUMNS))
        frame: pd.DataFrame = parts.query("_outcome_parts", _READ).df()
    for name in ("lead_id", "stage", "reason"):  # the same dtype whether the store is empty
        frame[name] = frame[name].astype("str")
    frame["ts"] = pd.to_datetime(frame["ts"], utc=True)
    return frame
