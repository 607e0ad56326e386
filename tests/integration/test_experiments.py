"""DVC experiments: `-S` rewrites only its line of params.yaml; queued runs reach the store."""

from __future__ import annotations

import contextlib
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from mlflow import MlflowClient

from tests.projects import REPO, make_project, run

pytestmark = pytest.mark.integration

# As small as the pipeline allows: both classes in every split, a few trees.
SMALL = {
    "generate": {"n_leads": 1500, "events_per_lead": 15},
    "train": {"n_estimators": 60, "early_stopping_rounds": 10},
    "thresholds": {"capacity_per_week": 10, "min_recall": 0.8},
}


def _without(lines: list[str], leaf: str) -> list[str]:
    """The lines of params.yaml without ``leaf``'s own line and its block list."""
    out, in_leaf = [], False
    for line in lines:
        if line.strip().startswith(f"{leaf}:"):
            in_leaf = True
        elif not (in_leaf and line.lstrip().startswith("- ")):
            in_leaf = False
            out.append(line)
    return out


@pytest.mark.parametrize(
    "override",
    ["train.num_leaves=15", "featurize.offsets_days=[0,7]", "data.label_column=converted"],
)
def test_dvc_exp_run_set_param_changes_only_the_lines_it_sets(
    tmp_path: Path, override: str
) -> None:
    """params.yaml is in the form DVC's writer (the one `dvc exp run -S` uses) writes back."""
    from dvc.utils.hydra import apply_overrides

    original = (REPO / "params.yaml").read_text()
    copy = tmp_path / "params.yaml"
    copy.write_text(original)
    apply_overrides(copy, [override])
    leaf = override.split("=")[0].rsplit(".", 1)[1]
    after = copy.read_text()
    assert after != original
    assert _without(after.splitlines(), leaf) == _without(original.splitlines(), leaf)


def _end_workers_in(project: Path) -> None:
    """SIGTERM every process still working in ``project`` (an idle DVC queue worker that
    `dvc queue stop` missed), so the suite leaves nothing running behind it."""
    for proc in Path("/proc").iterdir():
        if not proc.name.isdigit() or int(proc.name) == os.getpid():
            continue
        try:
            cwd = (proc / "cwd").resolve()
        except OSError:
            continue
        if cwd == project or project in cwd.parents:
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.kill(int(proc.name), signal.SIGTERM)


def _run_all(dvc: list[str], project: Path, *, limit_s: float = 600.0) -> str:
    """`dvc exp run --run-all -j 2`, then the queue's status once both tasks have ended.

    DVC runs the queue in daemonised workers that inherit the command's output, and a worker
    has been seen to idle on after the queue emptied, so the output goes to a file (not a pipe
    the test would wait on), the queue's own status says when the tasks ended, and
    `dvc queue stop --kill` ends any worker left behind.
    """
    log = project / "run-all.log"
    env = {**os.environ, "PYTHONPATH": str(project / "src")}
    env.pop("MLFLOW_TRACKING_URI", None)
    env["PATH"] = str(Path(sys.executable).parent) + os.pathsep + env.get("PATH", "")
    with log.open("w") as out:
        subprocess.run(
            [*dvc, "exp", "run", "--run-all", "-j", "2"],
            cwd=project,
            env=env,
            stdout=out,
            stderr=subprocess.STDOUT,
            timeout=limit_s,
            check=True,
        )
    deadline = time.monotonic() + limit_s
    try:
        while True:
            status = run([*dvc, "queue", "status"], project).stdout
            tasks = [line for line in status.splitlines()[1:] if line.strip() and " " in line]
            ended = [t for t in tasks if "Success" in t or "Failed" in t]
            if len(ended) >= 2:
                break
            assert time.monotonic() < deadline, status + log.read_text()[-4000:]
            time.sleep(2)
    finally:
        run([*dvc, "queue", "stop", "--kill"], project, check=False)
        _end_workers_in(project)
    assert "database is locked" not in log.read_text(), log.read_text()[-4000:]
    return status


@pytest.mark.slow
def test_two_queued_experiments_run_in_parallel_into_the_project_store(tmp_path: Path) -> None:
    project = make_project(tmp_path, SMALL)
    dvc = [sys.executable, "-m", "dvc"]
    for leaves in (6, 12):
        run([*dvc, "exp", "run", "--queue", "-S", f"train.num_leaves={leaves}"], project)
    status = _run_all(dvc, project)
    assert status.count("Success") == 2, status + "\n".join(
        run([*dvc, "queue", "logs", line.split()[0]], project, check=False).stdout[-3000:]
        for line in status.splitlines()[1:]
        if "Failed" in line
    )

    uri = f"sqlite:///{project / 'mlflow.db'}"
    client = MlflowClient(tracking_uri=uri, registry_uri=uri)
    experiment = client.get_experiment_by_name("lead-scoring")
    assert experiment is not None
    assert experiment.tags["mlflow.experimentKind"] == "custom_model_development"
    assert Path(experiment.artifact_location) == project / "mlruns" / "lead-scoring"
    runs = client.search_runs([experiment.experiment_id])
    assert sorted(r.data.params["train.num_leaves"] for r in runs) == ["12", "6"]
    # MLflow's UI opens the runs with the test metrics as columns and a few charts
    view = json.loads(json.loads(experiment.tags["mlflow.sharedViewState.test-metrics"])["state"])
    assert "metrics.`test_roc_auc`" in view["selectedColumns"]
    assert len([c for c in view["compareRunCharts"] if not c["deleted"]]) == 3
    for r in runs:
        assert "test_roc_auc" in r.data.metrics  # evaluate logged to the same run
        assert len(client.get_metric_history(r.info.run_id, "valid_log_loss_by_tree")) > 1
        assert "train.num_leaves" in r.data.tags["mlflow.note.content"]
    versions = client.search_model_versions("name = 'lead-scoring'")
    assert {v.run_id for v in versions} == {r.info.run_id for r in runs}
    # nothing was logged to a store inside DVC's temporary workspaces
    assert not list((project / ".dvc").rglob("mlflow.db"))

    # `dvc exp show` reads each experiment's metrics from its commit (metrics/ is in git)
    shown = json.loads(run([*dvc, "exp", "show", "--json"], project).stdout)
    experiments = [e for row in shown for e in row.get("experiments") or []]
    assert len(experiments) == 2
    for experiment_row in experiments:
        metrics = experiment_row["revs"][0]["data"]["metrics"]
        assert 0.5 < metrics["metrics/evaluate.json"]["data"]["roc_auc"] <= 1.0
        assert "valid_roc_auc" in metrics["metrics/train.json"]["data"]
