"""POST /v1/outcomes: stage changes from the CRM, kept in the outcome store.

The route reads the body itself after the key check (strangers cannot make us parse it); the
pydantic models below only decode and describe it, and :mod:`predictive_scoring.outcomes` owns
every rule and the store's idempotence.
"""

from __future__ import annotations

import time
from typing import Annotated, Any

from fastapi import APIRouter, Request
from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    StrictFloat,
    StrictInt,
    StrictStr,
    TypeAdapter,
    WithJsonSchema,
)
from starlette.concurrency import run_in_threadpool

from predictive_scoring.outcomes import (
    MAX_ID_LENGTH,
    MAX_REASON_LENGTH,
    STAGES,
    check_outcomes,
    outcomes_from_items,
    store_outcomes,
)
from predictive_scoring.serve.decode import json_body, validate_json
from predictive_scoring.serve.deps import OutcomesOnly, ServiceSettings
from predictive_scoring.serve.responses import OrjsonResponse
from predictive_scoring.serve.schemas import error_responses
from predictive_scoring.serve.settings import Settings

__all__ = ["OutcomeIn", "OutcomesRequest", "OutcomesResponse", "router"]

_EXAMPLE: dict[str, Any] = {
    "outcomes": [
        {"lead_id": "L-10293", "stage": "sql", "ts": "2025-03-06T09:00:00Z"},
        {
            "lead_id": "L-10293",
            "stage": "sql_rejected",
            "ts": "2025-03-07T15:30:00Z",
            "reason": "no budget",
        },
    ]
}


# Decoding only: the values go as sent to predictive_scoring.outcomes.check_outcomes.
class OutcomeIn(BaseModel):
    """One stage change of one lead."""

    model_config = ConfigDict(allow_inf_nan=False, extra="forbid")

    # Any JSON number is decoded (14.0 is JSON Schema's integer 14); outcomes owns the id rule.
    lead_id: Annotated[
        StrictStr | StrictInt | StrictFloat,
        WithJsonSchema({"anyOf": [{"type": "string"}, {"type": "integer"}]}),
    ] = Field(
        description=f"The CRM's id, as scored; 1 to {MAX_ID_LENGTH} characters or a whole number."
    )
    stage: StrictStr = Field(
        description=f"One of {', '.join(STAGES)} (case and surrounding spaces aside): the data "
        "contract's stages, and sales accepting or rejecting an SQL.",
        examples=["sql_rejected"],
    )
    ts: StrictStr | StrictInt | StrictFloat = Field(
        description="When the stage changed: ISO 8601 (UTC when no offset) or epoch seconds (a "
        "number over 2e10 is milliseconds); not in the future, not before 1990.",
        examples=["2025-03-07T15:30:00Z"],
    )
    reason: StrictStr | None = Field(
        default=None,
        description=f"Why (at most {MAX_REASON_LENGTH} characters): why sales rejected or "
        "accepted an SQL, why a deal was lost.",
        examples=["no budget"],
    )


class OutcomesRequest(BaseModel):
    """A batch of stage changes, up to ``max_batch``; stored all or nothing."""

    model_config = ConfigDict(
        allow_inf_nan=False, extra="forbid", json_schema_extra={"examples": [_EXAMPLE]}
    )

    outcomes: list[OutcomeIn]


class OutcomesResponse(BaseModel):
    """What the store did with the batch: idempotent on (lead_id, stage, ts)."""

    model_config = ConfigDict(
        json_schema_extra={"examples": [{"received": 2, "stored": 1, "already_known": 1}]}
    )

    received: int
    stored: int = Field(description="Rows new to the store, written now.")
    already_known: int = Field(
        description="Rows whose (lead_id, stage, ts) the store held already or that repeated an "
        "earlier row of the batch; nothing was written for them."
    )


_REQUEST: TypeAdapter[OutcomesRequest] = TypeAdapter(OutcomesRequest)


def _inlined(schema: Any, defs: dict[str, Any]) -> Any:
    """``schema`` with its ``#/$defs/...`` references replaced by the definitions, so that the
    OpenAPI document can hold it without a component of its own."""
    if isinstance(schema, dict):
        ref = schema.get("$ref", "")
        if ref.startswith("#/$defs/"):
            return _inlined(defs[ref.removeprefix("#/$defs/")], defs)
        return {k: _inlined(v, defs) for k, v in schema.items() if k != "$defs"}
    if isinstance(schema, list):
        return [_inlined(v, defs) for v in schema]
    return schema


_REQUEST_SCHEMA = OutcomesRequest.model_json_schema()
_REQUEST_SCHEMA = _inlined(_REQUEST_SCHEMA, _REQUEST_SCHEMA.get("$defs", {}))

router = APIRouter(prefix="/outcomes", tags=["outcomes"], dependencies=[OutcomesOnly])


def _decode(body: bytes) -> list[dict[str, Any]]:
    request = validate_json(_REQUEST, body)
    return [item.model_dump() for item in request.outcomes]


def _store(body: bytes, settings: Settings) -> dict[str, int]:
    table = check_outcomes(
        outcomes_from_items(_decode(body)),
        now=int(time.time()),
        skew_seconds=settings.clock_skew_seconds,
        max_rows=settings.max_batch,
        source="api",
    )
    done = store_outcomes(settings.log_store, table)
    return {"received": done.received, "stored": done.stored, "already_known": done.already_known}


@router.post(
    "",
    response_model=OutcomesResponse,
    responses=error_responses(
        400,
        401,
        403,
        413,
        415,
        422,
        descriptions={
            403: "Not an outcome key or an admin key",
            422: 'A bad row; loc names it (["body", "outcomes", 3, "ts"]); nothing of the batch '
            "was stored",
        },
    ),
    summary="Record stage changes (sales acceptance and rejection included)",
    openapi_extra={
        "requestBody": {
            "required": True,
            "content": {"application/json": {"schema": _REQUEST_SCHEMA}},
        }
    },
)
async def post_outcomes(request: Request, settings: ServiceSettings) -> OrjsonResponse:
    """Check every row, then store the ones the store does not hold yet, as one part.

    Posting the same batch again stores nothing and answers with every row ``already_known``.
    """
    body = await json_body(request)
    # Reading the store and writing a Parquet part block: off the event loop.
    return OrjsonResponse(await run_in_threadpool(_store, body, settings))
