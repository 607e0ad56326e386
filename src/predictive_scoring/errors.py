"""One exception tree for the project; the CLI and the service map it to exit codes and HTTP."""

from __future__ import annotations

__all__ = [
    "BundleError",
    "ConfigError",
    "DataValidationError",
    "FeatureError",
    "LeakageError",
    "ModelRegistryError",
    "PredictiveScoringError",
    "PromotionRefused",
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
    """A lead sent for scoring is malformed. ``field`` names the offending field."""

    def __init__(self, message: str, *, field: str | None = None, row: int | None = None) -> None:
        self.field = field
        self.row = row
        super().__init__(message)


class BundleError(PredictiveScoringError):
    """The model bundle is missing, incomplete or from an incompatible version."""


class ModelRegistryError(PredictiveScoringError):
    """MLflow tracking or the model registry failed or holds no such model."""


class PromotionRefused(PredictiveScoringError):
    """The challenger does not beat the champion on the promotion metric."""
