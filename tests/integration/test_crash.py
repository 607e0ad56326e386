"""Crash safety: `dvc repro` killed with SIGKILL during export and during train, and file scoring
killed while it writes, in a temp project reproduced with tiny params.

Each kill lands at a point the process announces itself, never after a guessed delay: export once
its new version is registered but not yet published (the version's pending tag is in mlflow.db),
train while its MLflow run is RUNNING, scoring while its temp file exists. The whole process group
dies (`dvc` and the stage), as on a power cut. Afterwards the bundle, the registry's challenger
and the scored file are each the old one or the new one, never partial, and the next run recovers.
"""

from __future__ import annotations

import fcntl
import hashlib
import json
import os
import signal
import sqlite3
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from contextlib import closing
from pathlib import Path

import pandas as pd
import pytest
import yaml
from mlflow import MlflowClient

from predictive_scoring.registry import OWNER_TAG, PENDING_TAG
from predictive_scoring.scoring import Scorer
from tests.projects import TINY, make_project, run

pytestmark = [pytest.mark.integration, pytest.mark.slow]

MODEL = "lead-scoring"
BUNDLE = Path("models/lead-scoring")
# Leads in the file scored while it is killed: enough for the write to last a few tenths of a
# second (about 10 MB of CSV), so the poll below sees its temp file.
SCORED_LEADS = 30_000


@pytest.fixture(scope="module")
def project(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    """The repository reproduced with tiny params: version 1 is the challenger and the bundle."""
    dest = make_project(tmp_path_factory.mktemp("crash"), TINY)
    run([sys.executable, "-m", "dvc", "repro"], dest)
    yield dest


def _env(project: Path) -> dict[str, str]:
    env = {**os.environ, "PYTHONPATH": str(project / "src")}
    env.pop("MLFLOW_TRACKING_URI", None)
    env["PATH"] = str(Path(sys.executable).parent) + os.pathsep + env.get("PATH", "")
    return env


def _signal_when(
    cmd: list[str],
    project: Path,
    ready: Callable[[], bool],
    *,
    sig: signal.Signals = signal.SIGKILL,
    group: bool = True,
) -> int:
    """Start ``cmd``, poll ``ready`` every few milliseconds, then send ``sig`` to its process
    group (or to it alone); its exit code. Fails with its output if it ends first."""
    log_path = project / "signalled.log"
    with log_path.open("wb") as log:
        proc = subprocess.Popen(
            cmd, cwd=project, env=_env(project), stdout=log, stderr=subprocess.STDOUT,
            start_new_session=True,
        )  # fmt: skip
        deadline = time.monotonic() + 600
        while not ready():
            if proc.poll() is not None or time.monotonic() > deadline:
                proc.kill()
                proc.wait()
                output = log_path.read_text(errors="replace")[-4000:]
                pytest.fail(f"{' '.join(cmd)} ended before the kill point:\n{output}")
            time.sleep(0.002)
        if group:
            os.killpg(proc.pid, sig)
        else:
            proc.send_signal(sig)
        return proc.wait()


def _rows(project: Path, query: str) -> list[tuple[object, ...]]:
    """Rows of mlflow.db, read-only; none while the store is being created or locked."""
    db = project / "mlflow.db"
    if not db.exists():
        return []
    try:
        with closing(sqlite3.connect(f"file:{db}?mode=ro", uri=True, timeout=0.1)) as con:
            return con.execute(query).fetchall()
    except sqlite3.OperationalError:
        return []


def _running(project: Path) -> list[str]:
    return [str(r[0]) for r in _rows(project, "SELECT run_uuid FROM runs WHERE status='RUNNING'")]


def _registered_unpublished(project: Path) -> bool:
    """Whether a version carries the pending tag (read straight from the tables: fast)."""
    query = f"SELECT version FROM model_version_tags WHERE key='{PENDING_TAG}'"
    return bool(_rows(project, query))


def _pending(project: Path) -> list[str]:
    found = _client(project).search_model_versions(f"tags.`{PENDING_TAG}` != ''")
    return sorted(str(mv.version) for mv in found)


def _client(project: Path) -> MlflowClient:
    uri = f"sqlite:///{project / 'mlflow.db'}"
    return MlflowClient(tracking_uri=uri, registry_uri=uri)


def _challenger(project: Path) -> str:
    return str(_client(project).get_model_version_by_alias(MODEL, "challenger").version)


def _digest(folder: Path) -> str:
    """One hash of every file in a folder, names included."""
    h = hashlib.sha256()
    for path in sorted(p for p in folder.rglob("*") if p.is_file()):
        h.update(str(path.relative_to(folder)).encode() + b"\0" + path.read_bytes())
    return h.hexdigest()


def _bundle_state(project: Path) -> tuple[str, str]:
    """The bundle's version as it reports it (reading it checks every part) and its hash."""
    return Scorer.load(project / BUNDLE).version, _digest(project / BUNDLE)


def test_sigkill_during_export_and_train_leaves_old_or_new_and_dvc_repro_recovers(
    project: Path,
) -> None:
    client = _client(project)
    before = _bundle_state(project)
    assert before[0] == _challenger(project) == "1"

    # 1. Export, killed once its version is registered and before the alias publishes it.
    dvc_export = [sys.executable, "-m", "dvc", "repro", "--force", "--single-item", "export"]
    _signal_when(dvc_export, project, lambda: _registered_unpublished(project))
    assert _bundle_state(project) == before
    assert _challenger(project) == "1"
    assert _pending(project) == ["2"]  # registered, never published
    assert _running(project) == []  # export does not reopen the training run

    # 2. Train (new params), killed while its MLflow run is RUNNING.
    params = yaml.safe_load((project / "params.yaml").read_text())
    params["train"]["num_leaves"] = int(params["train"]["num_leaves"]) + 4
    (project / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=False))
    _signal_when([sys.executable, "-m", "dvc", "repro"], project, lambda: bool(_running(project)))
    killed = _running(project)
    assert len(killed) == 1
    assert OWNER_TAG in client.get_run(killed[0]).data.tags
    assert _bundle_state(project) == before
    assert _challenger(project) == "1"

    # 3. The next `dvc repro` succeeds and leaves nothing half done.
    run([sys.executable, "-m", "dvc", "repro"], project)
    assert _running(project) == []
    assert client.get_run(killed[0]).info.status == "FAILED"
    assert _pending(project) == []
    versions = {str(mv.version) for mv in client.search_model_versions(f"name='{MODEL}'")}
    new = _challenger(project)
    assert new not in {"1"} and "1" in versions and len(versions) == 2, versions
    version, _ = _bundle_state(project)
    assert version == new
    assert [p.name for p in (project / "models").glob(".lead-scoring.*")] == []
    status = run([sys.executable, "-m", "dvc", "status"], project).stdout
    assert "up to date" in status, status


def _score_cmd(project: Path, leads: Path, output: Path) -> list[str]:
    return [
        sys.executable, "-m", "predictive_scoring.cli", "score", "--leads", str(leads),
        "--output", str(output), "--model", str(project / BUNDLE), "--no-log",
    ]  # fmt: skip


def _temps(output: Path) -> list[Path]:
    return sorted(output.parent.glob(f".{output.name}.*.tmp"))


def test_killed_file_scoring_leaves_the_old_output_and_the_next_run_cleans_up(
    project: Path, tmp_path: Path
) -> None:
    leads = pd.read_parquet(project / "data/demo/leads.parquet")
    small, other, big = tmp_path / "small.csv", tmp_path / "other.csv", tmp_path / "big.csv"
    leads.head(50).to_csv(small, index=False)
    leads.head(60).to_csv(other, index=False)
    copies = -(-SCORED_LEADS // len(leads))
    pd.concat(
        [leads.assign(lead_id=leads["lead_id"].astype(str) + f"-{i}") for i in range(copies)]
    ).to_csv(big, index=False)
    output = tmp_path / "scored.csv"
    run(_score_cmd(project, small, output), project)
    old = output.read_bytes()

    # SIGKILL while writing: the old output stays whole; the temp file is left behind.
    _signal_when(_score_cmd(project, big, output), project, lambda: bool(_temps(output)))
    assert output.read_bytes() == old
    left = _temps(output)
    assert len(left) == 1

    # The next run removes it first; SIGTERM while that run writes: it removes its own too.
    code = _signal_when(
        _score_cmd(project, big, output),
        project,
        lambda: bool(_temps(output)) and _temps(output) != left,
        sig=signal.SIGTERM,
        group=False,
    )
    assert code != 0
    assert output.read_bytes() == old
    assert _temps(output) == []

    # A temp file a live process holds is left alone; the dead one's is removed; the output is new.
    held = output.parent / f".{output.name}.live.tmp"
    held.write_text("a live writer's partial output")
    with held.open() as fh:
        fcntl.flock(fh, fcntl.LOCK_EX)
        run(_score_cmd(project, other, output), project)
        assert _temps(output) == [held]
    held.unlink()
    assert len(pd.read_csv(output)) == 60


def test_the_next_start_settles_only_what_dead_processes_left(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Runs and versions owned by a live process, or by no known one, are left alone; a version
    published before its owner died keeps its alias."""
    from predictive_scoring.registry import _owner_token, fail_interrupted_runs

    monkeypatch.delenv("MLFLOW_RUN_CONTEXT", raising=False)  # restored after the test
    # an earlier test's mlflow.set_tracking_uri exports the variable for the whole process
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    client = _client(tmp_path)
    exp = client.create_experiment("lead-scoring", artifact_location=str(tmp_path / "mlruns"))
    proc = subprocess.Popen([sys.executable, "-c", "pass"])
    proc.wait()
    dead = f"{_owner_token().partition(':')[0]}:{proc.pid}:1"
    runs = {
        "dead": client.create_run(exp, tags={OWNER_TAG: dead}),
        "alive": client.create_run(exp, tags={OWNER_TAG: _owner_token()}),
        "unknown": client.create_run(exp),
    }
    client.create_registered_model(MODEL)
    for _ in range(2):
        client.create_model_version(MODEL, "file:///nowhere", tags={PENDING_TAG: dead})
    client.set_registered_model_alias(MODEL, "challenger", "2")  # published, then killed

    failed = fail_interrupted_runs("lead-scoring", root=tmp_path)
    assert failed == [runs["dead"].info.run_id]
    status = {k: client.get_run(r.info.run_id).info.status for k, r in runs.items()}
    assert status == {"dead": "FAILED", "alive": "RUNNING", "unknown": "RUNNING"}
    versions = client.search_model_versions(f"name='{MODEL}'")
    assert [(str(mv.version), PENDING_TAG in mv.tags) for mv in versions] == [("2", False)]
    assert _challenger(tmp_path) == "2"
    assert json.loads(os.environ["MLFLOW_RUN_CONTEXT"])[OWNER_TAG] == _owner_token()
