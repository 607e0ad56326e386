"""Request models to :class:`LeadInput` and score results to plain dicts (no pandas, no features).

Only checks that need the settings or the loaded model live here; everything else is in the
pydantic schemas. Every problem raises :class:`RequestProblem` naming the field.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from datetime import UTC, datetime, timedelta
from typing import Any

from predictive_scoring.features import parse_number
from predictive_scoring.scoring import LeadInput, ScoreResult
from predictive_scoring.serve.schemas import LeadIn
from predictive_scoring.serve.settings import Settings

__all__ = ["RequestProblem", "epoch_seconds", "result_dict", "to_lead_input"]

_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_SECOND = timedelta(seconds=1)


class RequestProblem(Exception):
    """A request the service refuses; ``loc`` names the field as FastAPI validation does."""

    def __init__(
        self, loc: Sequence[str | int], msg: str, kind: str, *, status_code: int = 422
    ) -> None:
        self.loc = list(loc)
        self.msg = msg
        self.kind = kind
        self.status_code = status_code
        super().__init__(msg)


def epoch_seconds(value: datetime) -> int:
    """Whole UTC epoch seconds, floored like the batch executor's ``datetime64[s]``."""
    return (value - _EPOCH) // _SECOND


def _iso(seconds: int) -> str:
    return datetime.fromtimestamp(seconds, UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def _not_future(
    value: datetime | None, loc: list[str | int], latest: int, *, hint: str = ""
) -> int | None:
    """Epoch seconds of an optional timestamp, refused when it lies after ``latest``."""
    if value is None:
        return None
    seconds = epoch_seconds(value)
    if seconds > latest:
        raise RequestProblem(
            loc, f"{loc[-1]} {_iso(seconds)} lies in the future{hint}", "future_timestamp"
        )
    return seconds


def _check_numeric(name: str, value: object, loc: list[str | int]) -> None:
    if value is None or isinstance(value, bool | int | float):
        return
    if not math.isfinite(parse_number(str(value))):
        raise RequestProblem(
            [*loc, "attributes", name],
            f"attribute '{name}' is numeric; send a finite number, got {value!r}",
            "float_parsing",
        )


def to_lead_input(
    lead: LeadIn,
    *,
    now: int,
    settings: Settings,
    numeric_inputs: frozenset[str],
    loc: list[str | int],
) -> LeadInput:
    """Check a validated lead against the limits and the model's numeric inputs."""
    latest = now + settings.clock_skew_seconds
    if len(lead.events) > settings.max_events_per_lead:
        raise RequestProblem(
            [*loc, "events"],
            f"{len(lead.events)} events; at most {settings.max_events_per_lead} per lead "
            "(send the most recent ones)",
            "too_long",
        )
    for name in numeric_inputs.intersection(lead.attributes):
        _check_numeric(name, lead.attributes[name], loc)
    as_of = _not_future(lead.as_of, [*loc, "as_of"], latest, hint="; omit it to score as of now")
    created_s = _not_future(lead.created_at, [*loc, "created_at"], latest)
    created = None if created_s is None else float(created_s)
    events: list[tuple[str, int]] = []
    for i, event in enumerate(lead.events):
        ts = epoch_seconds(event.ts)
        if ts > latest:
            raise RequestProblem(
                [*loc, "events", i, "ts"],
                f"event at {_iso(ts)} lies in the future (server time {_iso(now)})",
                "future_timestamp",
            )
        events.append((event.event_type, ts))
    return LeadInput(
        lead_id=lead.lead_id,
        attributes=lead.attributes,
        events=events,
        created_at=created,
        as_of=as_of,
    )


def result_dict(result: ScoreResult) -> dict[str, Any]:
    """One result in the shape of :class:`~predictive_scoring.serve.schemas.ScoreItem`.

    The :class:`Reason` dataclasses are left as they are: orjson serialises dataclasses natively,
    which is several times faster than building a dict per reason.
    """
    return {
        "lead_id": result.lead_id,
        "probability": result.probability,
        "score": result.score,
        "stage": result.stage,
        "grade": result.grade,
        "reasons": {"positive": result.positive, "negative": result.negative},
    }
