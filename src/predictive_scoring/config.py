"""Typed models of the params.yaml sections; each DVC stage reads only its own section(s)."""

from __future__ import annotations

import json
import re
from datetime import datetime
from pathlib import Path
from typing import Annotated, Any, Literal

import yaml
from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    ValidationError,
    field_validator,
    model_validator,
)
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict

from predictive_scoring.errors import ConfigError

# The start of an ISO 8601 date in its extended form (YYYY-MM-DD).
_ISO_DATE = re.compile(r"\d{4}-\d{2}-\d{2}")

__all__ = [
    "FIELD_MAP_ENV",
    "STAGES",
    "DataParams",
    "EvaluateParams",
    "ExportParams",
    "FeaturizeParams",
    "GenerateParams",
    "IngressSettings",
    "MonitorParams",
    "Params",
    "PromoteParams",
    "ThresholdParams",
    "TrainParams",
    "load_params",
    "read_field_map",
]

STAGES: tuple[str, ...] = ("mql", "sql", "opportunity", "won", "lost")


class _Section(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class GenerateParams(_Section):
    """Size and shape of the simulated B2B funnel used by the demo."""

    n_leads: int = Field(20_000, ge=10)
    events_per_lead: float = Field(50.0, gt=0, description="mean engagement events per lead")
    months: int = Field(24, ge=3, le=120)
    start: str = "2024-01-01"
    seed: int = 42
    chunk_leads: int = Field(50_000, ge=100, description="leads simulated and written per chunk")


class DataParams(_Section):
    """Where the raw tables are and what their columns are called (DESIGN section 2)."""

    format: Literal["contract", "flat"] = "contract"
    dir: str = Field("data/demo", description="folder of the raw tables; file names below")
    leads: str = "leads.parquet"
    events: str | None = "events.parquet"
    outcomes: str | None = "outcomes.parquet"
    latent: str | None = Field(
        "latent.parquet", description="demo only: true propensity, never a feature"
    )
    sep: str | None = Field(
        None, min_length=1, description="CSV field separator (, ; | or \\t); null: detected"
    )
    encoding: str = Field("utf-8", description="CSV text encoding, e.g. cp1252 for Excel")
    id_column: str = Field(
        "lead_id", description="null (flat exports): rows are numbered row-1, row-2, ..."
    )
    created_column: str | None = "created_at"
    event_time_column: str = "ts"
    event_type_column: str = "event_type"
    stage_column: str = "stage"
    outcome_time_column: str = "ts"
    label_column: str | None = Field(None, description="flat exports: the binary label column")
    positive_values: list[str] = Field(
        default_factory=lambda: ["1", "true", "yes", "y", "won", "converted"]
    )
    exclude_columns: list[str] = Field(default_factory=list)
    missing_values: list[str] = Field(default_factory=lambda: ["", "Select", "NA", "N/A", "null"])
    categorical: list[str] = Field(default_factory=list, description="force these as categorical")
    numeric: list[str] = Field(default_factory=list, description="force these as numeric")
    job_title_column: str | None = "job_title"
    email_column: str | None = "email"
    employees_column: str | None = "employees"
    revenue_column: str | None = "annual_revenue"
    id_like_unique_ratio: float = Field(0.95, gt=0, le=1)
    leakage_auc: float = Field(0.9, gt=0.5, le=1)
    leakage_missing_gap: float = Field(
        0.5, gt=0, le=1, description="flag a column whose fill rate differs this much by label"
    )
    strict: bool = False

    @field_validator("id_column", mode="before")
    @classmethod
    def _no_id_numbers_rows(cls, value: object) -> object:
        """``id_column: null`` is kept as "": no id column, the rows are numbered."""
        return "" if value is None else value

    @field_validator("encoding")
    @classmethod
    def _known_encoding(cls, value: str) -> str:
        import codecs

        try:
            codecs.lookup(value)
        except LookupError:
            raise ValueError(f"unknown text encoding {value!r}; try utf-8 or cp1252") from None
        return value

    @model_validator(mode="after")
    def _flat_needs_label(self) -> DataParams:
        if self.format == "contract" and not self.id_column:
            raise ValueError(
                "data.id_column is null, which numbers the rows: only a flat export can do "
                "that (events and outcomes name their lead by id); set the id column's name"
            )
        if self.format == "flat" and not self.label_column:
            raise ValueError("data.format is 'flat' but data.label_column is not set")
        if self.format == "contract" and not (self.outcomes and self.created_column):
            raise ValueError(
                "data.format is 'contract' but data.outcomes or data.created_column is not set"
            )
        return self


class FeaturizeParams(_Section):
    """Point-in-time snapshots, labels, the split and the feature definition knobs."""

    engine: Literal["duckdb", "spark"] = "duckdb"
    duckdb_memory_limit: str | None = Field(
        "2GB", description="DuckDB spills to disk past this; leaves room for the result in pandas"
    )
    offsets_days: list[int] = Field(default_factory=lambda: [0, 7, 30, 60])
    target_stage: Literal["mql", "sql", "opportunity", "won"] = "won"
    horizon_days: int = Field(90, ge=1)
    windows_days: list[int] = Field(default_factory=lambda: [7, 30, 90])
    half_life_days: float = Field(14.0, gt=0)
    active_days_window: int = Field(90, ge=1)
    category_aliases: dict[str, dict[str, str]] = Field(
        default_factory=dict,
        description="per attribute, spellings of one value: {country: {USA: United States}}; "
        "case and surrounding spaces are ignored anyway",
    )
    data_end: str | None = Field(None, description="end of the observed data; default: last ts")
    valid_fraction: float = Field(0.15, gt=0, lt=0.5)
    test_fraction: float = Field(0.15, gt=0, lt=0.5)
    seed: int = 42
    spark: dict[str, str] = Field(default_factory=lambda: {"spark.master": "local[*]"})

    @field_validator("data_end")
    @classmethod
    def _data_end_is_iso(cls, value: str | None) -> str | None:
        """An ISO 8601 date or time (naive means UTC), never a bare number: training refuses
        epoch numbers in its data, and the same rule holds for the cut-off."""
        if value is None:
            return None
        text = value.strip()
        try:
            ok = bool(_ISO_DATE.match(text)) and bool(datetime.fromisoformat(text))
        except ValueError:
            ok = False
        if not ok:
            raise ValueError(
                f"data_end must be an ISO 8601 date such as 2025-06-30, got {value!r}"
            )
        return text


class TrainParams(_Section):
    """LightGBM and calibration settings."""

    objective: Literal["binary"] = "binary"
    num_leaves: int = Field(8, ge=2)
    max_depth: int = Field(5, ge=-1, description="-1: no limit; shallow trees explain faster")
    learning_rate: float = Field(0.1, gt=0, le=1)
    n_estimators: int = Field(2000, ge=1)
    early_stopping_rounds: int = Field(100, ge=1)
    min_child_samples: int = Field(50, ge=1)
    feature_fraction: float = Field(0.8, gt=0, le=1)
    bagging_fraction: float = Field(0.8, gt=0, le=1)
    bagging_freq: int = Field(1, ge=0)
    lambda_l2: float = Field(1.0, ge=0)
    max_cat_to_onehot: int = Field(8, ge=1)
    cat_smooth: float = Field(10.0, ge=0)
    calibration: Literal["auto", "isotonic", "platt", "none"] = "auto"
    seed: int = 42
    num_threads: int = Field(0, ge=0, description="0 lets LightGBM use every core")
    experiment: str = "lead-scoring"


class ThresholdParams(_Section):
    """The MQL/SQL agreement: fixed probabilities or a policy (DESIGN section 6)."""

    mql: float | None = Field(None, gt=0, lt=1)
    sql: float | None = Field(None, gt=0, lt=1)
    capacity_per_week: float | None = Field(None, gt=0)
    min_precision: float | None = Field(None, gt=0, le=1)
    min_recall: float | None = Field(None, gt=0, le=1)

    @model_validator(mode="after")
    def _one_form(self) -> ThresholdParams:
        sql_rules = [self.sql, self.capacity_per_week, self.min_precision]
        if sum(r is not None for r in sql_rules) != 1:
            raise ValueError(
                "thresholds: set exactly one of 'sql', 'capacity_per_week' or 'min_precision'"
            )
        if (self.mql is None) == (self.min_recall is None):
            raise ValueError("thresholds: set exactly one of 'mql' or 'min_recall'")
        if self.mql is not None and self.sql is not None and not self.mql < self.sql:
            raise ValueError(
                f"the MQL cut-off must sit below the SQL cut-off, got {self.mql=} {self.sql=}"
            )
        return self


class EvaluateParams(_Section):
    """Evaluation knobs."""

    ece_bins: int = Field(10, ge=2)
    lift_fractions: list[float] = Field(default_factory=lambda: [0.05, 0.1, 0.2])


class ExportParams(_Section):
    """Where the bundle goes and how the registered model is named."""

    model_dir: str = "models/lead-scoring"
    model_name: str = "lead-scoring"
    alias: str = "challenger"
    register_model: bool = True


class PromoteParams(_Section):
    """How a challenger earns the champion alias."""

    metric: str = "roc_auc"
    greater_is_better: bool = True
    champion_alias: str = "champion"


class MonitorParams(_Section):
    """The monitor's limits: when drift or realized performance says investigate or retrain.

    Drift (PSI) is judged on the last ``recent_weeks`` weeks of scores and only from
    ``min_scores`` scores; calibration and AUC on the latest matured cohorts, from
    ``min_matured`` leads (docs/monitoring.md, "The monitor").
    """

    recent_weeks: int = Field(4, ge=1, description="weeks of scores the drift verdict reads")
    min_scores: int = Field(500, ge=1, description="scores needed before drift counts")
    min_matured: int = Field(300, ge=1, description="matured leads needed for calibration/AUC")
    score_psi_investigate: float = Field(0.1, gt=0)
    score_psi_retrain: float = Field(0.25, gt=0)
    feature_psi_investigate: float = Field(0.2, gt=0)
    feature_psi_retrain: float = Field(0.5, gt=0)
    calibration_gap: float = Field(
        0.03, gt=0, lt=1, description="|realized - predicted conversion| that says retrain"
    )
    auc_drop: float = Field(0.05, gt=0, lt=1, description="ROC-AUC below the test figure by")
    sql_sla_hours: float = Field(48.0, gt=0, description="sales should accept or reject an SQL")
    top_features: int = Field(10, ge=1, description="drifting features shown in the report")
    duckdb_memory_limit: str = Field("1GB", description="DuckDB spills to disk past this")

    @model_validator(mode="after")
    def _ordered(self) -> MonitorParams:
        for name in ("score_psi", "feature_psi"):
            low, high = getattr(self, f"{name}_investigate"), getattr(self, f"{name}_retrain")
            if not low <= high:
                raise ValueError(
                    f"monitor.{name}_investigate ({low}) must not exceed "
                    f"monitor.{name}_retrain ({high})"
                )
        return self


class Params(_Section):
    """All of params.yaml."""

    generate: GenerateParams = GenerateParams()
    data: DataParams = DataParams()
    featurize: FeaturizeParams = FeaturizeParams()
    train: TrainParams = TrainParams()
    thresholds: ThresholdParams = ThresholdParams(min_recall=0.8, capacity_per_week=100)
    evaluate: EvaluateParams = EvaluateParams()
    export: ExportParams = ExportParams()
    promote: PromoteParams = PromoteParams()
    monitor: MonitorParams = MonitorParams()


def load_params(path: str | Path = "params.yaml") -> Params:
    """Read and validate params.yaml; errors name the section and key and how to fix them."""
    path = Path(path)
    if not path.exists():
        raise ConfigError(f"{path}: not found; run from the project root or pass --params")
    raw: Any = yaml.safe_load(path.read_text()) or {}
    if not isinstance(raw, dict):
        raise ConfigError(f"{path}: expected a mapping of sections, got {type(raw).__name__}")
    try:
        return Params.model_validate(raw)
    except ValidationError as exc:
        problems = "; ".join(
            f"{'.'.join(str(p) for p in err['loc'])}: {err['msg']}" for err in exc.errors()
        )
        raise ConfigError(f"{path}: {problems}") from exc


# --------------------------------------------------------------------------------------------
# Runtime settings: the deployment's, not the model's, so not in params.yaml

FIELD_MAP_ENV = "PREDICTIVE_SCORING_FIELD_MAP"


def read_field_map(value: Any) -> dict[str, str]:
    """A CRM field map as set: a mapping, JSON object text, or the path of a JSON or YAML file
    holding one (``{"numberofemployees": "employees", "hs_object_id": "lead_id"}``).

    Raises ValueError saying what is wrong and how to write it.
    """
    if value is None or (isinstance(value, str) and not value.strip()):
        return {}
    fix = (
        f"set {FIELD_MAP_ENV} to a JSON object of CRM field to model input, such as "
        '{"numberofemployees": "employees", "hs_lead_source": "lead_source"}, or to the path '
        "of a .json or .yaml file holding one"
    )
    if isinstance(value, str):
        text = value.strip()
        if not text.startswith("{"):
            path = Path(text).expanduser()
            if not path.is_file():
                raise ValueError(f"the field map {text!r} is neither JSON nor a file; {fix}")
            text = path.read_text()
            if path.suffix.lower() in {".yaml", ".yml"}:
                value = yaml.safe_load(text)
                text = ""
        if text:
            try:
                value = json.loads(text)
            except json.JSONDecodeError as exc:
                raise ValueError(f"the field map is not valid JSON ({exc}); {fix}") from None
    if not isinstance(value, dict):
        raise ValueError(f"the field map must be a mapping, got {type(value).__name__}; {fix}")
    pairs: dict[str, str] = {}
    for crm, target in value.items():
        texts = isinstance(crm, str) and isinstance(target, str)
        if not (texts and crm.strip() and target.strip()):
            raise ValueError(
                f"the field map entry {crm!r}: {target!r} must map a field name to an input "
                f"name, both non-empty text; {fix}"
            )
        pairs[crm.strip()] = target.strip()
    # Several CRM fields may name one input (a map for HubSpot and Salesforce alike); one
    # record that sends two of them is refused by the ingress.
    renamed = {c: t for c, t in pairs.items() if c != t}  # "industry: industry" only admits
    chained = sorted(set(renamed) & set(renamed.values()))
    if chained:
        raise ValueError(
            f"the field map uses {chained} both as a CRM field and as a target; a field is "
            "renamed once, so map each CRM field straight to the model's input"
        )
    return pairs


class IngressSettings(BaseSettings):
    """Runtime settings of every way in (the service, ``predictive-scoring score``, the
    pyfunc): ``PREDICTIVE_SCORING_*`` variables and ``.env``. The service's settings extend it.
    """

    model_config = SettingsConfigDict(
        env_prefix="PREDICTIVE_SCORING_",
        env_file=".env",
        extra="ignore",
        protected_namespaces=(),
    )

    field_map: Annotated[dict[str, str], NoDecode] = Field(
        default_factory=dict,
        description="CRM field name -> model input (lead_id, created_at, as_of or an "
        "attribute): JSON, or the path of a JSON or YAML file. A CRM then posts its own "
        "record unchanged (docs/crm.md).",
    )

    @field_validator("field_map", mode="before")
    @classmethod
    def _read_field_map(cls, value: Any) -> dict[str, str]:
        return read_field_map(value)
