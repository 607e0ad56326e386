"""The canonical form of the raw tables: column names, and the rules that bring cell values to it.

Ids become text, attribute values numbers or categories, missing-value markers nulls, and training
timestamps ``datetime64[us, UTC]`` truncated to whole seconds. Every rule works value by value, so
it gives the same result on a whole table or on any batch of its rows.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import pandas as pd

from predictive_scoring.features import normal_text
from predictive_scoring.timestamps import TRAINING, outside, read_seconds

__all__ = [
    "CREATED_AT",
    "EVENT_TYPE",
    "LABEL",
    "LEAD_ID",
    "STAGE",
    "TIMESTAMP_DTYPE",
    "TS",
    "apply_missing_values",
    "as_categorical",
    "as_numeric",
    "ids_to_str",
    "parse_timestamps",
]

LEAD_ID = "lead_id"
CREATED_AT = "created_at"
TS = "ts"
EVENT_TYPE = "event_type"
STAGE = "stage"
LABEL = "label"
TIMESTAMP_DTYPE = "datetime64[us, UTC]"


def _is_stringish(s: pd.Series) -> bool:
    return bool(pd.api.types.is_string_dtype(s.dtype) or s.dtype == object)


def apply_missing_values(frame: pd.DataFrame, missing_values: Sequence[str]) -> pd.DataFrame:
    """Turn the configured missing-value markers (case-insensitive, trimmed) into NA."""
    markers = {normal_text(m) for m in missing_values}
    if not markers:
        return frame
    out = frame.copy()
    for column in out.columns:
        s = out[column]
        if not _is_stringish(s):
            continue
        # Look at the distinct values only: fast on long, low-cardinality event tables.
        distinct = pd.Series(s.dropna().unique(), dtype="object")
        is_marker = distinct.map(lambda v: isinstance(v, str) and normal_text(v) in markers)
        if is_marker.any():
            out[column] = s.mask(s.isin(distinct[is_marker].tolist()))
    return out


def ids_to_str(s: pd.Series) -> pd.Series:
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
    """Training's policy of the one timestamp rule (:mod:`predictive_scoring.timestamps`): ISO
    8601 text or datetimes, never epoch numbers (ambiguous in an export: seconds, ms or us?),
    and no year before ``EARLIEST_YEAR``. Returns (UTC whole seconds, refused mask); the future
    is checked against the data's own clock by validate.
    """
    seconds, bad = read_seconds(values, numbers=TRAINING.numbers)
    early, _ = outside(seconds, policy=TRAINING, now=0)  # no skew in training: no future bound
    bad |= early
    seconds[bad] = np.nan
    stamps = pd.to_datetime(seconds, unit="s", utc=True).astype(TIMESTAMP_DTYPE)
    return pd.Series(stamps, index=values.index), pd.Series(bad, index=values.index)


def as_numeric(s: pd.Series) -> pd.Series:
    """Numbers as float64; text that is not a number becomes missing."""
    if pd.api.types.is_bool_dtype(s.dtype):
        return s.astype("float64")
    if pd.api.types.is_numeric_dtype(s.dtype):
        return s.astype("float64")
    return pd.to_numeric(s.astype("object"), errors="coerce").astype("float64")


def as_categorical(s: pd.Series) -> pd.Series:
    """Categories as text; whole-number floats written like ids (``ids_to_str``)."""
    if pd.api.types.is_numeric_dtype(s.dtype) and not pd.api.types.is_bool_dtype(s.dtype):
        return ids_to_str(s)
    return s.astype("str")
