"""MLflow: the tracking store, the pyfunc that wraps the whole scorer, the registry and promotion.

The default tracking store is a SQLite file in the project (nothing to start); the environment
variable ``MLFLOW_TRACKING_URI`` points it elsewhere (a server with PostgreSQL, for example).
"""

from __future__ import annotations

import hashlib
import importlib.metadata
import json
import logging
import os
import re
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pandas as pd

try:  # POSIX; elsewhere the store's creation is not serialised
    import fcntl
except ImportError:  # pragma: no cover
    fcntl = None  # type: ignore[assignment]

from predictive_scoring.bundle import pid_alive
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
    "fail_interrupted_runs",
    "load_registered_scorer",
    "log_bundle_model",
    "metric_on_features",
    "model_lineage",
    "model_requirements",
    "promote_challenger",
    "pyfunc_input_frame",
    "runs_view_url",
]

logger = logging.getLogger(__name__)

BUNDLE_ARTIFACT = "bundle"
# Where the pyfunc logs its scores, when set (also the params key "log_dir" of predict).
LOG_DIR_ENV = "PREDICTIVE_SCORING_LOG_DIR"
# What MLflow answers for a registered model or an alias that does not exist.
_NOT_FOUND = frozenset({"RESOURCE_DOES_NOT_EXIST", "INVALID_PARAMETER_VALUE"})
# The process that owns a run or an unfinished registration ("host:pid:start[,pid:start]").
OWNER_TAG = "predictive_scoring.owner"
# On a model version between its registration and the alias that publishes it.
PENDING_TAG = "predictive_scoring.pending"
# The test metrics each version carries as tags: the ones promotion may compare
# (promote.metric), the test set's size (same test set?) and the calibration error.
VERSION_METRICS = ("roc_auc", "pr_auc", "log_loss", "ece", "n")


# What the MLflow UI opens an experiment on: the runs table, not the GenAI overview.
EXPERIMENT_KIND_TAG = "mlflow.experimentKind"
TRAINING_KIND = "custom_model_development"


def _project_root(root: str | Path) -> Path:
    """``root`` against the project: DVC sets ``DVC_ROOT`` for every stage it runs, and for a
    queued or ``--temp`` experiment it names the project, not DVC's temporary copy of it."""
    path = Path(root)
    base = os.environ.get("DVC_ROOT")
    if base and not path.is_absolute():
        path = Path(base) / path
    return path.resolve()


def default_tracking_uri(root: str | Path = ".") -> str:
    """``MLFLOW_TRACKING_URI`` if set, else a SQLite store ``mlflow.db`` at the project root.

    A relative ``root`` is taken from the project DVC runs the stage for (``DVC_ROOT``), so a
    queued or parallel ``dvc exp run`` logs to the project's store and registry.
    """
    env = os.environ.get("MLFLOW_TRACKING_URI")
    if env:
        return env
    return f"sqlite:///{_project_root(root) / 'mlflow.db'}"


@contextmanager
def _store_lock(uri: str) -> Iterator[None]:
    """Serialise the creation of a SQLite store and its experiments across processes.

    MLflow creates a new database's tables without a lock, so two experiments of a parallel
    ``dvc exp run -j 2`` starting together would race; later writes wait on SQLite's busy
    timeout, which MLflow sets on every session.
    """
    if not uri.startswith("sqlite:") or fcntl is None:
        yield
        return
    digest = hashlib.sha256(uri.encode()).hexdigest()[:16]
    with open(Path(tempfile.gettempdir()) / f"predictive-scoring-{digest}.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(lock, fcntl.LOCK_UN)


# A saved view of the runs table: MLflow's "Views" menu lists it, and the URL
# #/experiments/<id>/runs?workflowType=machine_learning&viewStateShareKey=<key> opens on it.
RUNS_VIEW_KEY = "test-metrics"
_VIEW_TAG = "mlflow.sharedViewState."


def _runs_view(
    metrics: Sequence[str], params: Sequence[str], curves: Sequence[str], hidden: Sequence[str]
) -> str:
    """The saved view MLflow's UI reads (a JSON envelope around its own state).

    The table shows ``metrics`` and ``params`` as columns, the best first metric on top. The
    chart view shows four charts instead of one bar chart per metric: what differs between the
    runs, the step-wise ``curves`` together, and two ``params`` against three metrics; every
    other metric (``metrics``, ``hidden``) gets no chart of its own.
    """
    section = "section-model-metrics"

    def chart(uuid: str, kind: str, **config: Any) -> dict[str, Any]:
        return {
            "uuid": uuid,
            "type": kind,
            "metricSectionId": section,
            "deleted": False,
            "isGenerated": False,
            "runsCountToCompare": 10,
            **config,
        }

    charts = [
        chart(
            "chart-difference",
            "DIFFERENCE",
            chartName="What differs between the runs",
            compareGroups=["Parameters", "Model metrics"],
            showChangeFromBaseline=True,
            showDifferencesOnly=True,
            baselineColumnUuid="",
        )
    ]
    if curves:
        charts.append(
            chart(
                "chart-curves",
                "LINE",
                metricKey=curves[0],
                selectedMetricKeys=list(curves),
                displayName=" and ".join(curves),
                lineSmoothness=0,
                xAxisScaleType="linear",
                scaleType="linear",
                range={},
                xAxisKey="step",
                selectedXAxisMetricKey="",
                yAxisKey="metric",
                yAxisExpressions=[],
                ignoreOutliers=False,
                useGlobalXaxisKey=False,
                useGlobalLineSmoothing=False,
            )
        )
    if params and metrics:
        charts.append(
            chart(
                "chart-parallel",
                "PARALLEL",
                selectedParams=list(params[:2]),
                selectedMetrics=list(metrics[:3]),
                showAllRuns=False,
            )
        )
    # MLflow adds a bar chart for every metric that no chart names, even a deleted one
    charted = set(curves[:1])
    for name in dict.fromkeys([*metrics, *curves, *hidden]):
        if name not in charted:
            charts.append(chart(f"hidden-{name}", "BAR", metricKey=name, deleted=True))
    columns = [f"metrics.`{m}`" for m in metrics] + [f"params.`{p}`" for p in params]
    state: dict[str, Any] = {
        "selectedColumns": ["attributes.`Description`", "attributes.`Models`", *columns],
        "compareRunSections": [
            {"uuid": section, "name": "Model metrics", "display": True, "isReordered": True}
        ],
        "compareRunCharts": charts,
    }
    if metrics:
        state |= {"orderByKey": f"metrics.`{metrics[0]}`", "orderByAsc": False}
    return json.dumps(
        {"name": "Test metrics", "createdAt": 0, "updatedAt": 0, "state": json.dumps(state)}
    )


def runs_view_url(experiment_id: str) -> str:
    """The part of an MLflow UI address that opens the experiment's runs on the saved view."""
    return (
        f"#/experiments/{experiment_id}/runs?workflowType=machine_learning"
        f"&viewStateShareKey={RUNS_VIEW_KEY}"
    )


def ensure_experiment(
    name: str,
    *,
    root: str | Path = ".",
    view_metrics: Sequence[str] = (),
    view_params: Sequence[str] = (),
    view_curves: Sequence[str] = (),
    view_hidden: Sequence[str] = (),
) -> str:
    """Create the experiment if needed, as a model-training one; returns its id.

    The project's own store keeps artifacts in ``mlruns/`` at the project root (MLflow's default
    is the working directory, which for a queued experiment DVC deletes afterwards). With
    ``view_metrics``/``view_params``, the experiment's saved runs view shows them as columns
    and in a few charts, with the step-wise ``view_curves`` in one of them; the other metrics the
    runs log (``view_hidden``) get no chart (:func:`runs_view_url`).
    """
    import mlflow
    from mlflow import MlflowClient

    own_store = not os.environ.get("MLFLOW_TRACKING_URI")  # set_tracking_uri exports it
    uri = default_tracking_uri(root)
    mlflow.set_tracking_uri(uri)
    tags = {EXPERIMENT_KIND_TAG: TRAINING_KIND}
    if view_metrics or view_params:
        tags[_VIEW_TAG + RUNS_VIEW_KEY] = _runs_view(
            view_metrics, view_params, view_curves, view_hidden
        )
    with _store_lock(uri):
        client = MlflowClient(tracking_uri=uri)
        exp = client.get_experiment_by_name(name)
        if exp is None:
            location = str(_project_root(root) / "mlruns" / name) if own_store else None
            return str(client.create_experiment(name, artifact_location=location, tags=tags))
        for key, value in tags.items():
            if exp.tags.get(key) != value:
                client.set_experiment_tag(exp.experiment_id, key, value)
        return str(exp.experiment_id)


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
            return score_nested(self.scorer, pd.DataFrame(model_input))
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
        return results_frame(results, version=scorer.version)


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
            ColSpec("string", "lead_id"),
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
    example: dict[str, object] = {
        "lead_id": "L-example",
        "created_at": "2025-01-02T00:00:00Z",
        "as_of": "2025-02-01T00:00:00Z",
        "events": json.dumps(events),
    }
    # an input the model requires gets a value it saw: a known level, or a non-negative number
    required = set(scorer.inputs.required)
    for name, kind in scorer.definition.attributes:
        if name in required:
            levels = scorer.levels.get(name) or []
            example[name] = levels[0] if kind == "categorical" and levels else 1
    return pd.DataFrame([example])


def model_lineage(scorer: Scorer, *, version: str | None) -> dict[str, str]:
    """The tags of a run and its model version: :attr:`Scorer.lineage` with the registry
    version (without ``model_version`` when the model is not registered)."""
    lineage = dict(scorer.lineage)
    if version is None:
        lineage.pop("model_version", None)
    else:
        lineage["model_version"] = version
    return lineage


def _process_start(pid: int) -> str | None:
    """``pid:start`` of a live process (its start in clock ticks since boot), None if gone."""
    if not pid_alive(pid):
        return None
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return f"{pid}:"
    return f"{pid}:{stat.rsplit(')', 1)[-1].split()[19]}"


def _owner_token() -> str:
    """This process, and the `dvc` process that runs it as a stage (evaluate reopens train's
    run: the run is in use while that `dvc repro` lives)."""
    token = f"{socket.gethostname()}:{_process_start(os.getpid())}"
    parent = os.getppid()
    try:
        cmdline = Path(f"/proc/{parent}/cmdline").read_bytes().split(b"\0")[:3]
    except OSError:
        cmdline = []
    if "dvc" in {Path(os.fsdecode(arg)).name for arg in cmdline}:
        token += f",{_process_start(parent)}"
    return token


def _owner_alive(token: str) -> bool:
    """Whether a process named in an owner token still runs (on another host: assumed so)."""
    host, _, processes = token.partition(":")
    if host != socket.gethostname():
        return True
    for process in processes.split(","):
        pid, _, _ = process.partition(":")
        if pid.isdigit() and _process_start(int(pid)) in (process, f"{pid}:"):
            return True
    return False


def fail_interrupted_runs(experiment: str, *, root: str | Path = ".") -> list[str]:
    """Mark FAILED the RUNNING runs of ``experiment`` whose process died (kill -9, power cut),
    and remove the model versions such a process registered but never published.

    Call it when a stage starts, before its run: it also tags every run this process starts
    with its owner (``MLFLOW_RUN_CONTEXT``), which is how the next start knows whether a
    RUNNING run is still in use. Runs without that tag are never touched. Returns the ids of
    the runs marked FAILED.
    """
    from mlflow import MlflowClient

    context = json.loads(os.environ.get("MLFLOW_RUN_CONTEXT") or "{}")
    os.environ["MLFLOW_RUN_CONTEXT"] = json.dumps({**context, OWNER_TAG: _owner_token()})
    uri = default_tracking_uri(root)
    client = MlflowClient(tracking_uri=uri, registry_uri=uri)
    exp = client.get_experiment_by_name(experiment)
    if exp is None:
        return []
    failed = []
    for run in client.search_runs(
        [exp.experiment_id], filter_string="attributes.status = 'RUNNING'", max_results=1000
    ):
        owner = run.data.tags.get(OWNER_TAG)
        if owner is None or _owner_alive(owner):
            continue
        client.set_tag(run.info.run_id, "predictive_scoring.interrupted", "its process died")
        client.set_terminated(run.info.run_id, status="FAILED")
        failed.append(run.info.run_id)
        logger.warning(
            "MLflow run %s (%s) was left RUNNING by a process that died; marked FAILED",
            run.info.run_id,
            run.info.run_name,
        )
    _remove_unpublished_versions(client)
    return failed


def _remove_unpublished_versions(client: Any) -> None:
    """Delete the versions a dead export registered but never published with an alias."""
    for found in client.search_model_versions(f"tags.`{PENDING_TAG}` != ''"):
        owner = found.tags.get(PENDING_TAG)
        if owner is None or _owner_alive(owner):
            continue
        mv = client.get_model_version(found.name, found.version)  # a search omits aliases
        if mv.aliases:  # published, then killed before tidying up: the version stands
            client.delete_model_version_tag(mv.name, mv.version, PENDING_TAG)
            continue
        client.delete_model_version(mv.name, mv.version)
        model_id = mv.model_id or str(mv.source).removeprefix("models:/")
        if model_id.startswith("m-"):
            client.finalize_logged_model(model_id, status="FAILED")
        logger.warning(
            "%s version %s was registered by an export that died before publishing it; deleted",
            mv.name,
            mv.version,
        )


def _normalized(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


# Imports what scoring a lead imports, then names the top-level modules loaded.
_IMPORTS_OF_SCORING = """
import json, sys
from predictive_scoring.registry import LeadScoringPyfunc, _input_example
from predictive_scoring.scoring import Scorer
model = LeadScoringPyfunc()
model.scorer = Scorer.load(sys.argv[1])
model.score_frame(_input_example(model.scorer))
print(json.dumps(sorted({name.partition(".")[0] for name in sys.modules})))
"""


def model_requirements(bundle_dir: str | Path) -> list[str]:
    """The pip requirements of the logged model, each pinned to the version installed here.

    They are the project's own dependencies that scoring a lead imports (measured once per
    process, in a fresh interpreter scoring with ``bundle_dir``), plus mlflow; the project's
    code travels inside the model (``code_paths``), since it is on no package index.
    """
    if not _REQUIREMENTS:
        _REQUIREMENTS.extend(_measured_requirements(bundle_dir))
    return list(_REQUIREMENTS)


_REQUIREMENTS: list[str] = []


def _measured_requirements(bundle_dir: str | Path) -> list[str]:
    try:
        declared = importlib.metadata.requires("predictive-scoring") or []
    except importlib.metadata.PackageNotFoundError as exc:
        raise ModelRegistryError(
            "predictive-scoring is not installed, so its dependencies are unknown; "
            "run `pip install -e .` in the project"
        ) from exc
    direct = {
        _normalized(re.split(r"[\s\[<>=!~;]", req, maxsplit=1)[0])
        for req in declared
        if "extra ==" not in req
    }
    proc = subprocess.run(
        [sys.executable, "-c", _IMPORTS_OF_SCORING, str(bundle_dir)],
        capture_output=True,
        text=True,
        env={**os.environ, "PYTHONPATH": os.pathsep.join(p for p in sys.path if p)},
        check=False,
    )
    if proc.returncode != 0:
        raise ModelRegistryError(
            f"cannot score with the bundle {bundle_dir} in a fresh interpreter, so the model's "
            f"requirements are unknown:\n{proc.stderr[-2000:]}"
        )
    modules = json.loads(proc.stdout.strip().splitlines()[-1])
    distributions = importlib.metadata.packages_distributions()
    used = {_normalized(d) for m in modules for d in distributions.get(m, [])} | {"mlflow"}
    return sorted(f"{name}=={importlib.metadata.version(name)}" for name in direct & used)


def _version_description(scorer: Scorer, metrics: Mapping[str, float], run_id: str) -> str:
    """What a data scientist reads first on the version's page: the key test metrics and the
    cut-offs they were measured at."""

    def metric(name: str, fmt: str) -> str:
        value = metrics.get(f"test_{name}")
        return "n/a" if value is None else format(value, fmt)

    t = scorer.thresholds
    lines = [
        f"Test set: {metric('n', ',.0f')} snapshots, {metric('n_positive', ',.0f')} converted.",
        f"ROC AUC {metric('roc_auc', '.3f')}, PR AUC {metric('pr_auc', '.3f')}, "
        f"ECE {metric('ece', '.4f')}, log loss {metric('log_loss', '.4f')}.",
        f"SQL at p >= {t.sql:.3f}: precision {metric('sql_precision', '.2f')}, "
        f"recall {metric('sql_recall', '.2f')}.",
        f"MQL at p >= {t.mql:.3f}: precision {metric('mql_precision', '.2f')}, "
        f"recall {metric('mql_recall', '.2f')}.",
        f"Training run {run_id}; data {scorer.lineage['data_hash']}.",
    ]
    return "\n".join(lines)


def _test_metrics(scorer: Scorer, client: Any, run_id: str) -> dict[str, float]:
    """The test metrics as ``test_<metric>``: the metrics file the bundle carries (every metric,
    whichever way it spells them), with the ones the run logged taking precedence."""
    found = {
        (k if k.startswith("test_") else f"test_{k}"): float(v)
        for k, v in (scorer.metadata.get("metrics") or {}).items()
        if isinstance(v, int | float) and not isinstance(v, bool)
    }
    logged = client.get_run(run_id).data.metrics
    return found | {k: float(v) for k, v in logged.items() if k.startswith("test_")}


def log_bundle_model(
    bundle_dir: str | Path,
    *,
    run_id: str,
    model_name: str,
    alias: str,
    register: bool = True,
    root: str | Path = ".",
) -> str | None:
    """Log the bundle as a pyfunc linked to ``run_id``, register a version, and set ``alias``.

    The version is registered before the model's files are written, so the bundle inside the
    MLflow model carries its registry version: the pyfunc then reports "3", not "run-<id>".
    The alias moves last: until then the version is tagged pending with its owner, and a
    process that dies before (kill -9) leaves it for :func:`fail_interrupted_runs` to delete.
    The run is not reopened, so it never stays RUNNING. The run and the version are tagged
    with the model's lineage (:func:`model_lineage`); the version also carries a few test
    metrics and a description of them. The model carries the project's code and pinned
    requirements, so it deploys from the registry alone.
    """
    import mlflow
    from mlflow import MlflowClient
    from mlflow.entities import LoggedModelOutput

    mlflow.set_tracking_uri(default_tracking_uri(root))
    client = MlflowClient()
    scorer = Scorer.load(bundle_dir)
    requirements = model_requirements(bundle_dir)
    owner = _owner_token()
    version: str | None = None
    with tempfile.TemporaryDirectory() as tmp:
        run = client.get_run(run_id)
        logged = mlflow.initialize_logged_model(
            name="model",
            source_run_id=run_id,
            params=dict(run.data.params),
            tags={OWNER_TAG: owner},
            experiment_id=run.info.experiment_id,
        )
        artifact = Path(bundle_dir).resolve()
        if register:
            version = str(
                mlflow.register_model(
                    f"models:/{logged.model_id}", model_name, tags={PENDING_TAG: owner}
                ).version
            )
            artifact = scorer.with_metadata(version=version).save(Path(tmp) / artifact.name)
        try:
            mlflow.pyfunc.log_model(
                name="model",
                model_id=logged.model_id,
                python_model=str(Path(__file__).with_name("pyfunc_model.py")),
                code_paths=[str(Path(__file__).parent)],
                artifacts={BUNDLE_ARTIFACT: str(artifact)},
                signature=_signature(scorer),
                input_example=_input_example(scorer),
                pip_requirements=requirements,
            )
        except Exception:
            if version is not None:  # no version may point at a model without files
                client.delete_model_version(model_name, version)
            client.finalize_logged_model(logged.model_id, status="FAILED")
            raise
    client.finalize_logged_model(logged.model_id, status="READY")
    client.log_outputs(run_id, [LoggedModelOutput(logged.model_id, step=0)])
    lineage = model_lineage(scorer, version=version)
    for key, tag in lineage.items():
        client.set_tag(run_id, key, tag)
    if version is None:
        return None
    metrics = _test_metrics(scorer, client, run_id)
    for key, tag in lineage.items():
        client.set_model_version_tag(model_name, version, key, tag)
    for name in VERSION_METRICS:
        if f"test_{name}" in metrics:
            client.set_model_version_tag(
                model_name, version, f"test_{name}", str(metrics[f"test_{name}"])
            )
    client.update_model_version(
        model_name, version, description=_version_description(scorer, metrics, run_id)
    )
    client.set_registered_model_alias(model_name, alias, version)  # the one visible step
    client.delete_model_version_tag(model_name, version, PENDING_TAG)
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
                # only the bundle's folder: the model's code and environment files are for
                # `mlflow models serve`, and copying them lengthens a swap under load
                local = mlflow.artifacts.download_artifacts(
                    f"models:/{model_name}/{mv.version}/artifacts",
                    dst_path=tmp,
                    tracking_uri=uri,
                    registry_uri=uri,
                )
        except MlflowException as exc:
            raise ModelRegistryError(
                f"cannot download {model_name} version {mv.version} from {uri}: {exc}"
            ) from exc
        found = sorted(Path(local).glob("*/bundle.json"))
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
