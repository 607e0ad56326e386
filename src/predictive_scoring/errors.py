"""One exception tree for the project; the CLI and the service map it to exit codes and HTTP."""

from __future__ import annotations

import re
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
    "redact",
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


# The user:password of a URL (``http://user:pw@host``, ``postgresql://u:p@db/x``).
_USERINFO = re.compile(r"(?P<scheme>\b[a-zA-Z][a-zA-Z0-9+.-]*://)[^/\s@'\"]+@")
# Secret-looking query parameters (``?token=...``, ``&X-Amz-Signature=...``, ``sig=...``).
_SECRET_PARAM = re.compile(
    r"(?P<name>[?&;][\w.-]*(?:pass|pwd|secret|token|key|sig|credential|auth)[\w.-]*=)"
    r"[^&\s'\"]+",
    re.IGNORECASE,
)
# A file URI's path (``sqlite:////srv/x/mlflow.db``, ``file:///srv/mlruns/1``).
_FILE_URI = re.compile(r"\b(?P<scheme>sqlite|file):///*(?P<path>[^\s'\"()]+)")
# An absolute path standing on its own (not the path part of a URL).
_ABSOLUTE = re.compile(r"(?<![\w:/.~-])(?P<path>/[^\s'\"(),;]+|[A-Za-z]:\\[^\s'\"(),;]+)")


def _tail(path: str) -> str:
    parts = [p for p in re.split(r"[/\\]", path) if p]
    return ".../" + "/".join(parts[-2:]) if parts else "..."


def redact(text: str, *, paths: bool = False) -> str:
    """``text`` without credentials: a URL's user and password become ``***``, as do the values
    of secret-looking query parameters. With ``paths``, absolute file paths are cut to their
    last two parts (``.../lead-scoring/bundle.json``), for what the service tells callers.

    The one redaction of the project: error details go through it to the log, and through it
    with ``paths`` to an admin.
    """
    text = _USERINFO.sub(r"\g<scheme>***@", text)
    text = _SECRET_PARAM.sub(r"\g<name>***", text)
    if paths:
        text = _FILE_URI.sub(lambda m: f"{m['scheme']}:///{_tail(m['path'])}", text)
        text = _ABSOLUTE.sub(lambda m: _tail(m["path"]), text)
    return text
