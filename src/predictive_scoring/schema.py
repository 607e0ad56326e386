"""The raw-data contract (DESIGN section 2): validate leads, events and outcomes; normalise them.

``load_raw`` checks every table, collects every problem and raises one DataValidationError listing
them all (file, column, example rows, fix). On success it returns canonical frames: configured
column names renamed to ``lead_id``, ``created_at``, ``ts``, ``event_type``, ``stage``, ``label``;
ids as strings; timestamps as ``datetime64[us, UTC]`` truncated to whole seconds.

``validate`` (the ``validate`` stage) runs the same checks but reads the events out of core: in
batches of file rows, each batch checked by the same per-row code that ``load_raw`` applies to the
whole table, with counts and example rows gathered across batches. Reading lives in
:mod:`predictive_scoring.read`, the value rules in :mod:`predictive_scoring.canonical` and the
attribute-type plan in :mod:`predictive_scoring.infer`; their public names are re-exported here.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import numpy as np
import pandas as pd
import pandera.pandas as pa

from predictive_scoring.canonical import (
    CREATED_AT,
    EVENT_TYPE,
    LABEL,
    LEAD_ID,
    STAGE,
    TIMESTAMP_DTYPE,
    TS,
    apply_missing_values,
    as_categorical,
    as_numeric,
    ids_to_str,
    parse_timestamps,
)
from predictive_scoring.config import STAGES, DataParams
from predictive_scoring.errors import DataValidationError
from predictive_scoring.infer import (
    AttributePlan,
    AttributeType,
    apply_plan,
    infer_attribute_types,
    plan_attributes,
)
from predictive_scoring.leakage import (
    LeakageFlag,
    detect_leakage,
    ever_reached,
    reached_at,
    review_post_contact,
)
from predictive_scoring.read import (
    DEFAULT_BATCH_ROWS,
    MAX_EXAMPLES,
    read_batches,
    read_header,
    read_table,
    row_example,
    row_examples,
    value_examples,
)

__all__ = [
    "CREATED_AT",
    "EVENT_TYPE",
    "LABEL",
    "LEAD_ID",
    "STAGE",
    "TIMESTAMP_DTYPE",
    "TS",
    "AttributeType",
    "RawData",
    "ValidationReport",
    "infer_attribute_types",
    "load_raw",
    "parse_timestamps",
    "read_table",
    "validate",
]

logger = logging.getLogger(__name__)

ChildKind = Literal["events", "outcomes"]

_PROGRESS_ROWS = 10_000_000  # log the events' progress this often while streaming them


@dataclass(frozen=True)
class RawData:
    """The validated raw tables in canonical form.

    ``leads`` holds ``lead_id`` (str), ``created_at`` (absent for a flat export without one), the
    attribute columns, the email and job-title columns when present, datetime attribute columns
    (``datetime_columns``, not features) and, for a flat export, ``label`` (int8 0/1).
    """

    leads: pd.DataFrame
    events: pd.DataFrame | None
    outcomes: pd.DataFrame | None
    attribute_types: dict[str, AttributeType]
    datetime_columns: tuple[str, ...] = ()
    warnings: list[str] = field(default_factory=list)


@dataclass
class ValidationReport:
    """What the ``validate`` stage writes: sizes, attribute types, warnings, leakage flags
    (certain leaks) and review flags (columns that may be filled in after contact)."""

    n_leads: int
    n_events: int
    n_outcomes: int
    label_rate: float | None
    attribute_types: dict[str, AttributeType]
    datetime_columns: list[str]
    warnings: list[str]
    leakage: list[LeakageFlag]
    review: list[LeakageFlag] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready form."""
        return {
            "n_leads": self.n_leads,
            "n_events": self.n_events,
            "n_outcomes": self.n_outcomes,
            "label_rate": self.label_rate,
            "attribute_types": dict(self.attribute_types),
            "datetime_columns": list(self.datetime_columns),
            "warnings": list(self.warnings),
            "n_leakage_flags": len(self.leakage),
            "leakage": [flag.to_dict() for flag in self.leakage],
            "n_review_flags": len(self.review),
            "review": [flag.to_dict() for flag in self.review],
        }


# --------------------------------------------------------------------------------------------
# What a check finds, gathered batch by batch


@dataclass
class _Finding:
    """The rows one check flags in a table, over any number of batches: a count, the first rows
    (file row, value) in file order, and the distinct values in order of first appearance (all
    of them with ``every_value``, to count them; otherwise at least the first few)."""

    every_value: bool = False
    rows: int = 0
    examples: list[tuple[Any, Any]] = field(default_factory=list)
    values: dict[Any, None] = field(default_factory=dict)

    def add(self, hits: pd.Series) -> None:
        """Record flagged rows: ``hits`` holds their values, indexed by file row."""
        if hits.empty:
            return
        self.rows += len(hits)
        room = MAX_EXAMPLES - len(self.examples)
        if room > 0:
            self.examples.extend(hits.head(room).items())
        if self.every_value or len(self.values) < MAX_EXAMPLES:
            distinct = hits.unique()
            self.values.update(
                dict.fromkeys(distinct if self.every_value else distinct[:MAX_EXAMPLES])
            )

    def row_text(self) -> str:
        """'data row 3 'x', data row 9 'y'' for the first flagged rows."""
        return ", ".join(row_example(row, value) for row, value in self.examples)

    def row_numbers(self) -> str:
        """'3, 9' for the first flagged rows."""
        return ", ".join(str(int(row) + 1) for row, _ in self.examples)

    def value_text(self) -> str:
        """The first distinct flagged values."""
        return value_examples(self.values)

    def n_values(self) -> int:
        """How many distinct non-missing values were flagged (needs ``every_value``)."""
        return sum(1 for value in self.values if not pd.isna(value))


# --------------------------------------------------------------------------------------------
# Column rules: required columns, no empty values, unique ids, known stages (pandera)


_FIXES: dict[str, str] = {
    "column_in_dataframe": "add the column or set its name in the data section of params.yaml",
    "not_nullable": "fill in the value or remove these rows",
    "field_uniqueness": "keep one row per lead (deduplicate the export)",
    "isin": f"use one of {', '.join(STAGES)} (map your CRM stages to these)",
}
_CHECK_RANK = {"not_nullable": 0, "field_uniqueness": 1}  # pandera's own order; checks last


class _ColumnRules:
    """A table's pandera schema, run on its header once and on its rows batch by batch.

    ``names`` maps canonical column names back to the user's names for the messages. Uniqueness
    holds within what one call to :meth:`check_rows` sees, so a table with unique ids (leads)
    is checked whole.
    """

    def __init__(
        self, columns: dict[str, pa.Column], *, file: str, names: Mapping[str, str]
    ) -> None:
        self.schema = pa.DataFrameSchema(columns)
        self.order = list(columns)
        self.file = file
        self.names = names
        self.missing: list[str] = []
        self.header_problems: list[str] = []
        self.found: dict[tuple[str, str], _Finding] = {}

    def _failures(self, frame: pd.DataFrame) -> pd.DataFrame | None:
        try:
            self.schema.validate(frame, lazy=True)
        except pa.errors.SchemaErrors as exc:
            cases: pd.DataFrame = exc.failure_cases
            return cases
        return None

    def check_header(self, header: pd.DataFrame) -> None:
        """Required columns present? ``header`` holds the (renamed) columns, rows are ignored."""
        cases = self._failures(header.iloc[:0])
        if cases is None:
            return
        have = _columns_found(header, self.names)
        for canonical in cases.loc[cases["check"] == "column_in_dataframe", "failure_case"]:
            self.missing.append(str(canonical))
            self.header_problems.append(
                f"{self.file}: required column '{self.names.get(str(canonical), canonical)}' is "
                f"missing (columns found: {have}); {_FIXES['column_in_dataframe']}"
            )

    def check_rows(self, batch: pd.DataFrame) -> None:
        """Empty values, duplicate ids and unknown stages among ``batch``'s rows."""
        cases = self._failures(batch)
        if cases is None:
            return
        cases = cases[cases["check"] != "column_in_dataframe"]
        for (column, check), group in cases.groupby(["column", "check"], sort=False):
            key = (str(column), str(check))
            if key not in self.found:
                self.found[key] = _Finding(every_value=key[1] == "field_uniqueness")
            rows = pd.to_numeric(group["index"], errors="coerce")
            values = pd.Series(group["failure_case"].to_numpy(), index=rows.to_numpy())
            self.found[key].add(values[rows.notna().to_numpy()])

    def problems(self) -> list[str]:
        """Header problems first, then one line per (column, check) in pandera's order."""
        problems = list(self.header_problems)

        def rank(key: tuple[str, str]) -> tuple[int, int]:
            column, check = key
            position = self.order.index(column) if column in self.order else len(self.order)
            return position, _CHECK_RANK.get(check, 2)

        for column, check in sorted(self.found, key=rank):
            found = self.found[(column, check)]
            user_col = self.names.get(column, column)
            if check == "not_nullable":
                problems.append(
                    f"{self.file}: column '{user_col}': {found.rows} row(s) are empty, e.g. data "
                    f"rows {found.row_numbers()}; {_FIXES['not_nullable']}"
                )
            elif check == "field_uniqueness":
                problems.append(
                    f"{self.file}: column '{user_col}': {found.n_values()} id(s) appear more "
                    f"than once ({found.rows} rows), e.g. {found.value_text()} (data rows "
                    f"{found.row_numbers()}); "
                    f"{_FIXES['field_uniqueness']}"
                )
            elif check.startswith("isin"):
                problems.append(
                    f"{self.file}: column '{user_col}': {found.rows} row(s) hold unknown values "
                    f"{found.value_text()} (data rows {found.row_numbers()}); {_FIXES['isin']}"
                )
            else:  # pragma: no cover - a pandera check we did not configure
                problems.append(f"{self.file}: column '{user_col}': failed {check}")
        return problems


def _columns_found(header: pd.DataFrame, names: Mapping[str, str]) -> str:
    """The header's first columns as the user wrote them (before renaming), for messages."""
    shown = [str(names.get(str(c), c)) for c in list(header.columns)[:10]]
    more = len(header.columns) - len(shown)
    return ", ".join(shown) + (f" and {more} more" if more > 0 else "")


def _rename(
    frame: pd.DataFrame, mapping: Mapping[str, str], *, file: str
) -> tuple[pd.DataFrame, list[str]]:
    """Rename user columns to canonical names, refusing clashes with an existing column."""
    problems: list[str] = []
    active = {src: dst for src, dst in mapping.items() if src in frame.columns and src != dst}
    for src, dst in active.items():
        if dst in frame.columns and dst not in active:
            problems.append(
                f"{file}: column '{src}' is configured as the '{dst}' column but a different "
                f"column named '{dst}' also exists; rename or drop one of them"
            )
    return frame.rename(columns=active), problems


# --------------------------------------------------------------------------------------------
# Timestamps and lead ids, row by row


@dataclass
class _TimestampFindings:
    """Unparseable and future timestamps of one column (the training rule: parse_timestamps)."""

    file: str
    user_col: str
    now: pd.Timestamp
    unparseable: _Finding = field(default_factory=_Finding)
    future: _Finding = field(default_factory=_Finding)

    def check(self, values: pd.Series) -> pd.Series:
        """Record the bad rows of ``values`` (indexed by file row); return them parsed."""
        parsed, bad = parse_timestamps(values)
        self.unparseable.add(values[bad])
        self.future.add(values[parsed > self.now])
        return parsed

    def problems(self) -> list[str]:
        problems: list[str] = []
        where = f"{self.file}: column '{self.user_col}'"
        if self.unparseable.rows:
            slashed = any("/" in str(value) for _, value in self.unparseable.examples)
            why = (
                "dates like 03/04/2024 are ambiguous (dd/mm or mm/dd?) and are never guessed; "
                if slashed
                else ""
            )
            problems.append(
                f"{where}: {self.unparseable.rows} timestamp(s) cannot be parsed, e.g. "
                f"{self.unparseable.row_text()}; {why}write them as ISO 8601 "
                f"('2024-05-01T13:45:00Z'), naive times are read as UTC"
            )
        if self.future.rows:
            problems.append(
                f"{where}: {self.future.rows} timestamp(s) lie in the future "
                f"(after {self.now.isoformat()}), e.g. {self.future.row_text()}; fix the "
                f"clock or time zone of the export (timestamps must be UTC)"
            )
        return problems


class _KnownLeads:
    """The leads' ids, and their creation times when the ids are unique, to check child rows."""

    def __init__(self, leads: pd.DataFrame, *, file: str) -> None:
        ids = leads[LEAD_ID]
        unique = bool(ids.is_unique)
        self.file = file
        self.ids = pd.Index(ids if unique else ids.unique())
        self.created = leads[CREATED_AT].array if unique and CREATED_AT in leads.columns else None

    def look_up(self, ids: pd.Series) -> tuple[pd.Series, pd.Series | None]:
        """(unknown, created): which non-missing ids are not leads, and each row's lead's
        creation time (NaT when unknown; None when creation times are not comparable)."""
        where = self.ids.get_indexer(ids)
        unknown = pd.Series(where < 0, index=ids.index) & ids.notna()
        if self.created is None:
            return unknown, None
        created = pd.Series(self.created.take(where, allow_fill=True), index=ids.index)
        return unknown, created


# --------------------------------------------------------------------------------------------
# One events or outcomes table


class _ChildChecks:
    """Every check of an events or outcomes table, fed its rows whole or batch by batch.

    The same code runs on the whole table (``load_raw``) and on each batch (``validate``), so
    both find the same problems with the same counts and file row numbers.
    """

    def __init__(
        self,
        kind: ChildKind,
        *,
        file: str,
        params: DataParams,
        now: pd.Timestamp,
        leads: _KnownLeads | None,
    ) -> None:
        self.kind = kind
        self.file = file
        self.params = params
        self.leads = leads
        if kind == "events":
            self.names = {
                LEAD_ID: params.id_column,
                TS: params.event_time_column,
                EVENT_TYPE: params.event_type_column,
            }
        else:
            self.names = {
                LEAD_ID: params.id_column,
                TS: params.outcome_time_column,
                STAGE: params.stage_column,
            }
        self.renames = {v: k for k, v in self.names.items()}
        columns = {c: pa.Column(nullable=False) for c in self.names}
        if kind == "outcomes":
            columns[STAGE] = pa.Column(nullable=False, checks=pa.Check.isin(list(STAGES)))
        self.rules = _ColumnRules(columns, file=file, names=self.names)
        self.times = _TimestampFindings(file=file, user_col=self.names[TS], now=now)
        self.unknown = _Finding(every_value=True)
        self.early = _Finding()
        self.rename_problems: list[str] = []
        self.rows = 0

    @property
    def complete(self) -> bool:
        """True when the rows can be checked beyond their columns (the header is sound)."""
        return not (self.rules.missing or self.rename_problems)

    def check_header(self, header: pd.DataFrame) -> list[str]:
        """Check the columns; return the user's names of the required columns present."""
        renamed, self.rename_problems = _rename(header, self.renames, file=self.file)
        self.rules.check_header(renamed)
        return [user for user in self.names.values() if user in header.columns]

    def check_rows(self, batch: pd.DataFrame) -> pd.DataFrame:
        """Check ``batch`` (indexed by file row) and return it in canonical form."""
        self.rows += len(batch)
        batch = apply_missing_values(batch, self.params.missing_values)
        batch, _ = _rename(batch, self.renames, file=self.file)
        if self.rename_problems:  # two columns with one name: nothing more to check reliably
            return batch
        if STAGE in batch.columns:
            batch[STAGE] = as_categorical(batch[STAGE]).str.strip().str.lower()
        self.rules.check_rows(batch)
        if not self.complete:
            return batch
        batch[LEAD_ID] = ids_to_str(batch[LEAD_ID])
        batch[TS] = self.times.check(batch[TS])
        if EVENT_TYPE in batch.columns:
            batch[EVENT_TYPE] = as_categorical(batch[EVENT_TYPE])
        if "amount" in batch.columns:
            batch["amount"] = as_numeric(batch["amount"])
        if self.leads is not None:
            unknown, created = self.leads.look_up(batch[LEAD_ID])
            self.unknown.add(batch.loc[unknown, LEAD_ID])
            if created is not None:
                self.early.add(batch.loc[batch[TS] < created, LEAD_ID])
        return batch

    def problems(self) -> list[str]:
        """The table's own problems (columns, empty values, stages, timestamps)."""
        if self.rows == 0:
            return [f"{self.file}: the table is empty (no rows); export it again"]
        if self.rename_problems:
            return self.rename_problems + self.rules.header_problems
        return self.rename_problems + self.rules.problems() + self.times.problems()

    def unknown_lead_problem(self) -> str | None:
        """Rows whose lead id is not in the leads table."""
        if not self.unknown.rows or self.leads is None:
            return None
        return (
            f"{self.file}: column '{self.names[LEAD_ID]}': {self.unknown.rows} row(s) refer to "
            f"{self.unknown.n_values()} lead id(s) not in {self.leads.file}, e.g. "
            f"{self.unknown.value_text()} (data rows {self.unknown.row_numbers()}); export the "
            f"leads and this table from the same "
            f"snapshot, or drop these rows"
        )

    def before_created_warning(self) -> str | None:
        """Rows dated before their lead's creation (a warning: they count from creation on)."""
        if not self.early.rows:
            return None
        what = "events" if self.kind == "events" else "outcome rows"
        return (
            f"{self.file}: {self.early.rows} {what} happen before their lead's creation time "
            f"(e.g. lead ids {self.early.value_text()}); they count from the lead's creation on"
        )


def _load_child(
    checks: _ChildChecks, path: Path, problems: list[str], *, sep: str | None, encoding: str
) -> pd.DataFrame | None:
    """Read the whole table, check it as one batch and return it in canonical form."""
    try:
        raw = read_table(path, sep=sep, encoding=encoding)
    except DataValidationError as exc:
        problems.extend(exc.problems)
        return None
    if raw.empty:
        problems.append(f"{path}: the table is empty (no rows); export it again")
        return None
    checks.check_header(raw.iloc[:0])
    frame = checks.check_rows(raw)
    problems.extend(checks.problems())
    return frame if checks.complete else None


def _scan_child(
    checks: _ChildChecks,
    path: Path,
    problems: list[str],
    *,
    batch_rows: int,
    sep: str | None,
    encoding: str,
) -> bool:
    """Check the table batch by batch, reading only the required columns; True if it was read."""
    try:
        header = read_header(path, sep=sep, encoding=encoding)
        present = checks.check_header(header)
        columns = present or list(header.columns[:1])  # enough to count the rows
        for batch in read_batches(
            path, columns=columns, batch_rows=batch_rows, sep=sep, encoding=encoding
        ):
            checks.check_rows(batch)
            if checks.rows // _PROGRESS_ROWS != (checks.rows - len(batch)) // _PROGRESS_ROWS:
                logger.info("%s: %d rows checked", path, checks.rows)
    except DataValidationError as exc:
        problems.extend(exc.problems)
        return False
    problems.extend(checks.problems())
    return checks.rows > 0


# --------------------------------------------------------------------------------------------
# The label of a flat export


def _label_problems(
    s: pd.Series, params: DataParams, *, file: str, user_col: str
) -> tuple[pd.Series | None, list[str]]:
    """Map a flat export's label to int8 0/1: positive_values -> 1, the one other value -> 0."""
    present = s.dropna()
    if pd.api.types.is_bool_dtype(s.dtype):
        mapped = s.astype("float64")
    elif pd.api.types.is_numeric_dtype(s.dtype):
        mapped = s.astype("float64")
        bad = ~mapped.isin([0.0, 1.0]) & s.notna()
        if bad.any():
            return None, [
                f"{file}: label column '{user_col}' is not binary: numeric values other than 0 "
                f"and 1, e.g. {row_examples(s, bad)}; map it to 0/1 or to yes/no"
            ]
    else:
        text = present.astype("str").str.strip().str.lower()
        positives = {v.strip().lower() for v in params.positive_values}
        levels = sorted(set(text))
        pos_levels = [v for v in levels if v in positives]
        neg_levels = [v for v in levels if v not in positives]
        if levels and not pos_levels:
            return None, [
                f"{file}: label column '{user_col}' has no positive value: found "
                f"{value_examples(levels)}; add the value meaning 'converted' to "
                f"data.positive_values in params.yaml"
            ]
        if len(neg_levels) > 1 or len(pos_levels) > 1:
            return None, [
                f"{file}: label column '{user_col}' is not binary: values "
                f"{value_examples(levels)} ({len(levels)} distinct); it needs one positive "
                f"value (one of data.positive_values: {', '.join(params.positive_values)}) and "
                f"one negative value"
            ]
        mapped = pd.Series(np.nan, index=s.index, dtype="float64")
        mapped[present.index] = text.isin(positives).astype("float64")
    problems: list[str] = []
    if mapped.notna().any() and mapped.dropna().nunique() < 2:
        only = int(mapped.dropna().iloc[0])
        problems.append(
            f"{file}: label column '{user_col}' has a single class (every labelled lead is "
            f"{only}); a model needs converted and non-converted leads"
        )
    return (None if problems else mapped), problems


# --------------------------------------------------------------------------------------------
# The leads


def _load_leads(
    params: DataParams, root: Path, now: pd.Timestamp, problems: list[str], warnings: list[str]
) -> tuple[pd.DataFrame | None, AttributePlan | None]:
    file = str(root / params.leads)
    try:
        raw = read_table(root / params.leads, sep=params.sep, encoding=params.encoding)
    except DataValidationError as exc:
        problems.extend(exc.problems)
        return None, None
    if raw.empty:
        problems.append(f"{file}: the table is empty (no rows); export it again")
        return None, None
    raw = apply_missing_values(raw, params.missing_values)
    excluded = [c for c in params.exclude_columns if c in raw.columns]
    for column in params.exclude_columns:
        if column not in raw.columns:
            warnings.append(f"{file}: data.exclude_columns names '{column}', which is not there")
    raw = raw.drop(columns=excluded)

    names = {LEAD_ID: params.id_column or LEAD_ID}
    if params.created_column:
        names[CREATED_AT] = params.created_column
    if params.format == "flat" and params.label_column:
        names[LABEL] = params.label_column
    flat = params.format == "flat"
    if flat and not params.id_column:  # id_column: null
        if LEAD_ID in raw.columns:
            problems.append(
                f"{file}: data.id_column is null (rows are numbered) but the file has a "
                f"column '{LEAD_ID}'; set data.id_column: {LEAD_ID} to use it as the id"
            )
            return None, None
        logger.info("%s: data.id_column is null; leads are numbered row-1, row-2, ...", file)
        raw = raw.assign(**{LEAD_ID: [f"row-{i + 1}" for i in range(len(raw))]})
    elif flat and params.id_column not in raw.columns:
        warnings.append(
            f"{file}: no id column '{params.id_column}'; leads are numbered by row instead"
        )
        raw = raw.assign(**{params.id_column: [f"row-{i + 1}" for i in range(len(raw))]})
    if flat and params.created_column and params.created_column not in raw.columns:
        warnings.append(
            f"{file}: no creation-time column '{params.created_column}'; leads have no "
            f"created_at (fine for a flat export)"
        )
        del names[CREATED_AT]
    frame, rename_problems = _rename(raw, {v: k for k, v in names.items()}, file=file)
    problems.extend(rename_problems)

    columns = {LEAD_ID: pa.Column(nullable=False, unique=True)}
    for canonical in names:
        if canonical != LEAD_ID:
            columns[canonical] = pa.Column(nullable=False)
    rules = _ColumnRules(columns, file=file, names=names)
    rules.check_header(frame)
    rules.check_rows(frame)  # whole: ids must be unique across the table
    problems.extend(rules.problems())
    if LEAD_ID in frame.columns:
        frame[LEAD_ID] = ids_to_str(frame[LEAD_ID])
    if CREATED_AT in frame.columns and CREATED_AT not in rules.missing:
        times = _TimestampFindings(file=file, user_col=names[CREATED_AT], now=now)
        frame[CREATED_AT] = times.check(frame[CREATED_AT])
        problems.extend(times.problems())
    if LABEL in frame.columns:
        label, label_problems = _label_problems(
            frame[LABEL], params, file=file, user_col=names[LABEL]
        )
        problems.extend(label_problems)
        if label is not None and label.notna().all():
            frame[LABEL] = label.astype("int8")
    plan = plan_attributes(frame, params, file=file)
    warnings.extend(plan.warnings)
    problems.extend(plan.problems)
    return apply_plan(frame, plan), plan


# --------------------------------------------------------------------------------------------
# Loading


@dataclass
class _Checked:
    raw: RawData
    n_events: int


def _check_tables(
    params: DataParams, *, root: Path, now: pd.Timestamp | None, scan_events: bool, batch_rows: int
) -> _Checked:
    """Check every table; the events are loaded whole, or scanned in batches and not kept."""
    root = Path(root)
    now = pd.Timestamp.now(tz="UTC") if now is None else pd.Timestamp(now)
    now = now.tz_localize("UTC") if now.tzinfo is None else now.tz_convert("UTC")
    problems: list[str] = []
    warnings: list[str] = []
    leads, plan = _load_leads(params, root, now, problems, warnings)
    known = (
        _KnownLeads(leads, file=str(root / params.leads))
        if leads is not None and LEAD_ID in leads.columns
        else None
    )
    checked: list[_ChildChecks] = []
    tables: dict[str, pd.DataFrame | None] = {"events": None, "outcomes": None}
    n_events = 0
    if params.format == "contract":
        kinds: tuple[ChildKind, ...] = ("events", "outcomes")
        for kind in kinds:
            path = params.events if kind == "events" else params.outcomes
            if not path:
                continue
            checks = _ChildChecks(kind, file=str(root / path), params=params, now=now, leads=known)
            if kind == "events" and scan_events:
                read = _scan_child(
                    checks,
                    root / path,
                    problems,
                    batch_rows=batch_rows,
                    sep=params.sep,
                    encoding=params.encoding,
                )
            else:
                tables[kind] = _load_child(
                    checks, root / path, problems, sep=params.sep, encoding=params.encoding
                )
                read = tables[kind] is not None
            if read and checks.complete:
                checked.append(checks)
            if kind == "events":
                n_events = checks.rows
            logger.debug("%s: %d rows", kind, checks.rows)
    for checks in checked:  # after every table's own problems, as the leads come first
        problem = checks.unknown_lead_problem()
        if problem:
            problems.append(problem)
        warning = checks.before_created_warning()
        if warning:
            warnings.append(warning)
    if problems:
        raise DataValidationError(problems)
    assert leads is not None and plan is not None  # no problems means the leads were read
    for warning in warnings:
        logger.warning("%s", warning)
    raw = RawData(
        leads=leads,
        events=tables["events"],
        outcomes=tables["outcomes"],
        attribute_types=dict(plan.types),
        datetime_columns=plan.datetime_columns,
        warnings=warnings,
    )
    return _Checked(raw=raw, n_events=n_events)


def load_raw(
    params: DataParams, *, root: Path = Path("."), now: pd.Timestamp | None = None
) -> RawData:
    """Read, validate and normalise the raw tables; DataValidationError lists EVERY problem.

    Paths in ``params`` are relative to ``root``; ``now`` (default: the current UTC time) bounds
    timestamps. Flat exports read only the leads table.
    """
    return _check_tables(
        params, root=root, now=now, scan_events=False, batch_rows=DEFAULT_BATCH_ROWS
    ).raw


def _require_two_classes(
    label: pd.Series,
    outcomes: pd.DataFrame,
    params: DataParams,
    *,
    root: Path,
    target_stage: str,
) -> None:
    """Refuse outcomes in which no lead, or every lead, reaches the target stage."""
    n_pos, n = int(label.sum()), len(label)
    if 0 < n_pos < n:
        return
    stages = ", ".join(
        f"{stage} ({count} rows)"
        for stage, count in outcomes[STAGE].value_counts(sort=True).items()
    )
    who = "none" if n_pos == 0 else "every one"
    raise DataValidationError(
        [
            f"{root / str(params.outcomes)}: column '{params.stage_column}': the label has one "
            f"class: {who} of the {n} leads reaches '{target_stage}' or a later stage (stages "
            f"found: {stages or 'none'}); a model needs converted and non-converted leads: "
            f"set featurize.target_stage to a stage these outcomes hold, or export the "
            f"outcomes with every lead's stage changes"
        ]
    )


def validate(
    params: DataParams,
    *,
    root: Path = Path("."),
    now: pd.Timestamp | None = None,
    target_stage: str = "won",
    batch_rows: int = DEFAULT_BATCH_ROWS,
) -> ValidationReport:
    """Check the raw data and look for leaking columns (the ``validate`` stage).

    The checks and messages are those of :func:`load_raw`, but the events are read out of core:
    only their required columns, ``batch_rows`` rows at a time, so memory is bounded by a batch
    plus the leads and outcomes (about one row per lead), whatever the number of events. For the
    contract format the leakage label is "ever reaches ``target_stage``". The caller decides what
    to do with the flags (``leakage.raise_if_strict``).
    """
    checked = _check_tables(params, root=root, now=now, scan_events=True, batch_rows=batch_rows)
    raw = checked.raw
    outcome_time: pd.Series | None = None
    if raw.outcomes is not None:
        label = ever_reached(raw.outcomes, raw.leads, target_stage)
        _require_two_classes(label, raw.outcomes, params, root=root, target_stage=target_stage)
        outcome_time = reached_at(raw.outcomes, raw.leads, target_stage)
    elif LABEL in raw.leads.columns:
        label = raw.leads[LABEL]
    else:  # pragma: no cover - load_raw guarantees one of the two
        label = pd.Series(np.nan, index=raw.leads.index)
    flags = detect_leakage(
        raw.leads,
        label,
        raw.attribute_types,
        params,
        outcome_time=outcome_time,
        datetime_columns=raw.datetime_columns,
    )
    review = review_post_contact(
        raw.leads, label, raw.attribute_types, skip=sorted({flag.column for flag in flags})
    )
    return ValidationReport(
        n_leads=len(raw.leads),
        n_events=checked.n_events,
        n_outcomes=0 if raw.outcomes is None else len(raw.outcomes),
        label_rate=float(label.mean()) if len(label) else None,
        attribute_types=dict(raw.attribute_types),
        datetime_columns=list(raw.datetime_columns),
        warnings=list(raw.warnings),
        leakage=flags,
        review=review,
    )
