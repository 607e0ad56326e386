"""`dvc repro` end to end on tiny demo data: MLflow, the registry, the bundle, identity."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import mlflow
import numpy as np
import pandas as pd
import pytest
import yaml
from mlflow import MlflowClient

from predictive_scoring.config import load_params
from predictive_scoring.errors import PromotionRefused
from predictive_scoring.evaluate import evaluate_predictions
from predictive_scoring.ingress import raw_from_frames
from predictive_scoring.registry import (
    load_registered_scorer,
    promote_challenger,
    pyfunc_input_frame,
)
from predictive_scoring.scoring import FRAME_LIMITS, Scorer
from predictive_scoring.thresholds import choose_thresholds
from predictive_scoring.train import encode_frame
from tests.projects import REPO, make_project, run, score_file

pytestmark = [pytest.mark.integration, pytest.mark.slow]
AS_OF = "2025-10-01T00:00:00Z"
CODE = ("src/", "pipelines/")


def tracking(project: Path) -> MlflowClient:
    mlflow.set_tracking_uri(f"sqlite:///{project / 'mlflow.db'}")
    return MlflowClient()


def sample_leads(project: Path, n: int = 40) -> tuple[pd.DataFrame, pd.DataFrame]:
    leads = pd.read_parquet(project / "data/demo/leads.parquet")
    # Leads that existed at AS_OF: scoring a lead before its creation is refused.
    leads = leads[leads["created_at"] < pd.Timestamp(AS_OF)].head(n)
    events = pd.read_parquet(project / "data/demo/events.parquet")
    # ... and the events before it: the file scorer refuses an event after its --as-of.
    events = events[
        events["lead_id"].isin(leads["lead_id"]) & (events["ts"] < pd.Timestamp(AS_OF))
    ]
    return leads, events[["lead_id", "event_type", "ts"]]


def test_repro_writes_every_output(project: Path) -> None:
    for path in (
        "data/features/train.parquet",
        "models/lead-scoring/bundle.json",
        "models/thresholds.json",
        "reports/thresholds.csv",
        "plots/roc.json",
        "plots/score_histogram.png",
    ):
        assert (project / path).exists(), path
    metrics = json.loads((project / "metrics/evaluate.json").read_text())
    assert 0.5 < metrics["roc_auc"] <= 1.0
    assert 0 <= metrics["ece"] < 0.2
    assert 0.5 < metrics["ceiling_auc"] <= 1.0
    assert metrics["best_single_feature_auc"] < metrics["ceiling_auc"]


def test_second_repro_changes_nothing(project: Path) -> None:
    proc = run([sys.executable, "-m", "dvc", "repro"], project)
    assert "Data and pipelines are up to date" in proc.stdout + proc.stderr


def _param(params: dict[str, object], key: str) -> object:
    """The value of ``section`` or ``section.key`` in a params.yaml mapping."""
    value: object = params
    for part in key.split("."):
        assert isinstance(value, dict), key
        value = value.get(part)
    return value


def _lock_problems(
    committed: dict[str, object], fresh: dict[str, object], params: dict[str, object]
) -> list[str]:
    """How a clean `dvc repro` (``fresh``, on the tiny params) disagrees with the committed lock.

    Compared: each stage's command, its deps, outs and params keys, the md5 of every code dep,
    and the params values against the repository's params.yaml (the tiny params change the data
    and model hashes, which are not compared, and the values of a few params).
    """
    old, new = committed["stages"], fresh["stages"]
    assert isinstance(old, dict) and isinstance(new, dict)
    problems = [
        f"stage '{s}' is not in the committed dvc.lock" for s in sorted(set(new) - set(old))
    ]
    problems += [f"stage '{s}' is no longer in dvc.yaml" for s in sorted(set(old) - set(new))]
    for name in sorted(set(old) & set(new)):
        a, b = old[name], new[name]
        if a["cmd"] != b["cmd"]:
            problems.append(f"{name}: cmd {a['cmd']!r} is now {b['cmd']!r}")
        for kind in ("deps", "outs"):
            paths_a = {d["path"]: d.get("md5") for d in a.get(kind, [])}
            paths_b = {d["path"]: d.get("md5") for d in b.get(kind, [])}
            for path in sorted(set(paths_a) ^ set(paths_b)):
                state = "new" if path in paths_b else "no longer one"
                problems.append(f"{name}: {kind[:-1]} {path} is {state}")
            for path in sorted(set(paths_a) & set(paths_b)):
                if kind == "deps" and path.startswith(CODE) and paths_a[path] != paths_b[path]:
                    problems.append(f"{name}: {path} has changed (md5 {paths_b[path]})")
        keys_a = a.get("params", {}).get("params.yaml", {})
        keys_b = b.get("params", {}).get("params.yaml", {})
        for key in sorted(set(keys_a) ^ set(keys_b)):
            problems.append(f"{name}: param {key} is {'new' if key in keys_b else 'gone'}")
        for key in sorted(set(keys_a) & set(keys_b)):
            if keys_a[key] != _param(params, key):
                problems.append(f"{name}: param {key} is now {_param(params, key)!r}")
    return problems


def test_committed_dvc_lock_is_what_a_clean_repro_writes(project: Path) -> None:
    fresh = yaml.safe_load((project / "dvc.lock").read_text())
    tiny = yaml.safe_load((project / "params.yaml").read_text())
    # DVC records params.yaml's values as they are, so the repository's lock must hold its own.
    for stage in fresh["stages"].values():
        for key, value in stage.get("params", {}).get("params.yaml", {}).items():
            assert value == _param(tiny, key), key
    problems = _lock_problems(
        yaml.safe_load((REPO / "dvc.lock").read_text()),
        fresh,
        yaml.safe_load((REPO / "params.yaml").read_text()),
    )
    assert not problems, (
        "dvc.lock is out of date with dvc.yaml, the code or params.yaml; run `dvc repro` and "
        "commit dvc.lock:\n" + "\n".join(problems)
    )


def test_reported_numbers_are_the_exported_bundles(project: Path) -> None:
    """thresholds, evaluate and the staging predictions are the served bundle's probabilities."""
    bundle = Scorer.load(project / "models/lead-scoring")
    params = load_params(project / "params.yaml")
    labels, probs = {}, {}
    for split in ("valid", "test"):
        frame = pd.read_parquet(project / f"data/features/{split}.parquet")
        labels[split] = frame["label"].to_numpy(dtype=np.int64)
        probs[split] = bundle.predict_matrix(encode_frame(frame, bundle.definition, bundle.levels))

    def measured(p: np.ndarray) -> dict[str, object]:
        metrics = evaluate_predictions(
            labels["test"], p, thresholds=bundle.thresholds, params=params.evaluate
        )
        return {k: None if v != v else v for k, v in metrics.items()}  # NaN is null in JSON

    reported = json.loads((project / "metrics/evaluate.json").read_text())
    expected = measured(probs["test"])
    assert {k: reported[k] for k in expected} == expected
    # exact equality is sharp: probabilities one part in a billion apart already differ
    assert measured(probs["test"] * (1 - 1e-9)) != expected

    summary = json.loads((project / "data/features/summary.json").read_text())
    chosen = choose_thresholds(
        labels["valid"],
        probs["valid"],
        weeks=float(summary["valid"]["weeks"]),
        params=params.thresholds,
    )
    written = json.loads((project / "models/thresholds.json").read_text())
    assert written == chosen.to_dict() == bundle.thresholds.to_dict()

    staged = pd.read_parquet(project / "models/staging/predictions.parquet")
    for split in ("valid", "test"):
        np.testing.assert_array_equal(staged.loc[staged["split"] == split, "p"], probs[split])


def test_mlflow_holds_the_run_and_a_registered_version(project: Path) -> None:
    client = tracking(project)
    exp = client.get_experiment_by_name("lead-scoring")
    assert exp is not None
    runs = client.search_runs([exp.experiment_id])
    assert len(runs) >= 1
    metrics = runs[-1].data.metrics
    for key in ("valid_roc_auc", "test_roc_auc", "test_ece", "test_brier", "threshold_sql"):
        assert key in metrics, key
    assert runs[-1].data.tags["git_commit"] != "unknown"
    version = client.get_model_version_by_alias("lead-scoring", "challenger")
    assert version.run_id == runs[-1].info.run_id


def test_bundle_pyfunc_and_online_give_the_same_probability(project: Path) -> None:
    leads, events = sample_leads(project)
    bundle = Scorer.load(project / "models/lead-scoring")
    admitted = bundle.admit(
        raw_from_frames(leads.assign(as_of=AS_OF), events), limits=FRAME_LIMITS
    )
    batch, ids = admitted.batch, admitted.lead_ids
    from_bundle = np.array([r.probability for r in bundle.score_batch(batch, ids)])
    online = bundle.predict_matrix(bundle.executor.transform(batch))

    tracking(project)
    pyfunc = mlflow.pyfunc.load_model("models:/lead-scoring@challenger")
    frame = pyfunc_input_frame(leads, events, as_of=AS_OF)
    from_pyfunc = pyfunc.predict(frame)["probability"].to_numpy()

    registered = load_registered_scorer("lead-scoring", "challenger", root=project)
    from_registry = np.array([r.probability for r in registered.score_batch(batch, ids)])
    assert len(from_bundle) == len(leads) and np.ptp(from_bundle) > 0
    np.testing.assert_allclose(from_pyfunc, from_bundle, rtol=0, atol=1e-12)
    np.testing.assert_allclose(online, from_bundle, rtol=0, atol=1e-12)
    np.testing.assert_allclose(from_registry, from_bundle, rtol=0, atol=1e-12)


def test_file_scorer_matches_the_bundle(project: Path, tmp_path: Path) -> None:
    leads, events = sample_leads(project)
    scored = score_file(project, leads, events, tmp_path, as_of=AS_OF)
    assert list(scored.columns[:5]) == ["lead_id", "probability", "score", "stage", "grade"]
    assert {"top_positive_reasons", "model_version", "scored_at"} <= set(scored.columns)
    bundle = Scorer.load(project / "models/lead-scoring")
    admitted = bundle.admit(
        raw_from_frames(leads.assign(as_of=AS_OF), events), limits=FRAME_LIMITS
    )
    expected = [r.probability for r in bundle.score_admitted(admitted)]
    np.testing.assert_allclose(scored["probability"].to_numpy(), expected, atol=1e-12)
    assert scored["score"].between(1, 99).all()
    assert set(scored["stage"]) <= {"SQL", "MQL", "nurture"}


def test_promote_refuses_a_worse_challenger_and_force_overrides(project: Path) -> None:
    proc = run([sys.executable, "-m", "predictive_scoring.cli", "promote"], project)
    assert "@champion" in proc.stdout
    client = tracking(project)
    champion = client.get_model_version_by_alias("lead-scoring", "champion")
    # a second registered version of the same model becomes the challenger
    challenger = client.create_model_version("lead-scoring", champion.source, champion.run_id)
    client.set_registered_model_alias("lead-scoring", "challenger", challenger.version)

    def measure(scorer: Scorer) -> float:
        return 0.70 if scorer.version == str(challenger.version) else 0.80

    kwargs = dict(
        model_name="lead-scoring",
        challenger_alias="challenger",
        champion_alias="champion",
        metric="roc_auc",
        greater_is_better=True,
        root=project,
        measure=measure,
    )
    with pytest.raises(PromotionRefused, match=r"0\.7000.*0\.8000"):
        promote_challenger(**kwargs)  # type: ignore[arg-type]
    result = promote_challenger(force=True, **kwargs)  # type: ignore[arg-type]
    assert result["promoted"] and str(result["challenger_version"]) == str(challenger.version)


def test_experiment_run_makes_a_second_mlflow_run(project: Path) -> None:
    client = tracking(project)
    exp = client.get_experiment_by_name("lead-scoring")
    assert exp is not None
    before = len(client.search_runs([exp.experiment_id]))
    run([sys.executable, "-m", "dvc", "exp", "run", "-S", "train.num_leaves=15"], project)
    runs = client.search_runs([exp.experiment_id])
    assert len(runs) == before + 1
    assert {r.data.params["train.num_leaves"] for r in runs} >= {"8", "15"}


@pytest.mark.parametrize("breakage", ["drop_column", "duplicate_ids"])
def test_validate_rejects_broken_raw_data(tmp_path: Path, breakage: str) -> None:
    proj = make_project(tmp_path, {"generate": {"n_leads": 300, "events_per_lead": 5}})
    run([sys.executable, "pipelines/generate.py"], proj)
    leads_path = proj / "data/demo/leads.parquet"
    leads = pd.read_parquet(leads_path)
    if breakage == "drop_column":
        leads = leads.drop(columns=["created_at"])
        expected = "created_at"
    else:
        leads = pd.concat([leads, leads.head(3)])
        expected = leads["lead_id"].iloc[0]
    leads.to_parquet(leads_path)
    proc = run([sys.executable, "pipelines/validate.py"], proj, check=False)
    assert proc.returncode != 0
    assert expected in proc.stderr
    assert "leads.parquet" in proc.stderr
    assert not (proj / "reports/validation.json").exists()
