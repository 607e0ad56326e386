"""The attribute-type plan of a leads table: numeric, categorical, datetime or dropped, per column.

Declared types (``data.numeric``, ``data.categorical``) win; otherwise a column is numeric when
nearly all its values parse as numbers, a datetime when nearly all parse as timestamps, and dropped
when it is entirely missing or looks like a row number or an identifier. Every decision that loses
information comes with a warning naming the file, the column and the fix.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Literal

import numpy as np
import pandas as pd

from predictive_scoring.canonical import (
    CREATED_AT,
    LABEL,
    LEAD_ID,
    as_categorical,
    as_numeric,
    parse_timestamps,
)
from predictive_scoring.config import DataParams
from predictive_scoring.read import row_examples

__all__ = [
    "AttributePlan",
    "AttributeType",
    "apply_plan",
    "infer_attribute_types",
    "plan_attributes",
]

AttributeType = Literal["numeric", "categorical"]

_NUMERIC_SHARE = 0.98  # a string column is numeric when this share of its values parse
_DATETIME_SHARE = 0.98
_ID_LIKE_MIN_ROWS = 20  # tiny frames are all-unique by chance; do not call their columns ids
_ID_WORDS = {"id", "no", "nr", "num", "number", "key", "ref", "#"}
_IN_TIME_ORDER = 0.98  # rank correlation with created_at of numbers handed out in time order


@dataclass(frozen=True)
class AttributePlan:
    """What becomes of each attribute column, the warnings about the choices, and the problems
    that stop the data (a column declared numeric holding text)."""

    types: dict[str, AttributeType]
    datetime_columns: tuple[str, ...]
    dropped: dict[str, str]
    warnings: list[str]
    problems: list[str] = field(default_factory=list)


def _named_like_an_id(column: str) -> bool:
    """'Lead Number', 'lead_no', 'RecordID', 'ref #': the last word of the name says id."""
    words = re.findall(r"[A-Z]+(?![a-z])|[A-Z]?[a-z]+|\d+|#", column)
    return bool(words) and words[-1].lower() in _ID_WORDS


def _looks_like_row_id(
    x: pd.Series, ratio: float, *, column: str = "", created: pd.Series | None = None
) -> bool:
    """Integer values, (nearly) one per row, and one more sign of a lead number: sorted, a dense
    range, a name that says id or number, or values that rise with the creation time (numbers
    handed out in order, the rows exported in another order)."""
    kept = x.dropna()
    values = kept.to_numpy(dtype="float64")
    n = len(values)
    if n < _ID_LIKE_MIN_ROWS or not np.all(values == np.round(values)):
        return False
    if len(np.unique(values)) / n < ratio:
        return False
    monotonic = bool(np.all(np.diff(values) >= 0) or np.all(np.diff(values) <= 0))
    dense = (values.max() - values.min() + 1) <= n / ratio
    if monotonic or dense or _named_like_an_id(column):
        return True
    if created is None:
        return False
    when = created.reindex(kept.index)
    both = when.notna().to_numpy()
    if both.sum() < _ID_LIKE_MIN_ROWS:
        return False
    rank_x = pd.Series(values[both]).rank().to_numpy()
    rank_t = pd.Series(when[both].to_numpy()).rank().to_numpy()
    return bool(np.corrcoef(rank_x, rank_t)[0, 1] >= _IN_TIME_ORDER)


def _infinite(s: pd.Series, parsed: pd.Series, *, file: str, column: str) -> list[str]:
    """A problem naming the rows whose number is beyond a float (1e400 reads as infinity)."""
    huge = np.isinf(parsed.to_numpy(dtype="float64", na_value=np.nan))
    if not huge.any():
        return []
    return [
        f"{file}: column '{column}': {int(huge.sum())} number(s) are too large for a float "
        f"(beyond 1.8e308) or infinite, e.g. {row_examples(s, huge)}; fix these values or "
        f"leave them empty"
    ]


def _reserved(params: DataParams) -> set[str]:
    reserved = {LEAD_ID, CREATED_AT, LABEL}
    if params.email_column:
        reserved.add(params.email_column)
    return reserved


def plan_attributes(leads: pd.DataFrame, params: DataParams, *, file: str) -> AttributePlan:
    """The plan for every attribute column of canonical ``leads`` (read from ``file``)."""
    types: dict[str, AttributeType] = {}
    datetimes: list[str] = []
    dropped: dict[str, str] = {}
    warnings: list[str] = []
    problems: list[str] = []
    forced_num, forced_cat = set(params.numeric), set(params.categorical)
    created = leads[CREATED_AT] if CREATED_AT in leads.columns else None
    if created is not None and not pd.api.types.is_datetime64_any_dtype(created.dtype):
        created = None  # not parsed (refused): no time order to compare with
    for column in leads.columns:
        if column in _reserved(params):
            continue
        s = leads[column]
        non_missing = s.dropna()
        n = len(non_missing)
        # The features read the head-count column as a number, as they read a declared one.
        counted = column == params.employees_column and column not in forced_cat and n > 0
        if column in forced_num or counted:
            parsed = as_numeric(s)
            bad = parsed.isna() & s.notna()
            if bad.any():
                why = (
                    "declared numeric (data.numeric)"
                    if column in forced_num
                    else ("the head-count column (data.employees_column), read as a number")
                )
                problems.append(
                    f"{file}: column '{column}' is {why} but {int(bad.sum())} row(s) hold text "
                    f"that is not a number, e.g. {row_examples(s, bad)}; fix these values, "
                    f"add the marker to data.missing_values, or list the column in "
                    f"data.categorical"
                )
            problems += _infinite(s, parsed, file=file, column=column)
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
            if _looks_like_row_id(s, params.id_like_unique_ratio, column=column, created=created):
                dropped[column] = "row-number-like"
                warnings.append(
                    f"{file}: column '{column}' looks like a row number or id (integer, one "
                    f"value per row) and was dropped; list it in data.numeric to keep it"
                )
                continue
            problems += _infinite(s, as_numeric(s), file=file, column=column)
            types[column] = "numeric"
            continue
        parsed = as_numeric(non_missing)
        share = float(parsed.notna().mean())
        if share >= _NUMERIC_SHARE:
            if _looks_like_row_id(
                parsed, params.id_like_unique_ratio, column=column, created=created
            ):
                dropped[column] = "row-number-like"
                warnings.append(
                    f"{file}: column '{column}' looks like a row number or id (integer, one "
                    f"value per row) and was dropped; list it in data.numeric to keep it"
                )
                continue
            if share < 1.0:
                bad = as_numeric(s).isna() & s.notna()
                warnings.append(
                    f"{file}: column '{column}' is numeric but {int(bad.sum())} value(s) are not "
                    f"numbers and were set to missing, e.g. {row_examples(s, bad)}; list it in "
                    f"data.categorical to keep it as text"
                )
            problems += _infinite(s, as_numeric(s), file=file, column=column)
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
    return AttributePlan(types, tuple(datetimes), dropped, warnings, problems)


def infer_attribute_types(
    leads: pd.DataFrame, params: DataParams
) -> tuple[dict[str, AttributeType], list[str]]:
    """Numeric or categorical for each attribute column of canonical ``leads``, with warnings.

    Dropped columns (id-like, entirely missing) and datetime columns are left out of the types.
    """
    plan = plan_attributes(leads, params, file=params.leads)
    return plan.types, plan.warnings


def apply_plan(leads: pd.DataFrame, plan: AttributePlan) -> pd.DataFrame:
    """``leads`` with the dropped columns gone and every kept column in its planned type."""
    out = leads.drop(columns=list(plan.dropped))
    for column, kind in plan.types.items():
        out[column] = as_numeric(out[column]) if kind == "numeric" else as_categorical(out[column])
    for column in plan.datetime_columns:
        out[column], _ = parse_timestamps(out[column])
    return out
