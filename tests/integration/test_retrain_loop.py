"""The retrain loop, run for real on generated data in a temp project: `dvc repro`, `promote`,
the service on the champion, a shifted production period replayed through it, `monitor
--fail-on retrain`, a new CRM export, `dvc repro`, `promote` on the new test set, and the
service's polling reload, with a client scoring throughout.

The CRM is one generated world, 30 months long. The first export is that world as it stood
after 24 months (leads created by then, their events and stage changes up to then). The
production period is `simulate`d after month 24 with a new lead source and replayed; the new
export, taken at the period's end, holds the first export's leads with everything that happened
to them since (from the world) and the period's leads as production saw them (the simulated
ones). Appending the period to the first export alone would not do: leads still open when the
first export was taken would show nothing after it, and would train as not converting.
Regenerating with more months would train on another history that never held the new source.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta
from pathlib import Path

import httpx
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq
import pytest

from predictive_scoring.config import load_params
from predictive_scoring.registry import metric_on_features
from predictive_scoring.scorelog import read_scores
from predictive_scoring.scoring import Scorer
from predictive_scoring.synth import generate_demo
from tests.projects import make_project, run
from tests.registries import MODEL, client_of
from tests.servers import free_port, stop, wait_until_ready

pytestmark = [pytest.mark.integration, pytest.mark.slow]

SCORE_KEY = "loop-crm"
OUTCOME_KEY = "loop-crm-outcomes"
TRAINED_MONTHS = 24  # the first export: what the generate section describes
WORLD_MONTHS = 30  # the CRM's world, long enough to hold the production period
WEEKS = 25  # the production period: longer than the 90-day horizon, so some of it matures
CRM_DIR = "data/raw/crm"  # data.dir: where each export lands (data/demo goes unused)
PARAMS: dict[str, dict[str, object]] = {
    # n_leads is the world's: simulated leads get ids after the world's, never one of them
    "generate": {"n_leads": 5200, "events_per_lead": 25, "months": TRAINED_MONTHS},
    "data": {"dir": CRM_DIR},
    "train": {"n_estimators": 200, "early_stopping_rounds": 30},
    "thresholds": {"capacity_per_week": 10, "min_recall": 0.8},
}
RELOAD_SECONDS = 2
TABLES = ("leads", "events", "outcomes", "latent")
CONTRACT_STAGES = ("mql", "sql", "opportunity", "won", "lost")
Tables = dict[str, pa.Table]


# --- the CRM and its exports --------------------------------------------------------------------
def _utc(moment: pd.Timestamp) -> pa.Scalar:
    return pa.scalar(moment.to_pydatetime(), pa.timestamp("us", tz="UTC"))


def _read(folder: Path) -> Tables:
    return {name: pq.read_table(folder / f"{name}.parquet") for name in TABLES}


def _export(world: Tables, *, created_before: pd.Timestamp, at: pd.Timestamp) -> Tables:
    """The world's leads created before ``created_before`` as a CRM export taken at ``at``
    shows them: their events and stage changes before ``at``."""
    leads = world["leads"].filter(pc.less(world["leads"]["created_at"], _utc(created_before)))
    ids = leads["lead_id"]

    def seen(table: pa.Table, column: str) -> pa.Table:
        return table.filter(
            pc.and_(pc.is_in(table["lead_id"], ids), pc.less(table[column], _utc(at)))
        )

    return {
        "leads": leads,
        "events": seen(world["events"], "ts"),
        "outcomes": seen(world["outcomes"], "ts"),
        "latent": world["latent"].filter(pc.is_in(world["latent"]["lead_id"], ids)),
    }


def _with_period(export: Tables, period: Tables) -> Tables:
    """The export plus the period's tables in the data contract's shape: the stage changes
    only (sales' acceptance lives in the outcome store), the contract's columns."""
    outcomes = period["outcomes"].filter(
        pc.is_in(period["outcomes"]["stage"], pa.array(CONTRACT_STAGES))
    )
    added = {**period, "outcomes": outcomes.select(export["outcomes"].schema.names)}
    return {
        name: pa.concat_tables([export[name], added[name].cast(export[name].schema)])
        for name in TABLES
    }


def _write(tables: Tables, folder: Path) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    for name, table in tables.items():
        pq.write_table(table, folder / f"{name}.parquet")


# --- the commands, the service and a client -----------------------------------------------------
def _cli(project: Path, *args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
    return run([sys.executable, "-m", "predictive_scoring.cli", *args], project, check=check)


def _repro(project: Path) -> str:
    proc = run([sys.executable, "-m", "dvc", "repro"], project)
    return proc.stdout + proc.stderr


@contextmanager
def _serve(project: Path, log: Path) -> Iterator[str]:
    """`predictive-scoring serve` in the project, polling for a new champion, its output in
    ``log``; yields the base URL once /readyz answers. Stopped by SIGTERM."""
    port = free_port()
    env = {
        **os.environ,
        "PYTHONPATH": str(project / "src"),
        "PATH": str(Path(sys.executable).parent) + os.pathsep + os.environ.get("PATH", ""),
        "PREDICTIVE_SCORING_PROJECT_DIR": str(project),
        "PREDICTIVE_SCORING_RELOAD_INTERVAL_SECONDS": str(RELOAD_SECONDS),
    }
    cmd = [sys.executable, "-m", "predictive_scoring.cli", "serve", "--port", str(port)]
    base = f"http://127.0.0.1:{port}"
    with log.open("w") as out:
        proc = subprocess.Popen(cmd, cwd=project, env=env, stdout=out, stderr=subprocess.STDOUT)
        try:
            wait_until_ready(proc, f"{base}/readyz", log)  # a busy host waits longer
            yield base
        finally:
            stop(proc)


class ScoringClient(threading.Thread):
    """Scores one lead after another, as a CRM would, and notes who answered and what failed."""

    def __init__(self, base: str) -> None:
        super().__init__(daemon=True)
        self.base = base
        self.answers: list[tuple[float, str]] = []  # (monotonic time, model version)
        self.failures: list[str] = []
        self.halt = threading.Event()

    def run(self) -> None:
        headers = {"X-API-Key": SCORE_KEY}
        with httpx.Client(base_url=self.base, headers=headers, timeout=60) as http:
            while not self.halt.is_set():
                now = datetime.now(UTC)
                lead = {
                    "lead_id": f"loop-client-{len(self.answers) + len(self.failures)}",
                    "created_at": (now - timedelta(days=3)).isoformat(),
                    "attributes": {"industry": "software", "employees": 250,
                                   "job_title": "VP Marketing", "lead_source": "webinar"},
                    "events": [{"event_type": "pricing_page_view",
                                "ts": (now - timedelta(days=1)).isoformat()}],
                }  # fmt: skip
                try:
                    response = http.post("/v1/score", json=lead)
                except httpx.HTTPError as exc:
                    self.failures.append(repr(exc))
                else:
                    if response.status_code == 200:
                        version = response.json()["model"]["version"]
                        self.answers.append((time.monotonic(), version))
                    else:
                        self.failures.append(f"{response.status_code}: {response.text[:300]}")
                self.halt.wait(0.05)

    def versions(self) -> list[str]:
        """The versions that answered, each run of the same version once."""
        runs: list[str] = []
        for _, version in self.answers:
            if not runs or runs[-1] != version:
                runs.append(version)
        return runs


def _metric(text: str, name: str) -> float:
    """A sample's value in a Prometheus text exposition, 0 when absent."""
    for line in text.splitlines():
        if line.startswith(name + " "):
            return float(line.split()[-1])
    return 0.0


# --- the loop -----------------------------------------------------------------------------------
def test_monitor_says_retrain_then_the_loop_retrains_promotes_and_reloads(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    for name in list(os.environ):
        if name.startswith("PREDICTIVE_SCORING_") or name == "MLFLOW_TRACKING_URI":
            monkeypatch.delenv(name)
    # Keys from the environment, for the service and for `simulate --url` alike.
    monkeypatch.setenv("PREDICTIVE_SCORING_API_KEYS", SCORE_KEY)
    monkeypatch.setenv("PREDICTIVE_SCORING_OUTCOME_KEYS", OUTCOME_KEY)
    (tmp_path / "project").mkdir()
    project = make_project(tmp_path / "project", PARAMS)
    demo = load_params(project / "params.yaml").generate
    crm = project / CRM_DIR

    # The CRM's world, and the first export: the world after TRAINED_MONTHS.
    generate_demo(tmp_path / "world", demo.model_copy(update={"months": WORLD_MONTHS}))
    world = _read(tmp_path / "world")
    first_end = pd.Timestamp(demo.start, tz="UTC") + pd.DateOffset(months=TRAINED_MONTHS)
    first = _export(world, created_before=first_end, at=first_end)
    _write(first, crm)

    # 1. dvc repro, promote: version 1 becomes the champion.
    _repro(project)
    promoted = _cli(project, "promote").stdout
    assert promoted.startswith("promoted lead-scoring v1 to @champion: test roc_auc"), promoted
    registry = client_of(project)
    assert str(registry.get_model_version_by_alias(MODEL, "champion").version) == "1"
    v1_bundle = shutil.copytree(project / "models/lead-scoring", tmp_path / "v1")

    with _serve(project, tmp_path / "service.log") as base:
        served = httpx.get(f"{base}/v1/model", headers={"X-API-Key": SCORE_KEY}).json()
        assert (served["version"], served["source"]) == ("1", "models:/lead-scoring@champion")

        # 2. A production period with a new lead source, replayed through the service.
        period_end = first_end + pd.Timedelta(weeks=WEEKS)
        created = world["leads"]["created_at"]
        in_period = pc.and_(
            pc.greater_equal(created, _utc(first_end)), pc.less(created, _utc(period_end))
        )
        n_leads = int(pc.sum(in_period).as_py())  # the world's volume in those weeks
        out = _cli(
            project, "simulate", "--weeks", str(WEEKS), "--n-leads", str(n_leads),
            "--shift", "new_source", "--share", "0.6", "--url", base, "--rate", "40",
        ).stdout  # fmt: skip
        production = project / "data/production"
        period = json.loads((production / "period.json").read_text())
        replayed = json.loads((production / "replay/replay.json").read_text())
        assert pd.Timestamp(period["start"]) == first_end
        assert pd.Timestamp(period["end"]) == period_end
        assert period["shift"]["source"] == "lead_vendor"
        assert replayed["errors"] == 0 and replayed["scorings"] == replayed["scorings_planned"]
        assert replayed["outcomes_posted"] == replayed["outcomes_due"] > 0
        assert f"{replayed['scorings']} of {replayed['scorings']} scorings" in out

        # The score log in the project holds every replayed scoring, by version 1.
        logs = project / "logs"
        deadline = time.monotonic() + 120  # flushed every second; a slow host may lag
        while True:
            logged = read_scores(logs, columns=["lead_id", "as_of", "model_version", "source"])
            if len(logged) >= replayed["scorings"] or time.monotonic() > deadline:
                break
            time.sleep(0.5)
        assert len(logged) == replayed["scorings"]
        assert set(logged["model_version"]) == {"1"} and set(logged["source"]) == {"api"}
        period_leads = pq.read_table(production / "leads.parquet")
        assert set(logged["lead_id"]) == set(period_leads["lead_id"].to_pylist())

        # 3. monitor --fail-on retrain: exit 3, the new source named as the reason.
        monitored = _cli(project, "monitor", "--fail-on", "retrain", check=False)
        assert monitored.returncode == 3, monitored.stdout + monitored.stderr[-3000:]
        assert f"lead-scoring v1: {replayed['scorings']:,} scores" in monitored.stdout
        assert "verdict: retrain" in monitored.stdout
        report = json.loads((project / "reports/monitoring.json").read_text())
        assert report["model"]["version"] == "1"
        assert report["window"]["scores"] == replayed["scorings"]
        assert report["verdict"]["level"] == "retrain"
        reasons = [r for r in report["verdict"]["reasons"] if r["level"] == "retrain"]
        assert any(r["check"] == "feature_psi" and "lead_source" in r["value"] for r in reasons)
        worst = max(report["drift"]["features"], key=lambda f: f["psi"])
        assert worst["feature"] == "lead_source" and worst["largest_change"]["bin"] == "missing"
        assert worst["largest_change"]["current"] > 4 * worst["largest_change"]["reference"]
        tags = registry.get_model_version(MODEL, "1").tags
        assert tags["monitor.verdict"] == "retrain"

        # 4. From here on a client scores throughout the retraining, promotion and reload.
        client = ScoringClient(base)
        client.start()
        try:
            # The new export: the first export's leads up to the period's end, and the period.
            old = _export(world, created_before=first_end, at=period_end)
            second = _with_period(old, _read(production))
            _write(second, crm)
            assert second["leads"].num_rows == first["leads"].num_rows + period_leads.num_rows
            assert second["events"].num_rows > first["events"].num_rows

            # 5. dvc repro: version 2 is the challenger; the champion and what is served stay.
            repro = _repro(project)
            assert "Running stage 'featurize'" in repro and "Running stage 'export'" in repro
            assert str(registry.get_model_version_by_alias(MODEL, "challenger").version) == "2"
            assert str(registry.get_model_version_by_alias(MODEL, "champion").version) == "1"
            test = pd.read_parquet(project / "data/features/test.parquet")
            assert test["lead_id"].isin(period_leads["lead_id"].to_pylist()).all()
            assert (test["lead_source"] == "lead_vendor").any()

            # 6. promote: both measured on the same new test set, the challenger wins.
            v1 = metric_on_features(Scorer.load(v1_bundle), test, metric="roc_auc")
            v2 = metric_on_features(
                Scorer.load(project / "models/lead-scoring"), test, metric="roc_auc"
            )
            promote_started = time.monotonic()
            promoted = _cli(project, "promote").stdout.strip()
            assert promoted == (
                f"promoted lead-scoring v2 to @champion: test roc_auc {v2:.4f} "
                f"(champion v1: {v1:.4f})"
            )
            evaluated = json.loads((project / "metrics/evaluate.json").read_text())
            assert f"{evaluated['roc_auc']:.4f}" == f"{v2:.4f}"

            # 7. The service picks version 2 up by polling; the client sees one switch.
            deadline = time.monotonic() + 300  # a poll every 2 s, each a full load
            while client.is_alive() and time.monotonic() < deadline:
                if sum(v == "2" for _, v in client.answers) >= 20:
                    break
                time.sleep(0.2)
        finally:
            client.halt.set()
            client.join(timeout=120)
        assert not client.is_alive()
        assert client.failures == []
        assert client.versions() == ["1", "2"], client.versions()
        assert all(v == "1" for t, v in client.answers if t < promote_started)
        assert sum(v == "2" for _, v in client.answers) >= 20

        keyed = {"X-API-Key": SCORE_KEY}
        served = httpx.get(f"{base}/v1/model", headers=keyed).json()
        assert served["version"] == "2"
        assert served["data_hash"] != Scorer.load(v1_bundle).lineage["data_hash"]  # new data
        metrics = httpx.get(f"{base}/metrics").text
        assert _metric(metrics, 'predictive_scoring_model_reloads_total{outcome="loaded"}') == 2
        assert _metric(metrics, 'predictive_scoring_model_reloads_total{outcome="refused"}') == 0

    service_log = (tmp_path / "service.log").read_text()
    assert "serving lead-scoring version 2 (was lead-scoring version 1)" in service_log
    # Stopped gracefully: every answer the client got is in the log, under its version.
    scored = read_scores(
        logs, columns=["lead_id", "model_version"], where="lead_id LIKE 'loop-client-%'"
    )
    assert len(scored) == len(client.answers)
    assert scored.groupby("model_version").size().to_dict() == {
        "1": sum(v == "1" for _, v in client.answers),
        "2": sum(v == "2" for _, v in client.answers),
    }
