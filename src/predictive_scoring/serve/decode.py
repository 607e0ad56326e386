"""JSON bodies to :class:`~predictive_scoring.ingress.RawLeads`: decoding only, no rules.

msgspec decodes a well-formed body into typed structs in C (shapes and types checked while
decoding, no dict per event). When it declines, the pydantic models of
:mod:`predictive_scoring.serve.schemas` decode the body again, to explain the problem the way
FastAPI does, or to take a valid body msgspec does not. Either way the values go on, as they
were sent, to :func:`predictive_scoring.ingress.admit`, which owns every rule.
"""

from __future__ import annotations

import json
from typing import Annotated, Any, TypeVar

import msgspec
from fastapi import Request
from fastapi.exceptions import RequestValidationError
from pydantic import TypeAdapter, ValidationError

from predictive_scoring.errors import RequestProblem
from predictive_scoring.ingress import FieldMap, Origin, RawLeads, raw_from_objects
from predictive_scoring.scoring import ScoreResult
from predictive_scoring.serve.schemas import BatchRequest, LeadIn

__all__ = ["decode_leads", "json_body", "result_dict", "validate_json"]

T = TypeVar("T")

_Time = str | int | float


# gc=False: decoded JSON holds no reference cycles, and 50,000 events per batch left untracked
# keep the cyclic collector from scanning them (a third of the decode time).
class _Event(msgspec.Struct, gc=False):
    """An event as decoded; other fields (url, channel, ...) are skipped."""

    event_type: str
    ts: _Time


class _Lead(msgspec.Struct, forbid_unknown_fields=True, gc=False):
    lead_id: str | int | float  # the ingress reads 14.0 as the id 14 and refuses 1.5
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


def _renamed(body: bytes, *, batch: bool, fields: FieldMap) -> bytes:
    """The body with the CRM's field names renamed by the ingress's map. The standard library's
    JSON keeps numbers as sent (a huge integer too); a body that is not strict JSON (NaN) is
    left for the decoders to refuse."""
    try:
        value = json.loads(body, parse_constant=_not_json)
    except ValueError:
        return body
    if not batch:
        return _dumps(fields.record(value))
    if isinstance(value, dict) and isinstance(value.get("leads"), list):
        leads = value["leads"]
        value = {
            **value,
            "leads": [fields.record(v, loc=["body", "leads", i]) for i, v in enumerate(leads)],
        }
    return _dumps(value)


def _not_json(constant: str) -> None:
    raise ValueError(f"{constant} is not JSON")


def _dumps(value: object) -> bytes:
    return json.dumps(value, ensure_ascii=False, allow_nan=False).encode()


def decode_leads(body: bytes, *, batch: bool, fields: FieldMap | None = None) -> RawLeads:
    """A ``LeadIn`` body (``batch=False``) or a ``BatchRequest`` body, values as sent; with
    ``fields``, a lead may use the CRM's names (:meth:`FieldMap.record` renames them).

    Raises :class:`RequestProblem` (400) for a body that is not JSON, and
    :class:`RequestValidationError` (FastAPI's 422 shape) for JSON of the wrong shape.
    """
    if fields:
        body = _renamed(body, batch=batch, fields=fields)
    leads = _fast(body, batch=batch)
    if leads is None:
        leads = (
            list(validate_json(_BATCH_MODEL, body).leads)
            if batch
            else [validate_json(_LEAD_MODEL, body)]
        )
    return raw_from_objects(leads, origin=Origin(source="body", batch=batch), fields=fields)


def validate_json(model: TypeAdapter[T], body: bytes) -> T:
    """A body through a pydantic model: 400 when it is not JSON, FastAPI's 422 when the JSON
    does not have the model's shape (``loc`` starting with ``"body"``)."""
    try:
        return model.validate_json(body)
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


async def json_body(request: Request) -> bytes:
    """The request's body, refused with a 415 naming the type unless it is application/json."""
    kind = request.headers.get("content-type", "")
    if kind.split(";", 1)[0].strip().lower() != "application/json":
        raise RequestProblem(
            ["header", "Content-Type"],
            f"the body must be application/json, got {kind[:60]!r}",
            "unsupported_media_type",
            status_code=415,
        )
    return await request.body()


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
