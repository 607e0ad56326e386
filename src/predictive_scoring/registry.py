"""MLflow: the tracking store, the pyfunc that wraps the whole scorer, the registry and promotion.

The default tracking store is a SQLite file in the project (nothing to start); the environment
variable ``MLFLOW_TRACKING_URI`` points it elsewhere (a server with PostgreSQL, for example).
"""

from __future__ import annotations

import json
import logging
import os
import tempfile
import time
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

import pandas as pd

from predictive_scoring.errors import (
    ConfigError,
    FeatureError,
    ModelRegistryError,
    PromotionRefused,
)
from predictive_scoring.ingress import raw_from_nested
from predictive_scoring.scorelog import process_score_log, scored_batch
from predictive_scoring.scoring import FRAME_LIMITS, Scorer, results_frame, score_nested

__all__ = [
    "LeadScoringPyfunc",
    "default_tracking_uri",
    "ensure_experiment",
    "load_registered_scorer",
    "log_bundle_model",
    "metric_on_features",
    "model_lineage",
    "promote_challenger",
    "pyfunc_input_frame",
]

logger = logging.getLogger(__name__)

BUNDLE_ARTIFACT = "bundle"
# Where the pyfunc logs its scores, when set (also the params key "log_dir" of predict).
LOG_DIR_ENV = "PREDICTIVE_SCORING_LOG_DIR"
# What MLflow answers for a registered model or an alias that does not exist.
_NOT_FOUND = frozenset({"RESOURCE_DOES_NOT_EXIST", "INVALID_PARAMETER_VALUE"})


def default_tracking_uri(root: str | Path = ".") -> str:
    """``MLFLOW_TRACKING_URI`` if set, else a SQLite store ``mlflow.db`` at the project root."""
    env = os.environ.get("MLFLOW_TRACKING_URI")
    if env:
        return env
    return f"sqlite:///{Path(root).resolve() / 'mlflow.db'}"


def ensure_experiment(name: str, *, root: str | Path = ".") -> str:
    """Create the experiment if needed; returns its id."""
    import mlflow

    mlflow.set_tracking_uri(default_tracking_uri(root))
    exp = mlflow.get_experiment_by_name(name)
    if exp is not None:
        return str(exp.experiment_id)
    return str(mlflow.create_experiment(name))


def pyfunc_input_frame(
    leads: pd.DataFrame, events: pd.DataFrame | None, *, as_of: str | None = None
) -> pd.DataFrame:
    """The pyfunc's input: one row per lead, its events as a JSON list in column ``events``."""
    frame = leads.copy()
    if events is not None and len(events):
        ev = events.assign(
            ts=pd.to_datetime(events["ts"], utc=True).dt.strftime("%Y-%m-%dT%H:%M:%SZ")
        )
        grouped = ev.groupby(ev["lead_id"].astype(str))[["event_type", "ts"]].apply(
            lambda g: json.dumps(g.to_dict("records"))
        )
        frame["events"] = frame["lead_id"].astype(str).map(grouped).fillna("[]")
    else:
        frame["events"] = "[]"
    if as_of is not None:
        frame["as_of"] = as_of
    for col in frame.columns:
        if isinstance(frame[col].dtype, pd.DatetimeTZDtype):
            frame[col] = frame[col].dt.strftime("%Y-%m-%dT%H:%M:%SZ")
    return frame


class _PyfuncBase:
    """Shared scoring logic, kept apart from the MLflow base class for plain reuse."""

    scorer: Scorer
    _lineage_of: tuple[Scorer, dict[str, str]] | None = None

    def score_frame(
        self, model_input: pd.DataFrame, *, log_dir: str | Path | None = None
    ) -> pd.DataFrame:
        """Score a frame; with a log destination (``log_dir``, else ``PREDICTIVE_SCORING_LOG_DIR``)
        the scores go to the score log too, with source ``pyfunc``. Off by default."""
        log_dir = log_dir or os.environ.get(LOG_DIR_ENV) or None
        if log_dir is None:
            out = score_nested(self.scorer, pd.DataFrame(model_input))
            return out.drop(columns=["lead_id"])
        scorer = self.scorer
        scored_at = time.time()
        admitted = scorer.admit(
            raw_from_nested(pd.DataFrame(model_input)), now=int(scored_at), limits=FRAME_LIMITS
        )
        results, features = scorer.score_admitted_with_features(admitted)
        if self._lineage_of is None or self._lineage_of[0] is not scorer:
            self._lineage_of = (scorer, scorer.lineage)  # hashes the definition: once per model
        batch = scored_batch(
            scorer,
            admitted,
            results,
            features,
            source="pyfunc",
            lineage=self._lineage_of[1],
            scored_at=scored_at,
        )
        process_score_log(log_dir).submit(batch)
        return results_frame(results, version=scorer.version).drop(columns=["lead_id"])


try:  # mlflow is a hard dependency, but keep import failures readable
    import mlflow.pyfunc

    class LeadScoringPyfunc(_PyfuncBase, mlflow.pyfunc.PythonModel):  # type: ignore[misc,name-defined]
        """The whole scorer as an MLflow pyfunc: raw leads and events in, scores out."""

        def load_context(self, context: Any) -> None:
            self.scorer = Scorer.load(context.artifacts[BUNDLE_ARTIFACT])

        def predict(self, context: Any, model_input: pd.DataFrame, params: Any = None) -> Any:
            log_dir = (params or {}).get("log_dir") or None
            return self.score_frame(model_input, log_dir=log_dir)

except ImportError as exc:  # pragma: no cover
    raise ModelRegistryError(f"mlflow is not importable: {exc}") from exc


def _signature(scorer: Scorer) -> Any:
    from mlflow.models.signature import ModelSignature
    from mlflow.types.schema import ColSpec, ParamSchema, ParamSpec, Schema

    cols: list[Any] = [
        ColSpec("string", "lead_id"),
        ColSpec("string", "created_at", required=False),
        ColSpec("string", "as_of", required=False),
        ColSpec("string", "events", required=False),
    ]
    seen = {"lead_id", "created_at", "as_of", "events"}
    d = scorer.definition
    for name, kind in d.attributes:
        if name not in seen:
            cols.append(ColSpec("double" if kind == "numeric" else "string", name, required=False))
            seen.add(name)
    for extra in (d.job_title_column, d.email_column):
        if extra and extra not in seen:
            cols.append(ColSpec("string", extra, required=False))
            seen.add(extra)
    if d.employees_column and d.employees_column not in seen:
        cols.append(ColSpec("double", d.employees_column, required=False))
    outputs = Schema(
        [
            ColSpec("double", "probability"),
            ColSpec("long", "score"),
            ColSpec("string", "stage"),
            ColSpec("string", "grade"),
            ColSpec("string", "top_positive_reasons"),
            ColSpec("string", "top_negative_reasons"),
            ColSpec("string", "model_version"),
        ]
    )
    params = ParamSchema([ParamSpec("log_dir", "string", "")])  # "": no score log
    return ModelSignature(inputs=Schema(cols), outputs=outputs, params=params)


def _input_example(scorer: Scorer) -> pd.DataFrame:
    """One lead as the pyfunc expects it, so MLflow shows and checks a working example."""
    event_type = scorer.definition.event_types[0] if scorer.definition.event_types else "web_visit"
    events = [{"event_type": event_type, "ts": "2025-01-20T09:30:00Z"}]
    return pd.DataFrame(
        [
            {
                "lead_id": "L-example",
                "created_at": "2025-01-02T00:00:00Z",
                "as_of": "2025-02-01T00:00:00Z",
                "events": json.dumps(events),
            }
        ]
    )


def model_lineage(scorer: Scorer, *, version: str | None) -> dict[str, str]:
    """The tags of a run and its model version: :attr:`Scorer.lineage` with the registry
    version (without ``model_version`` when the model is not registered)."""
    lineage = dict(scorer.lineage)
    if version is None:
        lineage.pop("model_version", None)
    else:
        lineage["model_version"] = version
    return lineage


def log_bundle_model(
    bundle_dir: str | Path,
    *,
    run_id: str,
    model_name: str,
    alias: str,
    register: bool = True,
    root: str | Path = ".",
) -> str | None:
    """Log the bundle as a pyfunc to ``run_id``, register a version, and set ``alias`` on it.

    The version is registered before the model's files are written, so the bundle inside the
    MLflow model carries its registry version: the pyfunc then reports "3", not "run-<id>". The
    run and the version are tagged with the model's lineage (:func:`model_lineage`), the values
    every score carries.
    """
    import mlflow
    from mlflow import MlflowClient

    mlflow.set_tracking_uri(default_tracking_uri(root))
    client = MlflowClient()
    scorer = Scorer.load(bundle_dir)
    version: str | None = None
    with mlflow.start_run(run_id=run_id), tempfile.TemporaryDirectory() as tmp:
        run_params = client.get_run(run_id).data.params
        logged = mlflow.initialize_logged_model(
            name="model", source_run_id=run_id, params=dict(run_params)
        )
        artifact = Path(bundle_dir).resolve()
        if register:
            version = str(mlflow.register_model(f"models:/{logged.model_id}", model_name).version)
            artifact = scorer.with_metadata(version=version).save(Path(tmp) / artifact.name)
        try:
            mlflow.pyfunc.log_model(
                name="model",
                model_id=logged.model_id,
                python_model=str(Path(__file__).with_name("pyfunc_model.py")),
                artifacts={BUNDLE_ARTIFACT: str(artifact)},
                signature=_signature(scorer),
                input_example=_input_example(scorer),
                pip_requirements=["predictive-scoring", "mlflow", "lightgbm", "pandas", "numpy"],
            )
        except Exception:
            if version is not None:  # no version may point at a model without files
                client.delete_model_version(model_name, version)
            raise
    lineage = model_lineage(scorer, version=version)
    for key, tag in lineage.items():
        client.set_tag(run_id, key, tag)
    if version is None:
        return None
    client.set_registered_model_alias(model_name, alias, version)
    for key, tag in lineage.items():
        client.set_model_version_tag(model_name, version, key, tag)
    metrics = mlflow.get_run(run_id).data.metrics
    for key, value in metrics.items():
        if key.startswith("test_"):
            client.set_model_version_tag(model_name, version, key, str(value))
    logger.info("registered %s version %s as @%s", model_name, version, alias)
    return version


def load_registered_scorer(
    model_name: str,
    alias: str,
    *,
    root: str | Path = ".",
    tracking_uri: str | None = None,
    advice: str | None = None,
) -> Scorer:
    """The scorer behind ``models:/<name>@<alias>``, with the registry version in its metadata.

    ``tracking_uri`` defaults to :func:`default_tracking_uri` of ``root``; ``advice`` is what the
    error says to do when the store has no such alias.
    """
    import mlflow
    from mlflow import MlflowClient
    from mlflow.exceptions import MlflowException
    from mlflow.tracking._tracking_service.utils import _use_tracking_uri

    uri = tracking_uri or default_tracking_uri(root)
    client = MlflowClient(tracking_uri=uri, registry_uri=uri)
    try:
        mv = client.get_model_version_by_alias(model_name, alias)
    except MlflowException as exc:
        if exc.error_code in _NOT_FOUND:
            raise ModelRegistryError(
                f"{uri} has no {model_name}@{alias} ({exc.message}): "
                + (advice or "run `dvc repro`, then `predictive-scoring promote`")
            ) from exc
        raise ModelRegistryError(f"cannot read {model_name}@{alias} from {uri}: {exc}") from exc
    with tempfile.TemporaryDirectory(prefix="lead-scoring-") as tmp:
        try:
            # the version, not the alias: the alias may move between the two calls. MLflow
            # resolves the version's logged model through the global tracking URI, whatever
            # tracking_uri says: without this, a store outside the working directory fails.
            with _use_tracking_uri(uri):
                local = mlflow.artifacts.download_artifacts(
                    f"models:/{model_name}/{mv.version}",
                    dst_path=tmp,
                    tracking_uri=uri,
                    registry_uri=uri,
                )
        except MlflowException as exc:
            raise ModelRegistryError(
                f"cannot download {model_name} version {mv.version} from {uri}: {exc}"
            ) from exc
        found = sorted(Path(local).glob("artifacts/*/bundle.json"))
        if not found:
            raise ModelRegistryError(
                f"models:/{model_name}@{alias} holds no model bundle (no artifacts/*/bundle.json);"
                " it was not logged by this project's export stage"
            )
        scorer = Scorer.load(found[0].parent)  # reads everything into memory
    # In place: the scorer is ours alone, and a copy would rebuild its tables.
    scorer.metadata.update(name=model_name, version=str(mv.version), alias=alias)
    return scorer


def metric_on_features(scorer: Scorer, frame: pd.DataFrame, *, metric: str) -> float:
    """A scorer's metric on already-featurised snapshots (the promotion test set).

    Raises :class:`FeatureError` when the frame lacks the scorer's features: it was featurised
    for another feature definition.
    """
    from sklearn.metrics import average_precision_score, log_loss, roc_auc_score

    from predictive_scoring.train import encode_frame

    metrics: dict[str, Callable[[Any, Any], float]] = {
        "roc_auc": roc_auc_score,
        "pr_auc": average_precision_score,
        "log_loss": lambda y, p: log_loss(y, p, labels=[0, 1]),
    }
    if metric not in metrics:
        raise ConfigError(
            f"params.yaml promote.metric: '{metric}' is not one of {sorted(metrics)}"
        )
    if "label" not in frame.columns:
        raise FeatureError("the promotion test set has no 'label' column; run `dvc repro`")
    X = encode_frame(frame, scorer.definition, scorer.levels)
    p = scorer.predict_matrix(X)
    return float(metrics[metric](frame["label"].to_numpy(), p))


def _logged(client: Any, model_name: str, version: str, key: str) -> float | None:
    """A test metric as tagged on the version at export, else as logged on its run."""
    mv = client.get_model_version(model_name, version)
    tag = mv.tags.get(key)
    if tag is not None:
        return float(tag)
    if mv.run_id:
        value = client.get_run(mv.run_id).data.metrics.get(key)
        if value is not None:
            return float(value)
    return None


def _metric_of(client: Any, model_name: str, version: str, metric: str) -> float:
    value = _logged(client, model_name, version, f"test_{metric}")
    if value is None:
        raise ModelRegistryError(
            f"{model_name} version {version} has no test_{metric} metric; pick a logged metric "
            "in params.yaml promote.metric"
        )
    return value


def promote_challenger(
    *,
    model_name: str,
    challenger_alias: str,
    champion_alias: str,
    metric: str,
    greater_is_better: bool,
    force: bool = False,
    root: str | Path = ".",
    measure: Callable[[Scorer], float] | None = None,
) -> Mapping[str, Any]:
    """Give the challenger the champion alias if it is at least as good on the same test set.

    With ``measure``, both models are loaded and scored on the same (current) test set; without
    it, the test metric each version logged is compared, if both were measured on as many rows.
    When the two cannot be compared (the champion's features are not in the test set, or the
    logged test sets differ), only ``force`` promotes. The result's ``promoted`` is False when
    the challenger already is the champion (``already_champion``): nothing changes then.
    """
    import mlflow
    from mlflow import MlflowClient
    from mlflow.exceptions import MlflowException

    mlflow.set_tracking_uri(default_tracking_uri(root))
    client = MlflowClient()
    try:
        challenger = client.get_model_version_by_alias(model_name, challenger_alias)
    except MlflowException as exc:
        raise ModelRegistryError(
            f"no {model_name}@{challenger_alias} in {mlflow.get_tracking_uri()}; run `dvc repro`"
        ) from exc
    try:
        champion = client.get_model_version_by_alias(model_name, champion_alias)
    except MlflowException:
        champion = None
    new_v = str(challenger.version)
    result: dict[str, Any] = {
        "model": model_name,
        "challenger_version": new_v,
        "metric": metric,
        "promoted": False,
        "already_champion": False,
    }
    if champion is not None and str(champion.version) == new_v:
        return result | {"champion_version": new_v, "already_champion": True}

    def value(alias: str, version: str) -> float:
        if measure is not None:
            return float(measure(load_registered_scorer(model_name, alias, root=root)))
        return _metric_of(client, model_name, version, metric)

    try:
        new = value(challenger_alias, new_v)
    except FeatureError as exc:
        raise PromotionRefused(
            f"challenger v{new_v} cannot be scored on the promotion test set ({exc}); run "
            "`dvc repro` so the test set is featurised for it, then promote again"
        ) from exc
    result["challenger"] = new
    if champion is not None:
        old_v = str(champion.version)
        result["champion_version"] = old_v
        why_not = None
        if measure is not None:
            try:
                result["champion"] = value(champion_alias, old_v)
            except FeatureError as exc:
                why_not = f"champion v{old_v} cannot be scored on it ({exc})"
        else:
            rows = [_logged(client, model_name, v, "test_n") for v in (old_v, new_v)]
            if None not in rows and rows[0] != rows[1]:
                why_not = (
                    f"champion v{old_v} was tested on {rows[0]:.0f} rows, challenger v{new_v} "
                    f"on {rows[1]:.0f}"
                )
            else:
                result["champion"] = value(champion_alias, old_v)
        if why_not is not None:
            result["not_comparable"] = why_not
            if not force:
                raise PromotionRefused(
                    f"the test set changed shape between champion v{old_v} and challenger "
                    f"v{new_v}, so they cannot be compared on the same test set: {why_not}. "
                    f"Challenger v{new_v} scores test {metric}={new:.4f} on its own test set; "
                    "if that is good enough, run `predictive-scoring promote --force`"
                )
        else:
            old = result["champion"]
            better = new >= old if greater_is_better else new <= old
            if not better and not force:
                raise PromotionRefused(
                    f"challenger v{new_v} test {metric}={new:.4f} does not beat "
                    f"champion v{old_v} test {metric}={old:.4f}; use --force to promote "
                    "anyway"
                )
    client.set_registered_model_alias(model_name, champion_alias, new_v)
    result["promoted"] = True
    return result
