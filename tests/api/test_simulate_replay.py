"""A simulated production period replayed through a real uvicorn: every scheduled scoring lands
in the score log once, and every outcome due in the outcome store."""

from __future__ import annotations

import json
import os
from collections.abc import Iterator
from pathlib import Path

import duckdb
import pandas as pd
import pytest
import yaml
from tests.servers import uvicorn_service
from typer.testing import CliRunner

from predictive_scoring.cli import app
from predictive_scoring.config import DataParams, FeaturizeParams, GenerateParams, TrainParams
from predictive_scoring.dataset import featurize_files
from predictive_scoring.records import OUTCOMES, SCORES, scan
from predictive_scoring.scoring import Scorer
from predictive_scoring.simulate import ReplaySummary, Shift, replay, simulate_period
from predictive_scoring.synth import generate_demo
from predictive_scoring.thresholds import Thresholds
from predictive_scoring.train import train_model

pytestmark = [pytest.mark.api, pytest.mark.slow]

DEMO = GenerateParams(n_leads=3000, months=12, seed=7)
SCORE_KEY = "simulated-crm"
OUTCOME_KEY = "simulated-crm-outcomes"
AGES = (0, 7, 30, 60)


@pytest.fixture(scope="module")
def bundle(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A model trained on the demo funnel the period continues (a few seconds)."""
    root = tmp_path_factory.mktemp("replay-model")
    raw = root / "raw"
    generate_demo(raw, DEMO)
    features = featurize_files(DataParams(dir=str(raw)), FeaturizeParams(), root=raw)
    result = train_model(
        features.frames, features.definition, TrainParams(num_threads=1, n_estimators=100)
    )
    scorer = Scorer(
        definition=features.definition,
        levels=result.levels,
        booster=result.booster,
        calibrator=result.calibrator,
        thresholds=Thresholds(mql=0.1, sql=0.3, base_rate=0.1),
        metadata={"name": "lead-scoring", "version": "1"},
    )
    return scorer.save(root / "bundle")


@pytest.fixture(scope="module")
def replayed(
    bundle: Path, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[tuple[Path, Path, ReplaySummary]]:
    """A four-week period with a new lead source, replayed; the service is stopped (and its
    log flushed) before the tests read the stores."""
    root = tmp_path_factory.mktemp("replay")
    period = root / "period"
    simulate_period(period, DEMO, weeks=4, shift=Shift(kind="new_source"), seed=1, n_leads=150)
    logs = root / "logs"
    env = {k: v for k, v in os.environ.items() if not k.startswith("PREDICTIVE_SCORING_")}
    env.pop("MLFLOW_TRACKING_URI", None)
    env |= {
        "PREDICTIVE_SCORING_API_KEYS": SCORE_KEY,
        "PREDICTIVE_SCORING_OUTCOME_KEYS": OUTCOME_KEY,
        "PREDICTIVE_SCORING_BUNDLE_DIR": str(bundle),
        "PREDICTIVE_SCORING_PROJECT_DIR": str(root),
        "PREDICTIVE_SCORING_LOG_DIR": str(logs),
    }
    with uvicorn_service(env, cwd=root) as base:
        summary = replay(
            period,
            url=base,
            api_key=SCORE_KEY,
            outcome_key=OUTCOME_KEY,
            rate=40.0,
            batch_size=25,
            ages=AGES,
        )
    yield period, logs, summary


def test_every_scheduled_scoring_is_answered_and_logged_once(
    replayed: tuple[Path, Path, ReplaySummary],
) -> None:
    period, logs, summary = replayed
    assert summary.errors == 0, summary
    assert summary.scorings == summary.scorings_planned > 150
    assert summary.warnings > 0  # the new source is unseen: scored as missing, and said so
    logged = (
        scan(duckdb.connect(), logs, SCORES, columns=["lead_id", "as_of", "source"])
        .df()
        .drop_duplicates(ignore_index=True)
    )
    assert len(logged) == summary.scorings  # no scoring twice
    assert (logged["source"] == "api").all()
    leads = pd.read_parquet(period / "leads.parquet").set_index("lead_id")
    assert set(logged["lead_id"]) == set(leads.index)  # every lead, at creation at least
    created = leads.loc[logged["lead_id"], "created_at"].dt.floor("s").to_numpy()
    age = (logged["as_of"].to_numpy() - created) - pd.Timedelta(days=summary.offset_days)
    assert set(age) <= {pd.Timedelta(days=a) for a in AGES}
    assert (logged["as_of"] < pd.Timestamp(summary.end)).all()


def test_every_outcome_due_is_stored_at_its_replayed_time(
    replayed: tuple[Path, Path, ReplaySummary],
) -> None:
    _, logs, summary = replayed
    assert summary.outcomes_endpoint
    assert summary.outcomes_posted == summary.outcomes_due > 0
    stored = scan(duckdb.connect(), logs, OUTCOMES, columns=["lead_id", "stage", "ts", "reason"])
    got = stored.df()
    due = pd.read_parquet(summary.outcomes_file)
    key = ["lead_id", "stage", "ts"]
    assert set(got[key].itertuples(index=False)) == set(due[key].itertuples(index=False))
    rejected = got[got["stage"] == "sql_rejected"]
    assert rejected["reason"].notna().all()


def test_the_command_replays_with_the_keys_of_the_environment(
    bundle: Path, tmp_path: Path
) -> None:
    """`simulate --url` takes its keys where the service does, and says what it sent."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("PREDICTIVE_SCORING_")}
    env.pop("MLFLOW_TRACKING_URI", None)
    keys = {
        "PREDICTIVE_SCORING_API_KEYS": SCORE_KEY,
        "PREDICTIVE_SCORING_OUTCOME_KEYS": OUTCOME_KEY,
    }
    env |= keys | {
        "PREDICTIVE_SCORING_BUNDLE_DIR": str(bundle),
        "PREDICTIVE_SCORING_PROJECT_DIR": str(tmp_path),
        "PREDICTIVE_SCORING_LOG_DIR": str(tmp_path / "logs"),
    }
    params = tmp_path / "params.yaml"
    params.write_text(yaml.safe_dump({"generate": DEMO.model_dump()}))
    out = tmp_path / "period"
    args = ["simulate", "--out", str(out), "--weeks", "2", "--n-leads", "40"]
    args += ["--params", str(params), "--rate", "40", "--ages", "0,7"]
    with uvicorn_service(env, cwd=tmp_path) as base:
        result = CliRunner().invoke(app, [*args, "--url", base], env=keys)
    assert result.exit_code == 0, result.output
    summary = json.loads((out / "replay" / "replay.json").read_text())
    assert summary["errors"] == 0 and summary["scorings"] == summary["scorings_planned"] > 40
    assert summary["outcomes_posted"] == summary["outcomes_due"]
    assert f"{summary['scorings']} of {summary['scorings']} scorings of 40 leads" in result.output
