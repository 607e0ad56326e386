"""Runtime settings of the service, from ``PREDICTIVE_SCORING_*`` variables and ``.env``."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any

from pydantic import Field, SecretStr, field_validator
from pydantic_settings import NoDecode, SettingsConfigDict

from predictive_scoring.config import IngressSettings

__all__ = ["Settings"]


def _split_keys(value: Any) -> Any:
    """Accept "a,b" (as set in the environment) as well as a list of keys."""
    if value is None:
        return []
    if isinstance(value, str):
        return [part.strip() for part in value.split(",") if part.strip()]
    return value


class Settings(IngressSettings):
    """Everything the service reads at start-up; keys are secrets and never shown in reprs.

    The settings of every way in (``field_map``, the CRM's field names) come from
    :class:`~predictive_scoring.config.IngressSettings`.
    """

    model_config = SettingsConfigDict(
        env_prefix="PREDICTIVE_SCORING_",
        env_file=".env",
        extra="ignore",
        protected_namespaces=(),
    )

    api_keys: Annotated[list[SecretStr], NoDecode] = Field(
        default_factory=list, description="Keys allowed to score (comma-separated in env)."
    )
    admin_keys: Annotated[list[SecretStr], NoDecode] = Field(
        default_factory=list, description="Keys allowed to score and to reload the model."
    )
    outcome_keys: Annotated[list[SecretStr], NoDecode] = Field(
        default_factory=list,
        description="Keys allowed to score and to post outcomes (POST /v1/outcomes); admin "
        "keys may post outcomes too.",
    )
    allow_anonymous: bool = Field(
        default=False, description="Turn authentication off entirely (local development only)."
    )
    bundle_dir: Path | None = Field(
        default=None,
        description="Serve this bundle folder instead of the MLflow champion (unset: champion).",
    )
    tracking_uri: str | None = Field(
        default=None,
        description="MLflow store of the champion; else MLFLOW_TRACKING_URI, else the project's "
        "sqlite:///<project_dir>/mlflow.db.",
    )
    project_dir: Path = Field(
        default=Path("."), description="The project, home of the default MLflow store."
    )
    model_name: str = "lead-scoring"
    model_alias: str = "champion"
    max_batch: int = Field(default=10_000, ge=1)
    max_events_per_lead: int = Field(default=5_000, ge=0)
    max_body_bytes: int = Field(default=20 * 1024 * 1024, ge=1)
    clock_skew_seconds: int = Field(
        default=300, ge=0, description="How far in the future an event or as_of may lie."
    )
    reload_interval_seconds: float = Field(
        default=0.0, ge=0, description="Poll the loader for a new model this often; 0 = off."
    )
    load_retry_seconds: float = Field(
        default=30.0, ge=0, description="Retry a failed start-up load this often; 0 = never."
    )
    n_reasons: int = Field(default=3, ge=0, le=20)
    metrics_public: bool = Field(
        default=True, description="Serve /metrics without a key (scrapers rarely carry one)."
    )
    log_enabled: bool = Field(
        default=True,
        description="Record every score with its lineage and features in the score log.",
    )
    log_dir: str = Field(
        default="logs",
        description="The score log's store: a folder (relative paths are under project_dir), "
        "or an fsspec URL such as s3://bucket/lead-scoring/logs that replicas share.",
    )
    log_flush_seconds: float = Field(
        default=1.0,
        gt=0,
        le=60,
        description="Write the queued records at least this often: what a crash may lose.",
    )
    log_queue_size: int = Field(
        default=100_000,
        ge=1,
        description="Leads waiting to be written at most; beyond, records are dropped and "
        "counted (predictive_scoring_score_log_dropped_total), never scoring delayed.",
    )

    @field_validator("api_keys", "admin_keys", "outcome_keys", mode="before")
    @classmethod
    def _parse_keys(cls, value: Any) -> Any:
        return _split_keys(value)

    @property
    def log_store(self) -> str:
        """Where the score log goes: ``log_dir`` as given if a URL or absolute, else under the
        project."""
        if "://" in self.log_dir or Path(self.log_dir).is_absolute():
            return self.log_dir
        return str(self.project_dir / self.log_dir)
