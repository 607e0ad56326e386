"""The raw-data contract (DESIGN section 2): read, validate and normalise leads, events, outcomes.

``load_raw`` checks every table, collects every problem and raises one DataValidationError listing
them all (file, column, example rows, fix). On success it returns canonical frames: configured
column names renamed to ``lead_id``, ``created_at``, ``ts``, ``event_type``, ``stage``, ``label``;
ids as strings; timestamps as ``datetime64[us, UTC]`` truncated to whole seconds.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import numpy as np
import pandas as pd
import pandera.pandas as pa

from predictive_scoring.config import STAGES, DataParams
from predictive_scoring.errors import DataValidationError
from predictive_scoring.leakage import LeakageFlag, detect_leakage, ever_reached, reached_at

__all__ = [
    "CREATED_AT",
    "EVENT_TYPE",
    "LABEL",
    "LEAD_ID",
    "STAGE",
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

LEAD_ID = "lead_id"
CREATED_AT = "created_at"
TS = "ts"
EVENT_TYPE = "event_type"
STAGE = "stage"
LABEL = "label"
TIMESTAMP_DTYPE = "datetime64[us, UTC]"

AttributeType = Literal["numeric", "categorical"]

_MAX_EXAMPLES = 5
_NUMERIC_SHARE = 0.98  # a string column is numeric when this share of its values parse
_DATETIME_SHARE = 0.98
_ID_LIKE_MIN_ROWS = 20  # tiny frames are all-unique by chance; do not call their columns ids
_MIN_PLAUSIBLE_YEAR = 1900


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
    """What the ``validate`` stage writes: sizes, attribute types, warnings and leakage flags."""

    n_leads: int
    n_events: int
    n_outcomes: int
    label_rate: float | None
    attribute_types: dict[str, AttributeType]
    datetime_columns: list[str]
    warnings: list[str]
    leakage: list[LeakageFlag]

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
        }


# --------------------------------------------------------------------------------------------
# Small helpers for messages


def _fmt(value: Any) -> str:
    text = str(value)
    return repr(text[:40] + "..." if len(text) > 40 else text)


def _row_examples(values: pd.Series, mask: pd.Series | np.ndarray) -> str:
    """'data row 3 '2024-13-01', data row 9 'abc'' for the first few rows where mask is true."""
    hits = values[np.asarray(mask, dtype=bool)].head(_MAX_EXAMPLES)
    return ", ".join(f"data row {int(i) + 1} {_fmt(v)}" for i, v in hits.items())


def _value_examples(values: Iterable[Any]) -> str:
    out: list[str] = []
    for v in values:
        if len(out) == _MAX_EXAMPLES:
            break
        out.append(_fmt(v))
    return ", ".join(out)


# --------------------------------------------------------------------------------------------
# Reading


def read_table(path: Path, *, na_values: Sequence[str] = ("",)) -> pd.DataFrame:
    """Read a parquet or CSV table by extension, with a RangeIndex.

    CSV cells are read as strings (ids keep their leading zeros; types are inferred later) and
    only ``na_values`` count as missing. Raises DataValidationError if missing or unreadable.
    """
    path = Path(path)
    name = path.name.lower()
    if not path.exists():
        raise DataValidationError(
            [f"{path}: file not found; check the path in the data section of params.yaml"]
        )
    try:
        if name.endswith((".parquet", ".pq")):
            frame = pd.read_parquet(path)
        elif name.endswith((".csv", ".csv.gz", ".csv.zip", ".csv.bz2")):
            frame = pd.read_csv(path, dtype=str, keep_default_na=False, na_values=list(na_values))
        else:
            raise DataValidationError([f"{path}: unknown file type; use a .parquet or .csv file"])
    except DataValidationError:
        raise
    except Exception as exc:  # any reader error means the same thing to the user
        raise DataValidationError(
            [
                f"{path}: cannot be read ({type(exc).__name__}: {exc}); export it again as "
                f"parquet or UTF-8 CSV with a header row"
            ]
        ) from exc
    return frame.reset_index(drop=True)


# --------------------------------------------------------------------------------------------
# Normalisation helpers


def _is_stringish(s: pd.Series) -> bool:
    return bool(pd.api.types.is_string_dtype(s.dtype) or s.dtype == object)


def _apply_missing_values(frame: pd.DataFrame, missing_values: Sequence[str]) -> pd.DataFrame:
    """Turn the configured missing-value markers (case-insensitive, trimmed) into NA."""
    markers = {m.strip().lower() for m in missing_values}
    if not markers:
        return frame
    out = frame.copy()
    for column in out.columns:
        s = out[column]
        if not _is_stringish(s):
            continue
        # Look at the distinct values only: fast on long, low-cardinality event tables.
        distinct = pd.Series(s.dropna().unique(), dtype="object")
        is_marker = distinct.map(lambda v: isinstance(v, str) and v.strip().lower() in markers)
        if is_marker.any():
            out[column] = s.mask(s.isin(distinct[is_marker].tolist()))
    return out


def _ids_to_str(s: pd.Series) -> pd.Series:
    """Values as strings; whole-number floats (ids read from parquet with gaps) lose the '.0'.

    Value by value, as :func:`predictive_scoring.features.category_text` does online.
    """
    if not pd.api.types.is_float_dtype(s.dtype):
        return s.astype("str")
    x = s.to_numpy(dtype="float64", na_value=np.nan)
    whole = np.isfinite(x) & (x == np.round(x)) & (np.abs(x) < 2.0**63)
    out = s.astype("str")
    if whole.any():
        out[whole] = [str(v) for v in x[whole].astype(np.int64).tolist()]
    return out


def parse_timestamps(values: pd.Series) -> tuple[pd.Series, pd.Series]:
    """Parse to UTC whole seconds (naive means UTC). Returns (parsed, unparseable mask)."""
    s = values
    if isinstance(s.dtype, pd.DatetimeTZDtype):
        out = s.dt.tz_convert("UTC")
    elif pd.api.types.is_datetime64_dtype(s.dtype):
        out = s.dt.tz_localize("UTC")
    elif pd.api.types.is_numeric_dtype(s.dtype) or pd.api.types.is_bool_dtype(s.dtype):
        # Epoch numbers are ambiguous (s, ms, us): refuse them rather than guess.
        out = pd.Series(pd.NaT, index=s.index, dtype=TIMESTAMP_DTYPE)
    else:
        text = s.astype("str")
        out = pd.to_datetime(text, errors="coerce", utc=True, format="ISO8601")
        retry = out.isna() & text.notna() & text.str.contains(r"\d", regex=True)
        if retry.any():
            out = out.astype(TIMESTAMP_DTYPE)
            out[retry] = pd.to_datetime(
                text[retry], errors="coerce", utc=True, format="mixed"
            ).astype(TIMESTAMP_DTYPE)
        # A number written as text ('1700000000', '20250301') is an epoch number too, refused
        # like the numbers above; the scoring paths read such a text as epoch seconds.
        bare = text.str.strip()
        spelled = (bare != "") & (bare.str.strip("0123456789+-.eE") == "")
        if spelled.any():
            numbers = pd.to_numeric(bare[spelled], errors="coerce")
            out = out.astype(TIMESTAMP_DTYPE).mask(numbers.reindex(out.index).notna())
    out = out.astype(TIMESTAMP_DTYPE)
    implausible = out.notna() & (out.dt.year < _MIN_PLAUSIBLE_YEAR)
    out = out.mask(implausible).dt.floor("s")
    bad = values.notna() & out.isna()
    return out, bad


def _as_numeric(s: pd.Series) -> pd.Series:
    if pd.api.types.is_bool_dtype(s.dtype):
        return s.astype("float64")
    if pd.api.types.is_numeric_dtype(s.dtype):
        return s.astype("float64")
    return pd.to_numeric(s.astype("object"), errors="coerce").astype("float64")


def _as_categorical(s: pd.Series) -> pd.Series:
    if pd.api.types.is_numeric_dtype(s.dtype) and not pd.api.types.is_bool_dtype(s.dtype):
        return _ids_to_str(s)
    return s.astype("str")


def _looks_like_row_id(x: pd.Series, ratio: float) -> bool:
    """Integer values, (nearly) one per row, and either sorted or a dense range: a row number."""
    values = x.dropna().to_numpy(dtype="float64")
    n = len(values)
    if n < _ID_LIKE_MIN_ROWS or not np.all(values == np.round(values)):
        return False
    if len(np.unique(values)) / n < ratio:
        return False
    monotonic = bool(np.all(np.diff(values) >= 0) or np.all(np.diff(values) <= 0))
    dense = (values.max() - values.min() + 1) <= n / ratio
    return monotonic or dense


# --------------------------------------------------------------------------------------------
# Attribute types


@dataclass(frozen=True)
class _AttributePlan:
    types: dict[str, AttributeType]
    datetime_columns: tuple[str, ...]
    dropped: dict[str, str]
    warnings: list[str]


def _reserved(params: DataParams) -> set[str]:
    reserved = {LEAD_ID, CREATED_AT, LABEL}
    if params.email_column:
        reserved.add(params.email_column)
    return reserved


def _plan_attributes(leads: pd.DataFrame, params: DataParams, *, file: str) -> _AttributePlan:
    types: dict[str, AttributeType] = {}
    datetimes: list[str] = []
    dropped: dict[str, str] = {}
    warnings: list[str] = []
    forced_num, forced_cat = set(params.numeric), set(params.categorical)
    for column in leads.columns:
        if column in _reserved(params):
            continue
        s = leads[column]
        non_missing = s.dropna()
        n = len(non_missing)
        if column in forced_num:
            parsed = _as_numeric(s)
            lost = int(parsed.isna().sum() - s.isna().sum())
            if lost:
                warnings.append(
                    f"{file}: column '{column}' is declared numeric but {lost} value(s) are not "
                    f"numbers and were set to missing, e.g. "
                    f"{_row_examples(s, parsed.isna() & s.notna())}"
                )
            types[column] = "numeric"
            continue
        if column in forced_cat:
            types[column] = "categorical"
            continue
        if n == 0:
            dropped[column] = "entirely missing"
            warnings.append(f"{file}: column '{column}' is entirely missing and was dropped")
            continue
        if column == params.job_title_column:
            types[column] = "categorical"
            continue
        if isinstance(s.dtype, pd.DatetimeTZDtype) or pd.api.types.is_datetime64_dtype(s.dtype):
            datetimes.append(column)
            continue
        if pd.api.types.is_bool_dtype(s.dtype):
            types[column] = "numeric"
            continue
        if pd.api.types.is_numeric_dtype(s.dtype):
            if _looks_like_row_id(s, params.id_like_unique_ratio):
                dropped[column] = "row-number-like"
                warnings.append(
                    f"{file}: column '{column}' looks like a row number or id (integer, one "
                    f"value per row) and was dropped; list it in data.numeric to keep it"
                )
                continue
            types[column] = "numeric"
            continue
        parsed = _as_numeric(non_missing)
        share = float(parsed.notna().mean())
        if share >= _NUMERIC_SHARE:
            if _looks_like_row_id(parsed, params.id_like_unique_ratio):
                dropped[column] = "row-number-like"
                warnings.append(
                    f"{file}: column '{column}' looks like a row number or id (integer, one "
                    f"value per row) and was dropped; list it in data.numeric to keep it"
                )
                continue
            if share < 1.0:
                bad = _as_numeric(s).isna() & s.notna()
                warnings.append(
                    f"{file}: column '{column}' is numeric but {int(bad.sum())} value(s) are not "
                    f"numbers and were set to missing, e.g. {_row_examples(s, bad)}; list it in "
                    f"data.categorical to keep it as text"
                )
            types[column] = "numeric"
            continue
        as_time, _ = parse_timestamps(non_missing)
        if float(as_time.notna().mean()) >= _DATETIME_SHARE:
            datetimes.append(column)
            continue
        unique_ratio = non_missing.nunique() / n
        if n >= _ID_LIKE_MIN_ROWS and unique_ratio >= params.id_like_unique_ratio:
            dropped[column] = "id-like"
            warnings.append(
                f"{file}: column '{column}' looks like an identifier ({unique_ratio:.0%} of its "
                f"values are unique) and was dropped; list it in data.categorical to keep it"
            )
            continue
        types[column] = "categorical"
    return _AttributePlan(types, tuple(datetimes), dropped, warnings)


def infer_attribute_types(
    leads: pd.DataFrame, params: DataParams
) -> tuple[dict[str, AttributeType], list[str]]:
    """Numeric or categorical for each attribute column of canonical ``leads``, with warnings.

    Dropped columns (id-like, entirely missing) and datetime columns are left out of the types.
    """
    plan = _plan_attributes(leads, params, file=params.leads)
    return plan.types, plan.warnings


def _apply_plan(leads: pd.DataFrame, plan: _AttributePlan) -> pd.DataFrame:
    out = leads.drop(columns=list(plan.dropped))
    for column, kind in plan.types.items():
        out[column] = (
            _as_numeric(out[column]) if kind == "numeric" else _as_categorical(out[column])
        )
    for column in plan.datetime_columns:
        out[column], _ = parse_timestamps(out[column])
    return out


# --------------------------------------------------------------------------------------------
# Checks


_FIXES: dict[str, str] = {
    "column_in_dataframe": "add the column or set its name in the data section of params.yaml",
    "not_nullable": "fill in the value or remove these rows",
    "field_uniqueness": "keep one row per lead (deduplicate the export)",
    "isin": f"use one of {', '.join(STAGES)} (map your CRM stages to these)",
}


def _pandera_problems(
    frame: pd.DataFrame, schema: pa.DataFrameSchema, *, file: str, names: Mapping[str, str]
) -> tuple[list[str], set[str]]:
    """Run ``schema`` lazily and turn every failure into one line; also return missing columns.

    ``names`` maps canonical column names back to the user's names for the messages.
    """
    try:
        schema.validate(frame, lazy=True)
    except pa.errors.SchemaErrors as exc:
        cases = exc.failure_cases
    else:
        return [], set()
    problems: list[str] = []
    missing: set[str] = set()
    for (column, check), group in cases.groupby(["column", "check"], dropna=False, sort=False):
        check_name = str(check)
        if check_name == "column_in_dataframe":
            for canonical in group["failure_case"]:
                missing.add(str(canonical))
                have = ", ".join(map(str, list(frame.columns)[:10]))
                problems.append(
                    f"{file}: required column '{names.get(str(canonical), canonical)}' is "
                    f"missing (columns found: {have}); {_FIXES['column_in_dataframe']}"
                )
            continue
        user_col = names.get(str(column), str(column))
        if check_name == "not_nullable":
            rows = pd.to_numeric(group["index"], errors="coerce").dropna().astype(int)
            shown = ", ".join(str(r + 1) for r in rows.head(_MAX_EXAMPLES))
            problems.append(
                f"{file}: column '{user_col}': {len(rows)} row(s) are empty, e.g. data rows "
                f"{shown}; {_FIXES['not_nullable']}"
            )
        elif check_name == "field_uniqueness":
            dup_values = group["failure_case"]
            n_ids = dup_values.nunique()
            problems.append(
                f"{file}: column '{user_col}': {n_ids} id(s) appear more than once "
                f"({len(dup_values)} rows), e.g. {_value_examples(dup_values.unique())}; "
                f"{_FIXES['field_uniqueness']}"
            )
        elif check_name.startswith("isin"):
            values = group["failure_case"]
            rows = pd.to_numeric(group["index"], errors="coerce").dropna().astype(int)
            shown = ", ".join(str(r + 1) for r in rows.head(_MAX_EXAMPLES))
            problems.append(
                f"{file}: column '{user_col}': {len(values)} row(s) hold unknown values "
                f"{_value_examples(values.unique())} (data rows {shown}); {_FIXES['isin']}"
            )
        else:  # pragma: no cover - a pandera check we did not configure
            problems.append(f"{file}: column '{user_col}': failed {check_name}")
    return problems, missing


def _timestamp_problems(
    frame: pd.DataFrame, column: str, *, file: str, user_col: str, now: pd.Timestamp
) -> tuple[pd.Series, list[str]]:
    parsed, bad = parse_timestamps(frame[column])
    problems: list[str] = []
    if bad.any():
        problems.append(
            f"{file}: column '{user_col}': {int(bad.sum())} timestamp(s) cannot be parsed, e.g. "
            f"{_row_examples(frame[column], bad)}; write them as ISO 8601 "
            f"('2024-05-01T13:45:00Z'), naive times are read as UTC"
        )
    future = parsed > now
    if future.any():
        problems.append(
            f"{file}: column '{user_col}': {int(future.sum())} timestamp(s) lie in the future "
            f"(after {now.isoformat()}), e.g. {_row_examples(frame[column], future)}; fix the "
            f"clock or time zone of the export (timestamps must be UTC)"
        )
    return parsed, problems


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


def _unknown_lead_problem(
    frame: pd.DataFrame, known: pd.Series, *, file: str, user_col: str, leads_file: str
) -> str | None:
    unknown = ~frame[LEAD_ID].isin(known) & frame[LEAD_ID].notna()
    if not unknown.any():
        return None
    ids = frame.loc[unknown, LEAD_ID]
    return (
        f"{file}: column '{user_col}': {int(unknown.sum())} row(s) refer to {ids.nunique()} "
        f"lead id(s) not in {leads_file}, e.g. {_value_examples(ids.unique())}; export the "
        f"leads and this table from the same snapshot, or drop these rows"
    )


def _before_created_warning(
    frame: pd.DataFrame, created: pd.Series, *, file: str, what: str
) -> str | None:
    when = frame[LEAD_ID].map(created)
    early = frame[TS] < when
    if not early.any():
        return None
    return (
        f"{file}: {int(early.sum())} {what} happen before their lead's creation time (e.g. "
        f"lead ids {_value_examples(frame.loc[early, LEAD_ID].unique())}); they count from "
        f"the lead's creation on"
    )


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
                f"and 1, e.g. {_row_examples(s, bad)}; map it to 0/1 or to yes/no"
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
                f"{_value_examples(levels)}; add the value meaning 'converted' to "
                f"data.positive_values in params.yaml"
            ]
        if len(neg_levels) > 1 or len(pos_levels) > 1:
            return None, [
                f"{file}: label column '{user_col}' is not binary: values "
                f"{_value_examples(levels)} ({len(levels)} distinct); it needs one positive "
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
# Loading


def _read(path: str, root: Path, params: DataParams, problems: list[str]) -> pd.DataFrame | None:
    try:
        frame = read_table(root / path)
    except DataValidationError as exc:
        problems.extend(exc.problems)
        return None
    if frame.empty:
        problems.append(f"{root / path}: the table is empty (no rows); export it again")
        return None
    return _apply_missing_values(frame, params.missing_values)


def _load_leads(
    params: DataParams, root: Path, now: pd.Timestamp, problems: list[str], warnings: list[str]
) -> tuple[pd.DataFrame | None, _AttributePlan | None]:
    file = str(root / params.leads)
    raw = _read(params.leads, root, params, problems)
    if raw is None:
        return None, None
    excluded = [c for c in params.exclude_columns if c in raw.columns]
    for column in params.exclude_columns:
        if column not in raw.columns:
            warnings.append(f"{file}: data.exclude_columns names '{column}', which is not there")
    raw = raw.drop(columns=excluded)

    names = {LEAD_ID: params.id_column}
    if params.created_column:
        names[CREATED_AT] = params.created_column
    if params.format == "flat" and params.label_column:
        names[LABEL] = params.label_column
    flat = params.format == "flat"
    if flat and params.id_column not in raw.columns:
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
    table_problems, missing = _pandera_problems(
        frame, pa.DataFrameSchema(columns), file=file, names=names
    )
    problems.extend(table_problems)
    if LEAD_ID in frame.columns:
        frame[LEAD_ID] = _ids_to_str(frame[LEAD_ID])
    if CREATED_AT in frame.columns and CREATED_AT not in missing:
        frame[CREATED_AT], ts_problems = _timestamp_problems(
            frame, CREATED_AT, file=file, user_col=names[CREATED_AT], now=now
        )
        problems.extend(ts_problems)
    if LABEL in frame.columns:
        label, label_problems = _label_problems(
            frame[LABEL], params, file=file, user_col=names[LABEL]
        )
        problems.extend(label_problems)
        if label is not None and label.notna().all():
            frame[LABEL] = label.astype("int8")
    plan = _plan_attributes(frame, params, file=file)
    warnings.extend(plan.warnings)
    return _apply_plan(frame, plan), plan


def _load_child(
    kind: Literal["events", "outcomes"],
    path: str,
    params: DataParams,
    *,
    root: Path,
    now: pd.Timestamp,
    problems: list[str],
) -> pd.DataFrame | None:
    file = str(root / path)
    raw = _read(path, root, params, problems)
    if raw is None:
        return None
    if kind == "events":
        names = {
            LEAD_ID: params.id_column,
            TS: params.event_time_column,
            EVENT_TYPE: params.event_type_column,
        }
    else:
        names = {
            LEAD_ID: params.id_column,
            TS: params.outcome_time_column,
            STAGE: params.stage_column,
        }
    frame, rename_problems = _rename(raw, {v: k for k, v in names.items()}, file=file)
    problems.extend(rename_problems)
    if STAGE in frame.columns:
        frame[STAGE] = _as_categorical(frame[STAGE]).str.strip().str.lower()
    columns = {c: pa.Column(nullable=False) for c in names}
    if kind == "outcomes":
        columns[STAGE] = pa.Column(nullable=False, checks=pa.Check.isin(list(STAGES)))
    table_problems, missing = _pandera_problems(
        frame, pa.DataFrameSchema(columns), file=file, names=names
    )
    problems.extend(table_problems)
    if missing:
        return None
    frame[LEAD_ID] = _ids_to_str(frame[LEAD_ID])
    frame[TS], ts_problems = _timestamp_problems(frame, TS, file=file, user_col=names[TS], now=now)
    problems.extend(ts_problems)
    if EVENT_TYPE in frame.columns:
        frame[EVENT_TYPE] = _as_categorical(frame[EVENT_TYPE])
    if "amount" in frame.columns:
        frame["amount"] = _as_numeric(frame["amount"])
    return frame


def load_raw(
    params: DataParams, *, root: Path = Path("."), now: pd.Timestamp | None = None
) -> RawData:
    """Read, validate and normalise the raw tables; DataValidationError lists EVERY problem.

    Paths in ``params`` are relative to ``root``; ``now`` (default: the current UTC time) bounds
    timestamps. Flat exports read only the leads table.
    """
    root = Path(root)
    now = pd.Timestamp.now(tz="UTC") if now is None else pd.Timestamp(now)
    now = now.tz_localize("UTC") if now.tzinfo is None else now.tz_convert("UTC")
    problems: list[str] = []
    warnings: list[str] = []
    leads, plan = _load_leads(params, root, now, problems, warnings)
    events = outcomes = None
    if params.format == "contract":
        if params.events:
            events = _load_child(
                "events", params.events, params, root=root, now=now, problems=problems
            )
        if params.outcomes:
            outcomes = _load_child(
                "outcomes", params.outcomes, params, root=root, now=now, problems=problems
            )
    if leads is not None and LEAD_ID in leads.columns:
        leads_file = str(root / params.leads)
        unique_ids = leads[LEAD_ID].is_unique
        created = (
            leads.set_index(LEAD_ID)[CREATED_AT]
            if unique_ids and CREATED_AT in leads.columns
            else None
        )
        for kind, table, path, what in (
            ("events", events, params.events, "events"),
            ("outcomes", outcomes, params.outcomes, "outcome rows"),
        ):
            if table is None or path is None:
                continue
            problem = _unknown_lead_problem(
                table,
                leads[LEAD_ID],
                file=str(root / path),
                user_col=params.id_column,
                leads_file=leads_file,
            )
            if problem:
                problems.append(problem)
            if created is not None:
                warning = _before_created_warning(table, created, file=str(root / path), what=what)
                if warning:
                    warnings.append(warning)
            logger.debug("%s: %d rows", kind, len(table))
    if problems:
        raise DataValidationError(problems)
    assert leads is not None and plan is not None  # no problems means the leads were read
    for warning in warnings:
        logger.warning("%s", warning)
    return RawData(
        leads=leads,
        events=events,
        outcomes=outcomes,
        attribute_types=dict(plan.types),
        datetime_columns=plan.datetime_columns,
        warnings=warnings,
    )


def validate(
    params: DataParams,
    *,
    root: Path = Path("."),
    now: pd.Timestamp | None = None,
    target_stage: str = "won",
) -> ValidationReport:
    """Load and check the raw data and look for leaking columns (the ``validate`` stage).

    For the contract format the leakage label is "ever reaches ``target_stage``". The caller
    decides what to do with the flags (``leakage.raise_if_strict``).
    """
    raw = load_raw(params, root=root, now=now)
    outcome_time: pd.Series | None = None
    if raw.outcomes is not None:
        label = ever_reached(raw.outcomes, raw.leads, target_stage)
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
    return ValidationReport(
        n_leads=len(raw.leads),
        n_events=0 if raw.events is None else len(raw.events),
        n_outcomes=0 if raw.outcomes is None else len(raw.outcomes),
        label_rate=float(label.mean()) if len(label) else None,
        attribute_types=dict(raw.attribute_types),
        datetime_columns=list(raw.datetime_columns),
        warnings=list(raw.warnings),
        leakage=flags,
    )
