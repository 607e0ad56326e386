"""The lean request path: JSON bytes straight into a columnar :class:`LeadBatch`, no models.

Pydantic validation of 1,000 leads x 50 events costs ~0.5 s (50,000 ``EventIn`` models) and the
conversion to ``LeadInput`` another ~0.2 s. :func:`parse_leads` decodes the body with msgspec
into typed structs (shapes and types checked in C while decoding), accepting only a strict subset
of what the pydantic models accept (timestamps as ``YYYY-MM-DDTHH:MM:SS[Z]`` or whole epoch
seconds, converted in one vectorised pass). Anything outside that subset, valid or not, returns
``None`` and the request takes the pydantic route, which produces today's responses and error
messages unchanged.

:class:`LeanScoreMiddleware` wires this in ahead of FastAPI's routing: the routes keep their
pydantic signatures (so OpenAPI documents the models) and answer whatever the lean path declines.
"""

from __future__ import annotations

import functools
import logging
import math
import time
from collections.abc import Collection, Sequence
from dataclasses import dataclass
from typing import Annotated

import msgspec
import numpy as np
from starlette.concurrency import run_in_threadpool
from starlette.responses import Response
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from predictive_scoring.features import parse_number
from predictive_scoring.jit import compiled
from predictive_scoring.online import LeadBatch
from predictive_scoring.serve.convert import result_dict
from predictive_scoring.serve.metrics import ServiceMetrics
from predictive_scoring.serve.responses import OrjsonResponse
from predictive_scoring.serve.security import route_path
from predictive_scoring.serve.settings import Settings
from predictive_scoring.serve.state import ModelHandle, ModelHolder

__all__ = ["LeanLeads", "LeanScoreMiddleware", "parse_epoch_seconds", "parse_leads", "warm_up"]

logger = logging.getLogger(__name__)

_REASONS_FLAGS: dict[bytes, bool] = {b"": True, b"reasons=true": True, b"reasons=false": False}
# Bodies up to this size (one lead, a few small ones) are scored on the event loop.
_INLINE_BYTES = 64 * 1024

_MAX_LEAD_ID = 256
_MAX_EVENT_TYPE = 200
# Whole epoch seconds up to 2286; pydantic reads larger numbers as milliseconds.
_MAX_EPOCH = 9_999_999_999
_DAYS_IN_MONTH = np.array([0, 31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31], dtype=np.int64)


@dataclass(frozen=True)
class LeanLeads:
    """Leads parsed by the lean path: the executor's batch and the lead ids in request order."""

    batch: LeadBatch
    lead_ids: list[str]


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


def _parse_texts(values: Sequence[str]) -> np.ndarray | None:
    """Epoch seconds of ``YYYY-MM-DDTHH:MM:SS`` texts with an optional ``Z`` (both UTC).

    The texts are joined into one ASCII buffer and read as an (n, width) byte matrix; lengths are
    checked first, so no text can shift into its neighbour's row.
    """
    lengths = set(map(len, values))
    if lengths != {19} and lengths != {20}:
        values = [v[:-1] if len(v) == 20 and v[-1] == "Z" else v for v in values]
        if set(map(len, values)) != {19}:
            return None
    try:
        buffer = "".join(values).encode("ascii")
    except UnicodeEncodeError:
        return None
    codes = np.frombuffer(buffer, dtype=np.uint8).reshape(len(values), -1)
    out = np.empty(len(values), dtype=np.int64)
    return out if _civil_seconds(codes, out) else None


def parse_epoch_seconds(values: Sequence[object]) -> np.ndarray | None:
    """Whole UTC epoch seconds (int64) of timestamps, or None if any is outside the lean subset.

    The subset: ``YYYY-MM-DDTHH:MM:SS`` with or without ``Z`` (no offset means UTC) and whole
    epoch seconds from 0 to 9,999,999,999. The values equal what the pydantic models give.
    """
    if not values:
        return np.empty(0, dtype=np.int64)
    kinds = set(map(type, values))
    if kinds == {str}:  # the usual case: no copies
        return _parse_texts(values)  # type: ignore[arg-type]
    if not kinds <= {str, int}:
        return None
    texts = [v for v in values if type(v) is str]
    ints = [v for v in values if type(v) is int]
    if any(not 0 <= v <= _MAX_EPOCH for v in ints):
        return None
    out = np.empty(len(values), dtype=np.int64)
    is_int = np.fromiter((type(v) is int for v in values), dtype=bool, count=len(values))
    out[is_int] = np.asarray(ints, dtype=np.int64)
    if texts:
        parsed = _parse_texts(texts)
        if parsed is None:
            return None
        out[~is_int] = parsed
    return out


def _numeric_ok(value: object) -> bool:
    """The service's numeric-input check: a text must parse to a finite number."""
    return type(value) is not str or math.isfinite(parse_number(value))


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
    if not body.isascii():
        try:  # msgspec skips ignored fields unchecked; the pydantic route refuses bad UTF-8
            body.decode("utf-8")
        except UnicodeDecodeError:
            return None
    try:
        leads = _BATCH_DECODER.decode(body).leads if batch else [_LEAD_DECODER.decode(body)]
    except (msgspec.DecodeError, RecursionError):
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
    # The events' and the leads' times in one parse and one bound check.
    stamps: list[object] = [e.ts for lead in leads for e in lead.events]
    n_events = len(stamps)
    stamps.extend([leads[row].as_of for row in as_of_rows])
    stamps.extend([leads[row].created_at for row in created_rows])
    seconds = parse_epoch_seconds(stamps)
    if seconds is None or (seconds.size and int(seconds.max()) > now + clock_skew):
        return None
    event_s, lead_s = seconds[:n_events], seconds[n_events:]
    as_of = np.full(n, now, dtype=np.int64)
    as_of[as_of_rows] = lead_s[: len(as_of_rows)]
    created = np.full(n, math.nan)
    created[created_rows] = lead_s[len(as_of_rows) :].astype(np.float64)
    lead_batch = LeadBatch(
        attributes={name: [lead.attributes.get(name) for lead in leads] for name in columns},
        as_of=as_of,
        created=created,
        event_lead=np.repeat(np.arange(n, dtype=np.int64), sizes),
        event_type=[e.event_type for lead in leads for e in lead.events],
        event_ts=event_s,
    )
    return LeanLeads(batch=lead_batch, lead_ids=lead_ids)


def warm_up() -> None:
    """Compile (or load from numba's cache) the timestamp parser before the first request."""
    if parse_epoch_seconds(["1970-01-01T00:00:00Z"] * 2) is None:
        raise RuntimeError("the lean timestamp parser rejects a valid timestamp")


def _score_body(
    body: bytes,
    *,
    batch: bool,
    reasons: bool,
    model: ModelHandle,
    settings: Settings,
    metrics: ServiceMetrics,
) -> Response | None:
    """The lean path end to end: parse, score and render, or None to take the pydantic route."""
    now = int(time.time())
    leads = parse_leads(
        body,
        batch=batch,
        now=now,
        max_batch=settings.max_batch,
        max_events=settings.max_events_per_lead,
        clock_skew=settings.clock_skew_seconds,
        numeric_inputs=model.numeric_inputs,
        columns=model.scorer.input_columns,
    )
    if leads is None:
        return None
    results = model.scorer.score_batch(
        leads.batch, leads.lead_ids, n_reasons=settings.n_reasons if reasons else 0
    )
    if batch:
        response = OrjsonResponse(
            {"model": model.ref, "results": [result_dict(r) for r in results]}
        )
    else:
        response = OrjsonResponse({**result_dict(results[0]), "model": model.ref})
    # Counted once the response exists, so a request that falls back is never counted twice.
    metrics.count_stages(r.stage for r in results)
    return response


def _header(scope: Scope, wanted: bytes) -> bytes | None:
    for name, value in scope["headers"]:
        if name == wanted:
            return bytes(value)
    return None


class LeanScoreMiddleware:
    """Answers ``POST /v1/score`` and ``/v1/score/batch`` straight from the lean path.

    Pure ASGI, installed inside the metrics and API-key middlewares (so requests are counted and
    keys checked as for every route) and outside FastAPI's routing, dependency and exception
    layers, which cost more than scoring one lead. Whatever it does not take (another route, a
    query other than ``reasons=true|false``, no ``Content-Length`` or one over the body limit, a
    body outside the lean subset, any error) goes on to the app with the body replayed, where the
    pydantic route scores it or explains the problem.
    """

    def __init__(
        self,
        app: ASGIApp,
        *,
        holder: ModelHolder,
        settings: Settings,
        metrics: ServiceMetrics,
        prefix: str = "/v1/score",
    ) -> None:
        self.app = app
        self.holder = holder
        self.settings = settings
        self.metrics = metrics
        self.routes = {prefix: False, f"{prefix}/batch": True}
        self._answered = metrics.lean.labels("answered")
        self._declined = metrics.lean.labels("declined")

    def _takes(self, scope: Scope) -> tuple[bool, bool] | None:
        """(batch, reasons) for a request this path can take, else None."""
        if scope["type"] != "http" or scope["method"] != "POST":
            return None
        batch = self.routes.get(route_path(scope))
        reasons = _REASONS_FLAGS.get(scope.get("query_string", b""))
        if batch is None or reasons is None or self.holder.current is None:
            return None
        kind = _header(scope, b"content-type")
        if kind is None or kind.split(b";", 1)[0].strip().lower() != b"application/json":
            return None
        length = _header(scope, b"content-length")
        if length is None or not length.isdigit() or int(length) > self.settings.max_body_bytes:
            return None
        return batch, reasons

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        taken = self._takes(scope)
        if taken is None:
            await self.app(scope, receive, send)
            return
        chunks: list[bytes] = []
        while True:
            message = await receive()
            if message["type"] != "http.request":  # the client went away
                return
            chunks.append(message.get("body", b""))
            if not message.get("more_body", False):
                break
        body = b"".join(chunks)
        response = None
        if body:
            model = self.holder.current
            assert model is not None  # checked in _takes; a reload only swaps in another
            score = functools.partial(
                _score_body,
                body,
                batch=taken[0],
                reasons=taken[1],
                model=model,
                settings=self.settings,
                metrics=self.metrics,
            )
            try:
                # One lead scores in about a millisecond: on the loop; bigger bodies in a thread.
                response = (
                    score() if len(body) <= _INLINE_BYTES else await run_in_threadpool(score)
                )
            except Exception:  # the pydantic route raises it again and maps it to a response
                logger.debug("lean path failed; the full route takes the request", exc_info=True)
                response = None
        if response is None:
            self._declined.inc()
            await self.app(scope, _replay(body, receive), send)
            return
        self._answered.inc()
        await response(scope, receive, send)


def _replay(body: bytes, receive: Receive) -> Receive:
    """A receive that hands over the already-read body once, then defers to the real one."""
    sent = False

    async def replay() -> Message:
        nonlocal sent
        if sent:
            return await receive()
        sent = True
        return {"type": "http.request", "body": body, "more_body": False}

    return replay
