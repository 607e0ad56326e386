"""One exception tree for the project; the CLI and the service map it to exit codes and HTTP."""

from __future__ import annotations

from collections.abc import Sequence

__all__ = [
    "BundleError",
    "ConfigError",
    "DataValidationError",
    "FeatureError",
    "LeakageError",
    "ModelRegistryError",
    "PredictiveScoringError",
    "PromotionRefused",
    "RequestProblem",
    "ScoringInputError",
]


class PredictiveScoringError(Exception):
    """Base of every error this project raises on purpose."""


class ConfigError(PredictiveScoringError):
    """params.yaml or a setting is missing or inconsistent."""


class DataValidationError(PredictiveScoringError):
    """Raw data breaks the data contract. ``problems`` lists every problem found, one line each."""

    def __init__(self, problems: list[str]) -> None:
        self.problems = list(problems)
        lines = "\n".join(f"  - {p}" for p in self.problems)
        super().__init__(f"{len(self.problems)} problem(s) in the raw data:\n{lines}")


class LeakageError(DataValidationError):
    """Columns flagged as leaking the label while ``strict: true``."""


class FeatureError(PredictiveScoringError):
    """The feature definition cannot be built or applied."""


class ScoringInputError(PredictiveScoringError):
    """A lead sent for scoring is refused. ``field`` names the offending field; ``loc`` its
    place (FastAPI's ``["body", "leads", 3, "as_of"]`` for JSON, or the file and row)."""

    status_code = 422

    def __init__(
        self,
        message: str,
        *,
        field: str | None = None,
        row: int | None = None,
        loc: Sequence[str | int] | None = None,
        kind: str = "scoring_input",
    ) -> None:
        self.field = field
        self.row = row
        self.loc = list(loc) if loc is not None else (["body", field] if field else ["body"])
        self.kind = kind
        super().__init__(message)

    @property
    def msg(self) -> str:
        return str(self)


class RequestProblem(ScoringInputError):
    """A request the service refuses, with its HTTP status (401, 403, 415, 422, 503)."""

    def __init__(
        self, loc: Sequence[str | int], msg: str, kind: str, *, status_code: int = 422
    ) -> None:
        super().__init__(msg, field=str(loc[-1]) if loc else None, loc=loc, kind=kind)
        self.status_code = status_code


class BundleError(PredictiveScoringError):
    """The model bundle is missing, incomplete or from an incompatible version."""


class ModelRegistryError(PredictiveScoringError):
    """MLflow tracking or the model registry failed or holds no such model."""


class PromotionRefused(PredictiveScoringError):
    """The challenger does not beat the champion on the promotion metric."""
