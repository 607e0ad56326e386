"""Which model scores: one rule for the service, the file scorer and anything else that scores.

1. A bundle directory set explicitly (``PREDICTIVE_SCORING_BUNDLE_DIR``, ``--bundle``) is used.
2. Otherwise ``models:/<name>@<alias>`` (``lead-scoring@champion``) from the MLflow store:
   ``PREDICTIVE_SCORING_TRACKING_URI``, else ``MLFLOW_TRACKING_URI``, else the project's own
   ``sqlite:///<project>/mlflow.db``.
3. No bundle set and no store, or a store without that alias, is an error that says what to do.

The bundle in ``models/`` is never picked up silently: a model that was exported but never
promoted must not start serving just because it is on disk.
"""

from __future__ import annotations

import logging
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

from predictive_scoring.bundle import META_FILE
from predictive_scoring.errors import ModelRegistryError
from predictive_scoring.scoring import Scorer

__all__ = [
    "BUNDLE_ENV",
    "TRACKING_ENV",
    "ModelChoice",
    "choose_model",
    "probe_model",
]

logger = logging.getLogger(__name__)

BUNDLE_ENV = "PREDICTIVE_SCORING_BUNDLE_DIR"
TRACKING_ENV = "PREDICTIVE_SCORING_TRACKING_URI"
_SQLITE = "sqlite:///"


@dataclass(frozen=True)
class ModelChoice:
    """The scorer to use, where it came from and why that source was chosen."""

    scorer: Scorer
    kind: Literal["registry", "bundle"]
    source: str
    why: str
    bundle_dir: Path | None = None  # the folder it was loaded from, when it is a bundle


def _describe_store(
    tracking_uri: str | None = None,
    *,
    tracking_set_by: str = TRACKING_ENV,
    root: str | Path = ".",
) -> tuple[str, str]:
    """The MLflow store the rule reads and what chose it: the setting, the env or the default."""
    from predictive_scoring.registry import default_tracking_uri  # mlflow: only when needed

    if tracking_uri:
        return tracking_uri, f"the MLflow store set by {tracking_set_by}"
    if os.environ.get("MLFLOW_TRACKING_URI"):
        return default_tracking_uri(root), "the MLflow store set by MLFLOW_TRACKING_URI"
    return default_tracking_uri(root), "the project's MLflow store"


def _missing_sqlite_file(uri: str) -> Path | None:
    """The file of a ``sqlite:///`` URI if it does not exist (MLflow would create it empty)."""
    if not uri.startswith(_SQLITE):
        return None
    path = Path(uri[len(_SQLITE) :])
    return None if path.exists() else path


def choose_model(
    *,
    bundle: str | Path | None = None,
    bundle_set_by: str = BUNDLE_ENV,
    tracking_uri: str | None = None,
    tracking_set_by: str = TRACKING_ENV,
    model_name: str = "lead-scoring",
    alias: str = "champion",
    root: str | Path = ".",
) -> ModelChoice:
    """Load the model the rule picks (see the module docstring) and say why it was picked.

    Args:
        bundle: a bundle directory set explicitly (the service's settings read ``BUNDLE_ENV``).
        bundle_set_by: how the caller got ``bundle`` (a flag or a setting), for the "why".
        tracking_uri: an MLflow store set explicitly (``TRACKING_ENV`` in the settings); ``None``
            means MLFLOW_TRACKING_URI, else the project's ``mlflow.db`` under ``root``.
        tracking_set_by: how the caller got ``tracking_uri``, for the "why".
        model_name: the registered model.
        alias: the alias to load (the champion).
        root: the project directory, home of the default store.

    The scorer's metadata gains ``source`` and ``why``, so whatever serves it can say both.
    """
    source = _resolve(
        bundle=bundle, tracking_uri=tracking_uri, tracking_set_by=tracking_set_by, root=root
    )
    if isinstance(source, Path):
        scorer = Scorer.load(source)
        where = f"bundle {source}"
        why = f"{where} (version {scorer.version}): set by {bundle_set_by}"
        return _noted(ModelChoice(scorer, "bundle", where, why, bundle_dir=source))

    from predictive_scoring.registry import load_registered_scorer

    uri, store = source
    model_uri = f"models:/{model_name}@{alias}"
    scorer = load_registered_scorer(
        model_name,
        alias,
        tracking_uri=uri,
        advice=(
            f"run `predictive-scoring promote` to make the challenger @{alias}, or "
            f"{_HOW_TO_BUNDLE} to serve a bundle directory instead"
        ),
    )
    why = (
        f"{model_uri} (version {scorer.version}) from {uri}: {store} has a @{alias} "
        "and no bundle is set"
    )
    return _noted(ModelChoice(scorer, "registry", model_uri, why))


_HOW_TO_BUNDLE = f"set {BUNDLE_ENV} (`--bundle` on the command line)"


def _resolve(
    *, bundle: str | Path | None, tracking_uri: str | None, tracking_set_by: str, root: str | Path
) -> Path | tuple[str, str]:
    """The rule itself: the bundle folder when one is set, else (store URI, what chose it)."""
    if bundle is not None:
        return Path(bundle)
    uri, store = _describe_store(tracking_uri, tracking_set_by=tracking_set_by, root=root)
    if (missing := _missing_sqlite_file(uri)) is not None:
        raise ModelRegistryError(
            f"no model to load: no bundle is set and {store} does not exist ({missing} is "
            "absent). Run `dvc repro` and `predictive-scoring promote` to register a champion "
            f"there, or {_HOW_TO_BUNDLE} to a bundle directory such as models/lead-scoring"
        )
    return uri, store


def probe_model(
    *,
    bundle: str | Path | None = None,
    tracking_uri: str | None = None,
    model_name: str = "lead-scoring",
    alias: str = "champion",
    root: str | Path = ".",
) -> str:
    """What :func:`choose_model` would load now, cheaply, without loading it: the bundle file's
    identity on disk (a new export renames a new folder into place), or the version the alias
    points at. A poller compares it with the last one and loads only when it changed."""
    source = _resolve(
        bundle=bundle, tracking_uri=tracking_uri, tracking_set_by=TRACKING_ENV, root=root
    )
    if isinstance(source, Path):
        try:
            stat = (source / META_FILE).stat()
        except OSError:
            return f"bundle {source}: unreadable"
        return f"bundle {source}: {stat.st_ino}:{stat.st_mtime_ns}:{stat.st_size}"
    from mlflow import MlflowClient
    from mlflow.exceptions import MlflowException

    try:
        version = MlflowClient(tracking_uri=source[0]).get_model_version_by_alias(
            model_name, alias
        )
    except MlflowException as exc:
        return f"models:/{model_name}@{alias} from {source[0]}: {type(exc).__name__}"
    return f"models:/{model_name}@{alias} from {source[0]}: version {version.version}"


def _noted(choice: ModelChoice) -> ModelChoice:
    # In place: the scorer was just loaded for this choice, and a copy would rebuild its tables.
    choice.scorer.metadata.update(source=choice.source, why=choice.why)
    logger.debug("model: %s", choice.why)
    return choice
