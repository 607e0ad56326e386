"""GET /v1/model: what is serving."""

from __future__ import annotations

from fastapi import APIRouter

from predictive_scoring.errors import redact
from predictive_scoring.serve.deps import Authenticated, CurrentModel
from predictive_scoring.serve.responses import OrjsonResponse
from predictive_scoring.serve.schemas import ModelInfoResponse, error_responses

__all__ = ["router"]

router = APIRouter(prefix="/model", tags=["model"], dependencies=[Authenticated])


@router.get(
    "",
    response_model=ModelInfoResponse,
    responses=error_responses(401, 503),
    summary="The model now serving",
)
def model_info(model: CurrentModel) -> OrjsonResponse:
    """Name, version, where it came from and why, its lineage (model checksum, definition and
    thresholds hashes, training data hash), metrics, thresholds and the feature list."""
    scorer = model.scorer
    meta = scorer.metadata
    metrics = meta.get("metrics")
    if not isinstance(metrics, dict):
        metrics = {k: v for k, v in meta.items() if isinstance(v, int | float) and "metric" in k}
    d = scorer.definition
    body = ModelInfoResponse(
        name=scorer.name,
        version=scorer.version,
        alias=meta.get("alias"),
        source=meta.get("source"),
        why=redact(str(meta["why"])) if meta.get("why") else None,
        loaded_at=model.loaded_at,
        model_sha256=model.lineage.get("model_sha256", ""),
        definition_hash=model.lineage.get("definition_hash", ""),
        thresholds_version=model.lineage.get("thresholds_version", ""),
        data_hash=model.lineage.get("data_hash", ""),
        metrics=metrics,
        thresholds={
            "mql": scorer.thresholds.mql,
            "sql": scorer.thresholds.sql,
            "base_rate": scorer.thresholds.base_rate,
        },
        features=list(scorer.feature_names),
        categorical_features=d.categorical_features,
        event_types=list(d.event_types),
        attributes=dict(d.attributes),
        required_inputs=list(scorer.inputs.required),
        category_aliases={name: dict(pairs) for name, pairs in d.aliases},
    )
    return OrjsonResponse(body.model_dump(mode="json"))
