"""Request and response models of the scoring API, with examples for the /docs page."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any, Literal

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    StrictFloat,
    StrictInt,
    StrictStr,
    WithJsonSchema,
)

__all__ = [
    "AttributeValue",
    "BatchRequest",
    "BatchResponse",
    "ErrorItem",
    "ErrorResponse",
    "EventIn",
    "HealthResponse",
    "LeadIn",
    "ModelInfoResponse",
    "ModelRef",
    "ReadyResponse",
    "ReasonOut",
    "Reasons",
    "ReloadResponse",
    "ScoreItem",
    "ScoreResponse",
    "ThresholdsOut",
    "WarningOut",
    "error_responses",
]


# Decoding only: the values go as sent to predictive_scoring.ingress, which reads timestamps,
# checks ids, lengths and limits (one rule each), so these types state no rule of their own.
Timestamp = Annotated[
    StrictStr | StrictInt | StrictFloat,
    Field(
        description="ISO 8601 (UTC when no offset), or epoch seconds; a number over 2e10 is "
        "epoch milliseconds.",
        examples=["2025-03-04T08:01:00Z", 1741075260],
    ),
]
AttributeValue = str | bool | int | float | None
# Any JSON number is decoded: JSON Schema's integer includes 14.0, which the ingress reads as
# the id 14 (and a fraction it refuses), so the document declares text or an integer.
LeadId = Annotated[
    StrictStr | StrictInt | StrictFloat,
    WithJsonSchema({"anyOf": [{"type": "string"}, {"type": "integer"}]}),
    Field(description="The CRM's id; 1 to 256 characters or a whole number, unique per batch."),
]

_EXAMPLE_LEAD: dict[str, Any] = {
    "lead_id": "L-10293",
    "attributes": {
        "industry": "Software",
        "employees": 250,
        "country": "DE",
        "job_title": "VP Marketing",
        "email": "anna@example-gmbh.de",
        "lead_source": "webinar",
    },
    "created_at": "2025-03-01T09:30:00Z",
    "events": [
        {"event_type": "web_visit", "ts": "2025-03-02T10:00:00Z"},
        {"event_type": "pricing_page_view", "ts": "2025-03-03T14:12:00Z", "url": "/pricing"},
        {"event_type": "demo_request", "ts": "2025-03-04T08:01:00Z", "channel": "web"},
    ],
    "as_of": "2025-03-05T00:00:00Z",
}
_EXAMPLE_LINEAGE: dict[str, str] = {
    "definition_hash": "5f0c2a9e41d7",
    "thresholds_version": "a83b1c07e2f4",
    "data_hash": "c9355551ebb60f355d2dcad848e67311.dir",
}
_EXAMPLE_MODEL: dict[str, Any] = {
    "name": "lead-scoring",
    "version": "7",
    "thresholds": {"mql": 0.15, "sql": 0.4},
    **_EXAMPLE_LINEAGE,
}
_EXAMPLE_RESULT: dict[str, Any] = {
    "lead_id": "L-10293",
    "probability": 0.4712,
    "score": 47,
    "stage": "SQL",
    "grade": "A",
    "reasons": {
        "positive": [
            {
                "feature": "days_since_demo_request",
                "text": "requested a demo 1 day ago",
                "impact": 1.2034,
            },
            {
                "feature": "title_seniority",
                "text": "seniority from the job title: vp",
                "impact": 0.4121,
            },
        ],
        "negative": [
            {
                "feature": "email_is_free",
                "text": "uses a company e-mail domain",
                "impact": -0.0512,
            }
        ],
    },
}


class _Strict(BaseModel):
    model_config = ConfigDict(allow_inf_nan=False, extra="forbid")


class EventIn(BaseModel):
    """One engagement event; extra fields (channel, url, ...) are accepted and ignored."""

    model_config = ConfigDict(
        allow_inf_nan=False,
        extra="allow",
        json_schema_extra={
            "examples": [{"event_type": "demo_request", "ts": "2025-03-04T08:01:00Z"}]
        },
    )

    event_type: str = Field(
        examples=["web_visit"],
        description="An event type; unseen ones are ignored and reported in warnings.",
    )
    ts: Timestamp


class LeadIn(_Strict):
    """A lead to score: CRM attributes, optionally its events and the time to score it at."""

    model_config = ConfigDict(
        allow_inf_nan=False, extra="forbid", json_schema_extra={"examples": [_EXAMPLE_LEAD]}
    )

    lead_id: LeadId = Field(examples=["L-10293"])
    attributes: dict[str, AttributeValue] = Field(
        default_factory=dict,
        description="CRM fields by name. An input the model never saw missing (GET /v1/model, "
        "required_inputs) must be sent; an unseen category is scored as missing and reported "
        "in warnings; case and surrounding spaces do not matter.",
        examples=[_EXAMPLE_LEAD["attributes"]],
    )
    created_at: Timestamp | None = Field(default=None, examples=["2025-03-01T09:30:00Z"])
    events: list[EventIn] = Field(
        default_factory=list, description="Engagement events; only those before as_of count."
    )
    as_of: Timestamp | None = Field(
        default=None,
        description="Score the lead as it stood at this time (default: now); not in the future "
        "and not before created_at.",
        examples=["2025-03-05T00:00:00Z"],
    )


class BatchRequest(_Strict):
    """Up to ``max_batch`` leads scored in one vectorised pass; lead ids must be unique."""

    model_config = ConfigDict(
        allow_inf_nan=False,
        extra="forbid",
        json_schema_extra={"examples": [{"leads": [_EXAMPLE_LEAD]}]},
    )

    leads: list[LeadIn] = Field(min_length=1)


class ReasonOut(BaseModel):
    """One factor behind the score; impact in log-odds (positive raises the score)."""

    feature: str = Field(examples=["days_since_demo_request"])
    text: str = Field(examples=["requested a demo 1 day ago"])
    impact: float = Field(examples=[1.2034])


class Reasons(BaseModel):
    """The strongest factors for and against, at most ``n_reasons`` each."""

    positive: list[ReasonOut]
    negative: list[ReasonOut]


class ThresholdsOut(BaseModel):
    """The agreed probability cut-offs (DESIGN section 6)."""

    mql: float = Field(examples=[0.15])
    sql: float = Field(examples=[0.4])


class ModelRef(BaseModel):
    """The model version that produced a score."""

    model_config = ConfigDict(json_schema_extra={"examples": [_EXAMPLE_MODEL]})

    name: str
    version: str = Field(description="The registry version (models:/<name>/<version>).")
    thresholds: ThresholdsOut
    definition_hash: str = Field(
        default="", description="Hash of the feature definition the features were computed by."
    )
    thresholds_version: str = Field(
        default="", description="Hash of the MQL/SQL cut-offs that assigned the stage."
    )
    data_hash: str = Field(
        default="", description="DVC hash of the training data (the raw data folder)."
    )


class WarningOut(BaseModel):
    """An input the model never saw, and what was done with it."""

    field: str = Field(examples=["industry"])
    value: str = Field(examples=["Fintech"])
    action: str = Field(examples=["scored as missing: a value not seen in training"])


class ScoreItem(BaseModel):
    """The score of one lead."""

    model_config = ConfigDict(json_schema_extra={"examples": [_EXAMPLE_RESULT]})

    lead_id: str
    probability: float = Field(ge=0, le=1, description="Calibrated conversion probability.")
    score: int = Field(ge=1, le=99, description="The probability as a 1-99 score.")
    stage: Literal["SQL", "MQL", "nurture"]
    grade: Literal["A", "B", "C", "D"]
    reasons: Reasons
    warnings: list[WarningOut] = Field(
        default_factory=list, description="Unseen categories and event types in this lead."
    )


class ScoreResponse(ScoreItem):
    """The score of one lead and the model version that scored it."""

    model_config = ConfigDict(
        json_schema_extra={"examples": [{**_EXAMPLE_RESULT, "model": _EXAMPLE_MODEL}]}
    )

    model: ModelRef


class BatchResponse(BaseModel):
    """Scores in the order of the request, all from the one model version named."""

    model_config = ConfigDict(
        json_schema_extra={"examples": [{"model": _EXAMPLE_MODEL, "results": [_EXAMPLE_RESULT]}]}
    )

    model: ModelRef
    results: list[ScoreItem]


class ModelInfoResponse(BaseModel):
    """The loaded model: identity, metrics, cut-offs and inputs."""

    model_config = ConfigDict(
        protected_namespaces=(),
        json_schema_extra={
            "examples": [
                {
                    "name": "lead-scoring",
                    "version": "7",
                    "alias": "champion",
                    "source": "models:/lead-scoring@champion",
                    "why": "models:/lead-scoring@champion (version 7) from "
                    "sqlite:///srv/lead-scoring/mlflow.db: the project's MLflow store has a "
                    "@champion and no bundle is set",
                    "loaded_at": "2025-03-05T08:00:00Z",
                    "model_sha256": "b1913fd59f9a4b4b80a676147d205768"
                    "da0728503aa6d08daf3e51b0ead50355",
                    **_EXAMPLE_LINEAGE,
                    "metrics": {"test_roc_auc": 0.87, "test_brier": 0.061},
                    "thresholds": {"mql": 0.15, "sql": 0.4, "base_rate": 0.08},
                    "features": ["lead_age_days", "n_events_total", "industry"],
                    "categorical_features": ["industry"],
                    "event_types": ["demo_request", "web_visit"],
                    "attributes": {"industry": "categorical", "employees": "numeric"},
                    "required_inputs": ["created_at"],
                    "category_aliases": {"country": {"usa": "united states"}},
                }
            ]
        },
    )

    name: str
    version: str
    alias: str | None
    source: str | None = Field(
        default=None,
        description="Where the model was loaded from: models:/<name>@<alias> or a bundle folder.",
    )
    why: str | None = Field(
        default=None, description="Why this model is served: the source and what selected it."
    )
    loaded_at: datetime
    model_sha256: str = Field(default="", description="SHA-256 of the booster's model file.")
    definition_hash: str = Field(default="", description="Hash of the feature definition.")
    thresholds_version: str = Field(default="", description="Hash of the MQL/SQL cut-offs.")
    data_hash: str = Field(default="", description="DVC hash of the training data.")
    metrics: dict[str, Any]
    thresholds: dict[str, float]
    features: list[str]
    categorical_features: list[str]
    event_types: list[str]
    attributes: dict[str, str]
    required_inputs: list[str] = Field(
        default_factory=list,
        description="Inputs the model never saw missing in training: a lead without one is "
        "refused (422) rather than guessed.",
    )
    category_aliases: dict[str, dict[str, str]] = Field(
        default_factory=dict, description="Spellings folded into one value, per attribute."
    )


class HealthResponse(BaseModel):
    """The process is up."""

    model_config = ConfigDict(json_schema_extra={"examples": [{"status": "ok"}]})

    status: Literal["ok"]


class ReadyResponse(BaseModel):
    """A model is loaded and requests can be scored."""

    model_config = ConfigDict(
        json_schema_extra={
            "examples": [{"status": "ready", "model": "lead-scoring", "version": "7"}]
        }
    )

    status: Literal["ready", "loading"]
    model: str | None = None
    version: str | None = None
    reason: str | None = None


class ReloadResponse(BaseModel):
    """Outcome of a reload: the version before and the version now serving."""

    model_config = ConfigDict(
        json_schema_extra={
            "examples": [{"previous_version": "6", "version": "7", "changed": True}]
        }
    )

    previous_version: str | None
    version: str
    changed: bool


class ErrorItem(BaseModel):
    """One problem: where (``loc``, ending with the field), what, and its kind."""

    loc: list[str | int]
    msg: str
    type: str


def _problem(loc: list[str | int], msg: str, kind: str) -> dict[str, Any]:
    return {"detail": [{"loc": loc, "msg": msg, "type": kind}]}


_EXAMPLE_REFUSED = _problem(
    ["body", "events", 0, "ts"],
    "events[0].ts: 2031-01-01T00:00:00Z lies in the future (server time 2025-03-05T08:00:00Z)",
    "future_timestamp",
)


class ErrorResponse(BaseModel):
    """Every error response has this shape."""

    model_config = ConfigDict(json_schema_extra={"examples": [_EXAMPLE_REFUSED]})

    detail: list[ErrorItem]


# What each error status means and one answer of that status, for /docs and the OpenAPI
# document: without its own example, every error would show ErrorResponse's 422 example.
_ERRORS: dict[int, tuple[str, dict[str, Any]]] = {
    400: (
        "The body is not valid JSON",
        _problem(
            ["body"],
            "the body is not valid JSON: Invalid JSON: EOF while parsing a string at line 1 "
            "column 19",
            "json_invalid",
        ),
    ),
    401: (
        "Missing or invalid API key",
        _problem(
            ["header", "X-API-Key"],
            "missing or invalid API key: send it in the X-API-Key header or as "
            "'Authorization: Bearer <key>'",
            "unauthorized",
        ),
    ),
    403: (
        "The key may not call this endpoint",
        _problem(["header", "X-API-Key"], "this endpoint needs an admin key", "forbidden"),
    ),
    409: (
        "The new model was refused; the old one keeps serving",
        _problem(
            [],
            "new model refused, still serving the old one: the bundle has no model file",
            "model_refused",
        ),
    ),
    413: (
        "Body larger than max_body_bytes",
        _problem(["body"], "request body too large; split the batch", "too_large"),
    ),
    415: (
        "The body is not application/json",
        _problem(
            ["header", "Content-Type"],
            "the body must be application/json, got 'text/plain'",
            "unsupported_media_type",
        ),
    ),
    422: ("Invalid input; loc names the field", _EXAMPLE_REFUSED),
    503: (
        "No model loaded yet",
        _problem([], "no model loaded yet (loading)", "not_ready"),
    ),
}


def error_responses(
    *statuses: int, descriptions: dict[int, str] | None = None
) -> dict[int | str, dict[str, Any]]:
    """The ``responses`` of a route for these error statuses: each an :class:`ErrorResponse`
    with an example of its own status; ``descriptions`` says what a status means on this route."""
    described = descriptions or {}
    return {
        status: {
            "model": ErrorResponse,
            "description": described.get(status, _ERRORS[status][0]),
            "content": {"application/json": {"example": _ERRORS[status][1]}},
        }
        for status in statuses
    }
