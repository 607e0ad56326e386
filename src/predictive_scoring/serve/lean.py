"""The lean request path: JSON bytes straight into a columnar :class:`LeadBatch`, no models.

Pydantic validation of 1,000 leads x 50 events costs ~0.5 s (50,000 ``EventIn`` models) and the
conversion to ``LeadInput`` another ~0.2 s. :func:`parse_leads` decodes the body with msgspec
into typed structs (shapes and types checked in C while decoding), accepting only a strict subset
of what the pydantic models accept (timestamps as ``YYYY-MM-DDTHH:MM:SS[Z]`` or whole epoch
seconds, converted in one vectorised pass). Anything outside that subset, valid or not, returns
``None`` and the request takes the pydantic route, which produces today's responses and error
messages unchanged.

:class:`FastPathRoute` wires this in: the route keeps its pydantic signature (so OpenAPI documents
the models), and a registered fast handler answers first when it can.
"""

from __future__ import annotations

import math
import re
from collections.abc import Awaitable, Callable, Collection, Coroutine, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Annotated, Any

import msgspec
import numpy as np
from fastapi.routing import APIRoute
from starlette.requests import Request
from starlette.responses import Response

from predictive_scoring.online import LeadBatch

__all__ = [
    "FastHandler",
    "FastPathRoute",
    "LeanLeads",
    "fast_path",
    "is_json",
    "parse_epoch_seconds",
    "parse_leads",
    "reasons_flag",
]

FastHandler = Callable[[Request], Awaitable[Response | None]]

_MAX_LEAD_ID = 256
_MAX_EVENT_TYPE = 200
# Whole epoch seconds up to 2286; pydantic reads larger numbers as milliseconds.
_MAX_EPOCH = 9_999_999_999
_DIGIT_AT = np.array([0, 1, 2, 3, 5, 6, 8, 9, 11, 12, 14, 15, 17, 18])
_SEPARATORS = {4: ord("-"), 7: ord("-"), 10: ord("T"), 13: ord(":"), 16: ord(":")}
_ISO = re.compile(r"[0-9]{4}-[0-9]{2}-[0-9]{2}T[0-9]{2}:[0-9]{2}:[0-9]{2}Z?")
_EPOCH = datetime(1970, 1, 1)
_SECOND = timedelta(seconds=1)
# From this many timestamps on, one vectorised pass beats converting them one by one.
_VECTOR_MIN = 256
_DAYS_IN_MONTH = np.array([0, 31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31], dtype=np.int64)


@dataclass(frozen=True)
class LeanLeads:
    """Leads parsed by the lean path: the executor's batch and the lead ids in request order."""

    batch: LeadBatch
    lead_ids: list[str]


def _parse_texts(values: Sequence[object]) -> np.ndarray | None:
    """Epoch seconds of ``YYYY-MM-DDTHH:MM:SS`` texts with an optional ``Z`` (both UTC)."""
    n = len(values)
    arr = np.array(values)
    if arr.dtype.kind != "U" or arr.dtype.itemsize not in (19 * 4, 20 * 4):
        return None
    codes = arr.astype("U20").view(np.uint32).reshape(n, 20).astype(np.int64)
    if not ((codes[:, 19] == ord("Z")) | (codes[:, 19] == 0)).all():
        return None
    for pos, char in _SEPARATORS.items():
        if not (codes[:, pos] == char).all():
            return None
    d = codes[:, _DIGIT_AT] - ord("0")
    if not ((d >= 0) & (d <= 9)).all():
        return None
    year = d[:, 0] * 1000 + d[:, 1] * 100 + d[:, 2] * 10 + d[:, 3]
    month = d[:, 4] * 10 + d[:, 5]
    day = d[:, 6] * 10 + d[:, 7]
    hour = d[:, 8] * 10 + d[:, 9]
    minute = d[:, 10] * 10 + d[:, 11]
    second = d[:, 12] * 10 + d[:, 13]
    if not ((year >= 1) & (month >= 1) & (month <= 12) & (day >= 1)).all():
        return None
    leap = (year % 4 == 0) & ((year % 100 != 0) | (year % 400 == 0))
    last_day = _DAYS_IN_MONTH[month] + ((month == 2) & leap)
    if not ((day <= last_day) & (hour <= 23) & (minute <= 59) & (second <= 59)).all():
        return None
    # Days from the civil date (H. Hinnant's algorithm), exact for every proleptic Gregorian day.
    y = year - (month <= 2)
    era = y // 400
    yoe = y - era * 400
    doy = (153 * ((month + 9) % 12) + 2) // 5 + day - 1
    doe = yoe * 365 + yoe // 4 - yoe // 100 + doy
    days = era * 146_097 + doe - 719_468
    out: np.ndarray = days * 86_400 + hour * 3_600 + minute * 60 + second
    return out


def _one_epoch(value: object) -> int | None:
    """One timestamp of the lean subset in whole UTC epoch seconds, else None."""
    if type(value) is int:
        return value if 0 <= value <= _MAX_EPOCH else None
    if type(value) is not str or _ISO.fullmatch(value) is None or value[11:13] > "23":
        return None
    try:
        return (datetime.fromisoformat(value[:19]) - _EPOCH) // _SECOND
    except ValueError:  # out-of-range fields such as month 13 or second 60
        return None


def parse_epoch_seconds(values: Sequence[object]) -> np.ndarray | None:
    """Whole UTC epoch seconds (int64) of timestamps, or None if any is outside the lean subset.

    The subset: ``YYYY-MM-DDTHH:MM:SS`` with or without ``Z`` (no offset means UTC) and whole
    epoch seconds from 0 to 9,999,999,999. The values equal what the pydantic models give.
    Short lists are converted one by one (numpy's per-call cost dominates there).
    """
    n = len(values)
    if n < _VECTOR_MIN:
        seconds = [_one_epoch(v) for v in values]
        if None in seconds:
            return None
        return np.array(seconds, dtype=np.int64)
    kinds = set(map(type, values))
    if kinds == {str}:
        return _parse_texts(values)
    if not kinds <= {str, int}:
        return None
    is_int = np.fromiter((type(v) is int for v in values), dtype=bool, count=n)
    ints = [v for v in values if type(v) is int]
    if any(not 0 <= v <= _MAX_EPOCH for v in ints):
        return None
    out = np.empty(n, dtype=np.int64)
    out[is_int] = np.asarray(ints, dtype=np.int64)
    if not is_int.all():
        texts = _parse_texts([v for v in values if type(v) is str])
        if texts is None:
            return None
        out[~is_int] = texts
    return out


def _numeric_ok(value: object) -> bool:
    """The service's numeric-input check: a text must parse to a finite number."""
    if type(value) is not str:
        return True
    try:
        return math.isfinite(float(value))
    except ValueError:
        return False


# gc=False: decoded JSON holds no reference cycles, and 50,000 events per batch left untracked
# keep the cyclic collector from scanning them (a third of the decode time).
class _Event(msgspec.Struct, gc=False):
    """An event as the lean path takes it; other fields (url, channel, ...) are ignored."""

    event_type: Annotated[str, msgspec.Meta(min_length=1, max_length=_MAX_EVENT_TYPE)]
    ts: str | int


class _Lead(msgspec.Struct, forbid_unknown_fields=True, gc=False):
    lead_id: str | int
    attributes: dict[str, str | bool | int | float | None] = {}
    created_at: str | int | None = None
    as_of: str | int | None = None
    events: list[_Event] = []


class _Batch(msgspec.Struct, forbid_unknown_fields=True, gc=False):
    leads: list[_Lead]


# Typed decoders check shapes and types in C while decoding: no dict per event, no Python loop.
_LEAD_DECODER = msgspec.json.Decoder(_Lead)
_BATCH_DECODER = msgspec.json.Decoder(_Batch)


def parse_leads(
    body: bytes,
    *,
    batch: bool,
    now: int,
    max_batch: int,
    max_events: int,
    clock_skew: int,
    numeric_inputs: Collection[str],
    columns: Sequence[str],
) -> LeanLeads | None:
    """A ``LeadIn`` body (``batch=False``) or a ``BatchRequest`` body as a columnar batch.

    Returns None whenever the body is not plainly valid and within the limits (at most
    ``max_batch`` leads with unique ids, ``max_events`` events each, nothing later than
    ``now + clock_skew``); the caller then takes the pydantic route, which explains the problem.
    """
    if b"\\u0000" in body:  # a NUL would be invisible to the fixed-width timestamp check
        return None
    try:
        leads = _BATCH_DECODER.decode(body).leads if batch else [_LEAD_DECODER.decode(body)]
    except msgspec.DecodeError:
        return None
    n = len(leads)
    if not 1 <= n <= max_batch:
        return None
    lead_ids = [str(lead.lead_id) for lead in leads]
    if len(set(lead_ids)) != n or not all(1 <= len(i) <= _MAX_LEAD_ID for i in lead_ids):
        return None
    numeric = frozenset(numeric_inputs)
    for lead in leads:
        for name in numeric.intersection(lead.attributes):
            if not _numeric_ok(lead.attributes[name]):
                return None
    sizes = [len(lead.events) for lead in leads]
    if max(sizes) > max_events:
        return None
    as_of_rows = [row for row, lead in enumerate(leads) if lead.as_of is not None]
    created_rows = [row for row, lead in enumerate(leads) if lead.created_at is not None]
    event_ts: list[object] = [e.ts for lead in leads for e in lead.events]
    n_events, n_as_of = len(event_ts), len(as_of_rows)
    seconds = parse_epoch_seconds(
        event_ts
        + [leads[row].as_of for row in as_of_rows]
        + [leads[row].created_at for row in created_rows]
    )
    if seconds is None or (seconds.size and int(seconds.max()) > now + clock_skew):
        return None
    as_of = np.full(n, now, dtype=np.int64)
    as_of[as_of_rows] = seconds[n_events : n_events + n_as_of]
    created = np.full(n, math.nan)
    created[created_rows] = seconds[n_events + n_as_of :].astype(np.float64)
    lead_batch = LeadBatch(
        attributes={name: [lead.attributes.get(name) for lead in leads] for name in columns},
        as_of=as_of,
        created=created,
        event_lead=np.repeat(np.arange(n, dtype=np.int64), sizes),
        event_type=[e.event_type for lead in leads for e in lead.events],
        event_ts=seconds[:n_events],
    )
    return LeanLeads(batch=lead_batch, lead_ids=lead_ids)


def is_json(request: Request) -> bool:
    """Whether the request says its body is ``application/json`` (read from the raw headers)."""
    headers: list[tuple[bytes, bytes]] = request.scope["headers"]
    for name, value in headers:
        if name == b"content-type":
            return value.split(b";", 1)[0].strip().lower() == b"application/json"
    return False


def reasons_flag(request: Request) -> bool | None:
    """The ``reasons`` query flag when the query is empty or exactly ``reasons=true|false``."""
    query: bytes = request.scope.get("query_string", b"")
    flags: dict[bytes, bool] = {b"": True, b"reasons=true": True, b"reasons=false": False}
    return flags.get(query)


_FAST_PATHS: dict[Callable[..., Any], FastHandler] = {}


def fast_path(handler: FastHandler) -> Callable[[Callable[..., Any]], Callable[..., Any]]:
    """Register ``handler`` to answer first for the decorated endpoint (None: fall through)."""

    def register(endpoint: Callable[..., Any]) -> Callable[..., Any]:
        _FAST_PATHS[endpoint] = handler
        return endpoint

    return register


class FastPathRoute(APIRoute):
    """An APIRoute whose registered fast handler runs first; FastAPI's handler is the fallback.

    The fallback is the ordinary route (pydantic validation, dependencies, error responses), and
    it reads the same cached body, so a refused fast attempt changes nothing but the time taken.
    """

    def get_route_handler(self) -> Callable[[Request], Coroutine[Any, Any, Response]]:
        slow = super().get_route_handler()
        fast = _FAST_PATHS.get(self.endpoint)
        if fast is None:
            return slow

        async def handler(request: Request) -> Response:
            response = await fast(request)
            return response if response is not None else await slow(request)

        return handler
