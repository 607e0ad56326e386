"""JSON bodies to :class:`~predictive_scoring.ingress.RawLeads`: decoding only, no rules.

msgspec decodes a well-formed body into typed structs in C (shapes and types checked while
decoding, no dict per event). When it declines, the pydantic models of
:mod:`predictive_scoring.serve.schemas` decode the body again, to explain the problem the way
FastAPI does, or to take a valid body msgspec does not. Either way the values go on, as they
were sent, to :func:`predictive_scoring.ingress.admit`, which owns every rule.
"""

from __future__ import annotations

from typing import Annotated, Any

import msgspec
from fastapi.exceptions import RequestValidationError
from pydantic import TypeAdapter, ValidationError

from predictive_scoring.errors import RequestProblem
from predictive_scoring.ingress import Origin, RawLeads, raw_from_objects
from predictive_scoring.scoring import ScoreResult
from predictive_scoring.serve.schemas import BatchRequest, LeadIn

__all__ = ["decode_leads", "result_dict"]

_Time = str | int | float


# gc=False: decoded JSON holds no reference cycles, and 50,000 events per batch left untracked
# keep the cyclic collector from scanning them (a third of the decode time).
class _Event(msgspec.Struct, gc=False):
    """An event as decoded; other fields (url, channel, ...) are skipped."""

    event_type: str
    ts: _Time


class _Lead(msgspec.Struct, forbid_unknown_fields=True, gc=False):
    lead_id: str | int
    attributes: dict[str, str | bool | int | float | None] = {}
    created_at: _Time | None = None
    as_of: _Time | None = None
    events: list[_Event] = []


class _Batch(msgspec.Struct, forbid_unknown_fields=True, gc=False):
    leads: Annotated[list[_Lead], msgspec.Meta(min_length=1)]


_LEAD = msgspec.json.Decoder(_Lead)
_BATCH = msgspec.json.Decoder(_Batch)
_LEAD_MODEL: TypeAdapter[LeadIn] = TypeAdapter(LeadIn)
_BATCH_MODEL: TypeAdapter[BatchRequest] = TypeAdapter(BatchRequest)


def _fast(body: bytes, *, batch: bool) -> list[Any] | None:
    if not body.isascii():
        try:  # msgspec skips ignored fields unchecked; the pydantic models refuse bad UTF-8
            body.decode("utf-8")
        except UnicodeDecodeError:
            return None
    try:
        return _BATCH.decode(body).leads if batch else [_LEAD.decode(body)]
    except (msgspec.DecodeError, RecursionError):
        return None


def decode_leads(body: bytes, *, batch: bool) -> RawLeads:
    """A ``LeadIn`` body (``batch=False``) or a ``BatchRequest`` body, values as sent.

    Raises :class:`RequestProblem` (400) for a body that is not JSON, and
    :class:`RequestValidationError` (FastAPI's 422 shape) for JSON of the wrong shape.
    """
    origin = Origin(source="body", batch=batch)
    leads = _fast(body, batch=batch)
    if leads is None:
        try:
            if batch:
                leads = list(_BATCH_MODEL.validate_json(body).leads)
            else:
                leads = [_LEAD_MODEL.validate_json(body)]
        except ValidationError as exc:
            errors = [{**e, "loc": ("body", *e.get("loc", ()))} for e in exc.errors()]
            if errors[0].get("type") == "json_invalid":
                raise RequestProblem(
                    ["body"],
                    f"the body is not valid JSON: {errors[0]['msg']}",
                    "json_invalid",
                    status_code=400,
                ) from None
            raise RequestValidationError(errors) from None
    return raw_from_objects(leads, origin=origin)


def result_dict(result: ScoreResult) -> dict[str, Any]:
    """One result in the shape of :class:`~predictive_scoring.serve.schemas.ScoreItem`.

    Dataclasses (reasons, warnings) are left as they are: orjson serialises them natively,
    several times faster than a dict each.
    """
    return {
        "lead_id": result.lead_id,
        "probability": result.probability,
        "score": result.score,
        "stage": result.stage,
        "grade": result.grade,
        "reasons": {"positive": result.positive, "negative": result.negative},
        "warnings": result.warnings,
    }
