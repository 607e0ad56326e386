"""The one timestamp rule: one reader, two named policies (serving and training).

Every path that reads a time (the service, the file scorer, the pyfunc, training's validate and
featurize) calls :func:`read_seconds` and checks the result with :func:`out_of_bounds` under its
:class:`TimePolicy`; nothing else parses a timestamp.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime

import numpy as np
import pandas as pd

from predictive_scoring.jit import compiled

__all__ = [
    "EARLIEST",
    "EARLIEST_YEAR",
    "MILLISECONDS_ABOVE",
    "SERVING",
    "TIME_FIX",
    "TRAINING",
    "TimePolicy",
    "iso",
    "out_of_bounds",
    "outside",
    "read_seconds",
    "seconds_of_numbers",
    "warm_up",
]

# A numeric timestamp over this magnitude is milliseconds (JavaScript's Date.now(), many CRMs).
MILLISECONDS_ABOVE = 2e10
# No lead, event or snapshot time lies before this year: an earlier one is a unit error (seconds
# read as milliseconds), a CRM's zero date (epoch 0, 0001-01-01) or a typing error.
EARLIEST_YEAR = 1990
EARLIEST = int(datetime(EARLIEST_YEAR, 1, 1, tzinfo=UTC).timestamp())
TIME_FIX = "use ISO 8601 such as 2025-03-01T12:00:00Z or epoch seconds"


@dataclass(frozen=True)
class TimePolicy:
    """How a path reads timestamps: which forms it takes and how far ahead of now they may lie."""

    name: str
    numbers: bool
    skew_seconds: int | None


SERVING = TimePolicy("serving", numbers=True, skew_seconds=300)
TRAINING = TimePolicy("training", numbers=False, skew_seconds=None)


def seconds_of_numbers(values: np.ndarray) -> np.ndarray:
    """Whole epoch seconds (floored) of numeric timestamps: seconds, or milliseconds when the
    magnitude is over :data:`MILLISECONDS_ABOVE`."""
    v = np.asarray(values, dtype=np.float64)
    return np.floor(np.where(np.abs(v) > MILLISECONDS_ABOVE, v / 1000.0, v))


_DAYS_IN_MONTH = np.array([0, 31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31], dtype=np.int64)


@compiled
def _civil_seconds(codes: np.ndarray, out: np.ndarray) -> bool:
    """Fill ``out`` with the epoch seconds of each row of ASCII codes; False if any row is not
    exactly ``YYYY-MM-DDTHH:MM:SS`` (plus ``Z`` in a 20th column) with in-range fields."""
    n, width = codes.shape
    zero = 48
    for i in range(n):
        row = codes[i]
        if width == 20 and row[19] != 90:  # "Z"
            return False
        if row[4] != 45 or row[7] != 45 or row[10] != 84 or row[13] != 58 or row[16] != 58:
            return False
        for j in (0, 1, 2, 3, 5, 6, 8, 9, 11, 12, 14, 15, 17, 18):
            if row[j] < zero or row[j] > zero + 9:
                return False
        year = (
            (row[0] - zero) * 1000 + (row[1] - zero) * 100 + (row[2] - zero) * 10 + row[3] - zero
        )
        month = (row[5] - zero) * 10 + row[6] - zero
        day = (row[8] - zero) * 10 + row[9] - zero
        hour = (row[11] - zero) * 10 + row[12] - zero
        minute = (row[14] - zero) * 10 + row[15] - zero
        second = (row[17] - zero) * 10 + row[18] - zero
        if year < 1 or month < 1 or month > 12 or day < 1:
            return False
        leap = year % 4 == 0 and (year % 100 != 0 or year % 400 == 0)
        last_day = _DAYS_IN_MONTH[month] + (1 if month == 2 and leap else 0)
        if day > last_day or hour > 23 or minute > 59 or second > 59:
            return False
        # Days from the civil date (H. Hinnant's algorithm), exact for every Gregorian day.
        y = year - (1 if month <= 2 else 0)
        era = y // 400
        yoe = y - era * 400
        doy = (153 * ((month + 9) % 12) + 2) // 5 + day - 1
        doe = yoe * 365 + yoe // 4 - yoe // 100 + doy
        days = era * 146_097 + doe - 719_468
        out[i] = days * 86_400 + hour * 3_600 + minute * 60 + second
    return True


def _text_seconds(texts: Sequence[str]) -> np.ndarray | None:
    """Epoch seconds of ``YYYY-MM-DDTHH:MM:SS`` texts with an optional ``Z``, or None.

    The texts are joined into one ASCII buffer read as an (n, width) byte matrix; lengths are
    checked first, so no text can shift into its neighbour's row.
    """
    lengths = set(map(len, texts))
    if lengths != {19} and lengths != {20}:
        texts = [t[:-1] if len(t) == 20 and t[-1] == "Z" else t for t in texts]
        if set(map(len, texts)) != {19}:
            return None
    try:
        buffer = "".join(texts).encode("ascii")
    except UnicodeEncodeError:
        return None
    codes = np.frombuffer(buffer, dtype=np.uint8).reshape(len(texts), -1)
    out = np.empty(len(texts), dtype=np.int64)
    return out if _civil_seconds(codes, out) else None


def _fast_seconds(values: Sequence[object]) -> np.ndarray | None:
    """The common case at C speed: ``YYYY-MM-DDTHH:MM:SS[Z]`` texts, whole epoch seconds and
    missing values.

    Only a speed-up of :func:`read_seconds`: it returns None for anything else (floats, offsets,
    fractions, milliseconds), and its values equal the general reader's.
    """
    kinds = set(map(type, values))
    if kinds == {str}:  # the usual request: no masks to build
        parsed = _text_seconds(values)  # type: ignore[arg-type]
        return None if parsed is None else parsed.astype(np.float64)
    if not kinds <= {str, int, type(None)}:
        return None
    out = np.full(len(values), math.nan)
    if int in kinds:
        ints = [v for v in values if type(v) is int]
        if any(not 0 <= v <= 9_999_999_999 for v in ints):
            return None
        is_int = np.fromiter((type(v) is int for v in values), dtype=bool, count=len(values))
        out[is_int] = np.asarray(ints, dtype=np.float64)
    if str in kinds:
        parsed = _text_seconds([v for v in values if type(v) is str])
        if parsed is None:
            return None
        out[np.fromiter((type(v) is str for v in values), bool, count=len(values))] = parsed
    return out


def _is_number(value: object) -> bool:
    return isinstance(value, int | float | np.integer | np.floating) and not isinstance(
        value, bool | np.bool_
    )


def _general_seconds(values: pd.Series, *, numbers: bool) -> tuple[np.ndarray, np.ndarray]:
    """(seconds, unreadable) for any column: NaN where missing; ``unreadable`` marks the rest."""
    n = len(values)
    out = np.full(n, math.nan)
    bad = np.zeros(n, dtype=bool)
    if isinstance(values.dtype, pd.DatetimeTZDtype) or pd.api.types.is_datetime64_dtype(
        values.dtype
    ):
        stamps = pd.to_datetime(values, utc=True)
        ok = stamps.notna().to_numpy()
        out[ok] = stamps[ok].dt.tz_convert(None).to_numpy(dtype="datetime64[s]").astype(np.int64)
        return out, bad
    if pd.api.types.is_numeric_dtype(values) and not pd.api.types.is_bool_dtype(values):
        x = values.to_numpy(dtype=np.float64, na_value=np.nan)
        if numbers:
            return seconds_of_numbers(x), ~np.isfinite(x) & ~np.isnan(x)
        return out, ~np.isnan(x)
    obj = values.astype(object)
    missing = obj.isna().to_numpy()
    texts_only = pd.api.types.infer_dtype(obj, skipna=True) in ("string", "empty")
    if texts_only:  # the usual CSV column: no Python-level type checks per value
        numeric = np.zeros(n, dtype=bool)
    else:
        numeric = np.fromiter(map(_is_number, obj), dtype=bool, count=n) & ~missing
    if numeric.any():
        x = obj.to_numpy()[numeric].astype(np.float64)
        if numbers:
            out[numeric] = seconds_of_numbers(x)
        bad[numeric] = ~np.isfinite(x) | (not numbers)
    stamp = np.zeros(n, dtype=bool)
    if not texts_only:
        stamp = np.fromiter((isinstance(v, datetime | pd.Timestamp) for v in obj), bool, count=n)
    if stamp.any():
        got = pd.to_datetime(obj[stamp], utc=True)
        out[stamp] = got.dt.tz_convert(None).to_numpy(dtype="datetime64[s]").astype(np.int64)
    rest = ~(missing | numeric | stamp)
    if not rest.any():
        return out, bad
    at = np.flatnonzero(rest)
    texts = obj.iloc[at].map(lambda v: v.decode() if isinstance(v, bytes) else str(v))
    stripped = texts.str.strip()
    blank = (stripped == "").to_numpy()
    # A number written as text is a number: CSV cells arrive as text, and '20250301' or '-1'
    # would otherwise be taken for ISO dates. ISO date-times have a 'T', '-' between digits or ':'.
    spelled = (stripped.str.strip("0123456789+-.eE") == "").to_numpy() & ~blank
    if spelled.any():
        x = pd.to_numeric(stripped[spelled], errors="coerce").to_numpy(dtype=np.float64)
        found = np.isfinite(x)
        if numbers:
            out[at[spelled][found]] = seconds_of_numbers(x[found])
        bad[at[spelled][found]] = not numbers
        spelled[np.flatnonzero(spelled)[~found]] = False  # '2025-03-01': a date, read below
    iso = ~spelled & ~blank
    if iso.any():
        parsed = pd.to_datetime(stripped[iso], utc=True, errors="coerce", format="ISO8601")
        ok = parsed.notna().to_numpy()
        rows = at[iso]
        out[rows[ok]] = (
            parsed[ok].dt.tz_convert(None).to_numpy(dtype="datetime64[s]").astype(np.int64)
        )
        bad[rows[~ok]] = True
    return out, bad


def read_seconds(
    values: Sequence[object] | pd.Series, *, numbers: bool = True
) -> tuple[np.ndarray, np.ndarray]:
    """Whole UTC epoch seconds (float64, floored, NaN where missing) and a mask of unreadable
    values.

    Texts are ISO 8601 (no offset means UTC); numbers, and texts made of number characters, are
    epoch seconds or, above :data:`MILLISECONDS_ABOVE`, milliseconds (only when ``numbers``).
    """
    if not isinstance(values, pd.Series):
        fast = _fast_seconds(values) if numbers else None
        if fast is not None:
            return fast, np.zeros(len(values), dtype=bool)
        values = pd.Series(list(values), dtype=object)
    return _general_seconds(values, numbers=numbers)


def warm_up() -> None:
    """Compile (or load from numba's cache) the timestamp kernel before the first request."""
    if _fast_seconds(["1970-01-01T00:00:00Z", "1970-01-01T00:00:01"]) is None:
        raise RuntimeError("the timestamp kernel rejects a valid timestamp")


def iso(seconds: float) -> str:
    """``seconds`` as ISO 8601 in UTC, for messages; a time no date can hold (outside the years
    1 to 9999, as an epoch number sent as a timestamp may be) as its epoch seconds."""
    try:
        return datetime.fromtimestamp(seconds, UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
    except (ValueError, OverflowError, OSError):
        return f"epoch second {seconds:.0f}"


def outside(seconds: np.ndarray, *, policy: TimePolicy, now: int) -> tuple[np.ndarray, np.ndarray]:
    """Masks of the times a policy refuses: (before :data:`EARLIEST_YEAR`, later than now plus
    the policy's clock skew). Missing times (NaN) are in neither."""
    early = seconds < EARLIEST  # NaN compares False, without a warning
    if policy.skew_seconds is None:
        return early, np.zeros(seconds.shape, dtype=bool)
    return early, seconds > now + policy.skew_seconds


def out_of_bounds(
    seconds: np.ndarray, *, policy: TimePolicy, now: int
) -> tuple[int, str, str] | None:
    """The first time the policy refuses, as (index, kind, why), or None when all are in bounds."""
    early, late = outside(seconds, policy=policy, now=now)
    if early.any():
        i = int(np.flatnonzero(early)[0])
        why = (
            f"{iso(seconds[i])} lies before {EARLIEST_YEAR}; check the value and its unit "
            "(epoch seconds or milliseconds)"
        )
        return i, "timestamp_range", why
    if late.any():
        i = int(np.flatnonzero(late)[0])
        return (
            i,
            "future_timestamp",
            f"{iso(seconds[i])} lies in the future (server time {iso(now)})",
        )
    return None
