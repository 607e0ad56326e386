"""The monitor: PSI, the reference profile, CBPE and realized figures, the verdict, the report
files and the command; on score-log and outcome parts written to tmp_path with records."""

from __future__ import annotations

import json
import math
import re
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import numpy as np
import orjson
import pandas as pd
import pyarrow as pa
import pytest
from sklearn.metrics import average_precision_score, roc_auc_score
from tests.scorers import NOW, build_scorer, synthetic_leads
from typer.testing import CliRunner

from predictive_scoring import records
from predictive_scoring.cli import app as cli
from predictive_scoring.config import FeaturizeParams, MonitorParams
from predictive_scoring.monitor import (
    MonitoredModel,
    build_report,
    monitored_model,
    render_html,
    run_monitor,
    wilson_interval,
)
from predictive_scoring.profile import (
    Reference,
    auc_from_counts,
    average_precision_from_counts,
    build_reference,
    capacity_agreement,
    distribution_of,
    expected_metrics,
    psi,
)
from predictive_scoring.scoring import FRAME_LIMITS, Scorer
from predictive_scoring.serve.decode import decode_leads

Draw = Callable[[np.random.Generator, int, int], tuple[np.ndarray, np.ndarray]]

NAMES = ["visits", "recency", "industry"]
LEVELS = {"industry": ["software", "retail", "finance", "health"]}
START = datetime(2026, 1, 5, tzinfo=UTC)  # a Monday
WEEKS = 16
HORIZON = 30
NOW_ = START + timedelta(weeks=WEEKS, days=10)  # weeks 0-12 matured, 13-15 open
MQL, SQL = 0.1, 0.3
SECTIONS = {"model", "window", "volumes", "conversion", "performance", "drift", "sales"}
PARAMS = MonitorParams(min_scores=500, min_matured=300, recent_weeks=4)
REASONS = ("no budget", "not the decision maker", "bad timing")


def draw(
    rng: np.random.Generator, n: int, *, visits_mean: float = 3.0
) -> tuple[np.ndarray, np.ndarray]:
    """Synthetic model inputs (a count, a recency with missing values, a categorical code with
    missing values) and their true, hence calibrated, probabilities."""
    visits = rng.poisson(visits_mean, n).astype(np.float64)
    recency = rng.exponential(10.0, n)
    recency[rng.random(n) < 0.2] = np.nan
    industry = rng.choice(4, size=n, p=[0.4, 0.3, 0.2, 0.1]).astype(np.float64)
    industry[rng.random(n) < 0.05] = np.nan
    logit = -3.2 + 0.35 * visits - 0.03 * np.nan_to_num(recency, nan=30.0) + 0.6 * (industry == 0)
    return np.column_stack([visits, recency, industry]), 1.0 / (1.0 + np.exp(-logit))


def stages_of(p: np.ndarray) -> np.ndarray:
    return np.where(p >= SQL, "SQL", np.where(p >= MQL, "MQL", "nurture"))


def capacity(p: np.ndarray, y: np.ndarray, weeks: float) -> dict[str, Any]:
    """What a thresholds table would promise for these probabilities (valid split)."""
    stage = stages_of(p)
    rows = []
    for name in ("SQL", "MQL", "nurture"):
        mask = stage == name
        rows.append(
            {
                "split": "valid",
                "stage": name,
                "cutoff": {"SQL": SQL, "MQL": MQL, "nurture": 0.0}[name],
                "leads": float(mask.sum()),
                "leads_per_week": float(mask.sum()) / weeks,
                "share": float(mask.mean()),
                "precision": float(y[mask].mean()),
                "expected_conversions": float(p[mask].sum()),
            }
        )
    return capacity_agreement(pd.DataFrame(rows))


def reference_metadata(
    X: np.ndarray,
    p: np.ndarray,
    *,
    names: list[str],
    levels: dict[str, list[str]],
    version: str,
    seed: int = 0,
) -> dict[str, Any]:
    """A bundle's metadata as export writes it: reference, capacity and test metrics."""
    y = (np.random.default_rng(seed + 1_000).random(p.size) < p).astype(int)
    reference = build_reference(
        X,
        p,
        feature_names=names,
        levels=levels,
        label={"target_stage": "won", "horizon_days": HORIZON},
    )
    return {
        "name": "lead-scoring",
        "version": version,
        "reference": reference.to_dict(),
        "capacity": capacity(p, y, weeks=p.size / 600),
        "metrics": {"roc_auc": roc_auc_score(y, p), "pr_auc": average_precision_score(y, p)},
    }


def _ts(seconds: np.ndarray) -> pa.Array:
    return pa.array((seconds * 1e6).astype("int64"), type=pa.timestamp("us", tz="UTC"))


def write_period(
    store: Path,
    draw_week: Draw,
    *,
    names: list[str],
    version: str,
    seed: int,
    per_week: int = 600,
    conversion_factor: float = 1.0,
    now: datetime = NOW_,
    duplicate_outcomes: bool = False,
) -> dict[str, Any]:
    """WEEKS weeks of scores (10% of leads scored twice in their week) and their outcomes,
    drawn from the probabilities times ``conversion_factor``; outcomes only up to ``now``."""
    rng = np.random.default_rng(seed)
    counts = {"scores": 0, "leads": 0}
    outcome_rows: list[tuple[str, str, float, str | None]] = []
    for week in range(WEEKS):
        X, p = draw_week(rng, per_week, week)
        ids = np.array([f"L{week}-{i}" for i in range(per_week)])
        as_of = START.timestamp() + week * 7 * 86_400 + rng.uniform(0, 6 * 86_400, per_week)
        again = rng.random(per_week) < 0.1  # re-scored later the same week, same inputs
        ids_all = np.concatenate([ids, ids[again]])
        as_of_all = np.concatenate([as_of, as_of[again] + 3_600])
        X_all, p_all = np.vstack([X, X[again]]), np.concatenate([p, p[again]])
        stage = stages_of(p_all)
        table = {
            "lead_id": pa.array(ids_all.tolist()),
            "scored_at": _ts(as_of_all),
            "as_of": _ts(as_of_all),
            "source": pa.array(["api"] * len(ids_all)),
            "model_name": pa.array(["lead-scoring"] * len(ids_all)),
            "model_version": pa.array([version] * len(ids_all)),
            "model_sha256": pa.array(["x"] * len(ids_all)),
            "definition_hash": pa.array(["d"] * len(ids_all)),
            "thresholds_version": pa.array(["t"] * len(ids_all)),
            "data_hash": pa.array(["h"] * len(ids_all)),
            "probability": pa.array(p_all),
            "score": pa.array(np.clip(np.rint(p_all * 100), 1, 99).astype("int64")),
            "stage": pa.array(stage.tolist()),
            "grade": pa.array(np.where(stage == "SQL", "A", "B").tolist()),
        }
        table |= {records.feature_column(n): pa.array(X_all[:, i]) for i, n in enumerate(names)}
        records.write_part(store, records.SCORES, pa.table(table))
        counts["scores"] += len(ids_all)
        counts["leads"] += per_week
        won = rng.random(per_week) < np.clip(p * conversion_factor, 0, 1)
        closes = as_of + np.where(won, rng.uniform(1, 28, per_week), rng.uniform(1, 60, per_week))
        for i in range(per_week):
            outcome_rows.append((ids[i], "won" if won[i] else "lost", closes[i], None))
            if p[i] >= SQL:
                accepted = rng.random() < 0.7
                outcome_rows.append(
                    (
                        ids[i],
                        "sql_accepted" if accepted else "sql_rejected",
                        as_of[i] + rng.exponential(20.0) * 3_600,
                        None if accepted else str(rng.choice(REASONS)),
                    )
                )
    kept = [r for r in outcome_rows if r[2] <= now.timestamp()]
    if duplicate_outcomes:
        kept += kept[: len(kept) // 3]  # a retry posts a third of them again
    frame = pd.DataFrame(kept, columns=["lead_id", "stage", "ts", "reason"])
    for start in range(0, len(frame), 5_000):
        chunk = frame.iloc[start : start + 5_000]
        ts = _ts(chunk["ts"].to_numpy())
        records.write_part(
            store,
            records.OUTCOMES,
            pa.table(
                {
                    "lead_id": pa.array(chunk["lead_id"].tolist()),
                    "stage": pa.array(chunk["stage"].tolist()),
                    "ts": ts,
                    "reason": pa.array(
                        [r if isinstance(r, str) else None for r in chunk["reason"]],
                        type=pa.string(),
                    ),
                    "received_at": ts,
                    "source": pa.array(["api"] * len(chunk)),
                }
            ),
        )
    counts["outcomes"] = len(kept)
    return counts


def same(a: Any, b: Any) -> bool:
    """Equal, floats to 1e-9 (DuckDB's parallel sums may add in another order)."""
    if isinstance(a, dict) and isinstance(b, dict):
        return a.keys() == b.keys() and all(same(a[k], b[k]) for k in a)
    if isinstance(a, list) and isinstance(b, list):
        return len(a) == len(b) and all(same(x, y) for x, y in zip(a, b, strict=True))
    if isinstance(a, float) and isinstance(b, float):
        return math.isclose(a, b, rel_tol=1e-9, abs_tol=1e-12)
    return bool(a == b)


def synthetic_model(version: str = "7", seed: int = 0) -> MonitoredModel:
    X, p = draw(np.random.default_rng(seed), 6_000)
    meta = reference_metadata(X, p, names=NAMES, levels=LEVELS, version=version, seed=seed)
    return monitored_model(meta, featurize=FeaturizeParams())


def unshifted(rng: np.random.Generator, n: int, week: int) -> tuple[np.ndarray, np.ndarray]:
    return draw(rng, n)


# --- PSI and the reference profile ------------------------------------------------------------
def test_psi_is_zero_on_identical_data_and_grows_with_the_shift() -> None:
    rng = np.random.default_rng(1)

    def sample(shift: float) -> np.ndarray:
        values = rng.normal(shift, 1.0, 20_000)
        values[rng.random(values.size) < 0.1] = np.nan
        return values

    base = sample(0.0)
    dist = distribution_of(base)
    assert psi(dist, *dist.counts(base)) == pytest.approx(0.0, abs=1e-12)
    values = [psi(dist, *dist.counts(sample(shift))) for shift in (0, 0.2, 0.5, 1)]
    assert values == sorted(values) and values[0] < 0.01 and values[-1] > 0.5
    codes = rng.choice(4, size=20_000, p=[0.4, 0.3, 0.2, 0.1]).astype(float)
    cat = distribution_of(codes, labels=["a", "b", "c", "d"])
    assert psi(cat, *cat.counts(codes)) == pytest.approx(0.0, abs=1e-12)
    moved = rng.choice(4, size=20_000, p=[0.1, 0.2, 0.3, 0.4]).astype(float)
    assert psi(cat, *cat.counts(moved)) > 0.5
    assert math.isnan(psi(dist, np.zeros(dist.n_bins), 0.0))  # nothing to compare


def test_the_reference_has_every_row_in_a_bin_and_reads_back() -> None:
    X, p = draw(np.random.default_rng(2), 5_000)
    ref = build_reference(X, p, feature_names=NAMES, levels=LEVELS)
    for dist in (ref.score, *ref.features.values()):
        assert sum(dist.proportions) + dist.missing == pytest.approx(1.0)
        if dist.kind == "numeric":  # quantile edges, none at or above the maximum
            assert list(dist.edges) == sorted(set(dist.edges)) and all(dist.proportions)
    assert ref.features["industry"].kind == "categorical"
    assert ref.features["industry"].labels == tuple(LEVELS["industry"])
    assert ref.features["recency"].missing == pytest.approx(np.isnan(X[:, 1]).mean())
    binary = distribution_of(np.array([0.0] * 80 + [1.0] * 20))
    assert binary.edges == (0.0,) and binary.proportions == (0.8, 0.2)
    assert Reference.from_dict(json.loads(json.dumps(ref.to_dict()))) == ref


def test_aucs_from_counts_are_scikit_learns_and_cbpe_estimates_the_realized() -> None:
    rng = np.random.default_rng(3)
    p = np.round(rng.beta(1, 6, 20_000), 3)
    y = (rng.random(p.size) < p).astype(int)
    index = np.unique(p, return_inverse=True)[1]
    pos, neg = np.bincount(index, weights=y), np.bincount(index, weights=1 - y)
    assert auc_from_counts(pos, neg) == pytest.approx(roc_auc_score(y, p), abs=1e-12)
    assert average_precision_from_counts(pos, neg) == pytest.approx(
        average_precision_score(y, p), abs=1e-12
    )
    expected = expected_metrics(p)  # labels never seen
    assert expected["roc_auc"] == pytest.approx(roc_auc_score(y, p), abs=0.01)
    assert expected["mean_probability"] == pytest.approx(y.mean(), abs=0.01)


def test_wilson_interval() -> None:
    low, high = wilson_interval(10, 100)
    assert low == pytest.approx(0.0552, abs=1e-4) and high == pytest.approx(0.1744, abs=1e-4)
    assert wilson_interval(0, 50)[0] == pytest.approx(0.0, abs=1e-12)
    assert all(map(math.isnan, wilson_interval(0, 0)))


# --- the figures and the verdict ----------------------------------------------------------------
@pytest.mark.parametrize("seed", [11, 12, 13])
def test_a_period_like_the_reference_is_ok_and_cbpe_holds(tmp_path: Path, seed: int) -> None:
    model = synthetic_model()
    written = write_period(tmp_path, unshifted, names=NAMES, version="7", seed=seed)
    report = build_report(tmp_path, model, PARAMS, now=NOW_)
    assert SECTIONS | {"verdict"} <= set(report)
    assert report["verdict"]["level"] == "ok", report["verdict"]
    assert report["window"]["scores"] == written["scores"]
    realized = report["performance"]["realized"]["all"]
    assert realized["leads"] >= PARAMS.min_matured
    # the CBPE estimate (sum of p) holds the realized conversions in its 95% interval, and the
    # mean probability lies in the Wilson interval of the realized rate
    assert realized["expected_low"] <= realized["converted"] <= realized["expected_high"]
    assert realized["rate_low"] <= realized["mean_probability"] <= realized["rate_high"]
    estimated = report["performance"]["estimated"]["all"]
    assert estimated["leads"] > 0 and "rate" not in estimated and estimated["roc_auc"] > 0.6
    statuses = [w["status"] for w in report["conversion"]["weeks"]]
    assert statuses == ["realized"] * 13 + ["estimate"] * 3
    assert report["drift"]["score"]["psi"] < PARAMS.score_psi_investigate


def test_volumes_count_every_score_and_cohorts_each_lead_once(tmp_path: Path) -> None:
    written = write_period(tmp_path, unshifted, names=NAMES, version="7", seed=4)
    report = build_report(tmp_path, synthetic_model(), PARAMS, now=NOW_)
    weeks = report["volumes"]["weeks"]
    assert sum(w["total"] for w in weeks) == written["scores"] > written["leads"]
    cohort = report["conversion"]
    leads = (
        sum(w["all"]["leads"] for w in cohort["weeks"]) + cohort["excluded_closed_before_score"]
    )
    assert leads == written["leads"]
    promised = report["volumes"]["promised"]["SQL"]["leads_per_week"]
    assert weeks[5]["SQL"]["promised"] == pytest.approx(promised)
    assert weeks[5]["SQL"]["ratio"] == pytest.approx(weeks[5]["SQL"]["scores"] / promised)


def test_a_shifted_feature_is_named_and_not_the_others(tmp_path: Path) -> None:
    def shifted(rng: np.random.Generator, n: int, week: int) -> tuple[np.ndarray, np.ndarray]:
        return draw(rng, n, visits_mean=8.0 if week >= WEEKS - 4 else 3.0)

    write_period(tmp_path, shifted, names=NAMES, version="7", seed=5)
    report = build_report(tmp_path, synthetic_model(), PARAMS, now=NOW_)
    verdict = report["verdict"]
    assert verdict["level"] in ("investigate", "retrain")
    drift = [r for r in verdict["reasons"] if r["check"] == "feature_psi"]
    assert drift and "visits" in drift[0]["message"] and drift[0]["value"] == ["visits"]
    assert report["drift"]["top"][0] == "visits"
    by_week = report["drift"]["top_by_week"]["psi"]["visits"]
    assert max(by_week[:-4]) < PARAMS.feature_psi_investigate < min(by_week[-4:])


def test_a_calibration_gap_on_enough_matured_leads_says_retrain(tmp_path: Path) -> None:
    write_period(tmp_path, unshifted, names=NAMES, version="7", seed=6, conversion_factor=0.4)
    report = build_report(tmp_path, synthetic_model(), PARAMS, now=NOW_)
    assert report["verdict"]["level"] == "retrain"
    calibration = [r for r in report["verdict"]["reasons"] if r["check"] == "calibration"]
    assert calibration and calibration[0]["value"] < -PARAMS.calibration_gap
    # the same gap on fewer matured leads than the limit is not judged
    few = PARAMS.model_copy(update={"min_matured": 100_000})
    report = build_report(tmp_path, synthetic_model(), few, now=NOW_)
    assert report["verdict"]["level"] == "ok"
    assert any("not judged" in n["message"] for n in report["verdict"]["notes"])


def test_now_defaults_to_the_latest_outcome_and_duplicates_count_once(tmp_path: Path) -> None:
    once, twice = tmp_path / "once", tmp_path / "twice"
    write_period(once, unshifted, names=NAMES, version="7", seed=7)
    written = write_period(
        twice, unshifted, names=NAMES, version="7", seed=7, duplicate_outcomes=True
    )
    a = build_report(once, synthetic_model(), PARAMS)
    b = build_report(twice, synthetic_model(), PARAMS)
    assert b["window"]["outcomes"]["rows"] == written["outcomes"]
    assert b["window"]["outcomes"]["duplicates_ignored"] > 0
    assert same(a["conversion"], b["conversion"]) and same(a["sales"], b["sales"])
    assert datetime.fromisoformat(a["window"]["now"]) <= NOW_
    assert a["window"]["now_from"] == "the latest outcome"


def test_sql_acceptance_rejection_reasons_and_the_sla(tmp_path: Path) -> None:
    X, p = draw(np.random.default_rng(8), 3)
    p = np.array([0.5, 0.6, 0.7])  # three SQLs
    t0 = START.timestamp()
    ids = ["A", "B", "C"]
    table = {
        "lead_id": pa.array(ids),
        "scored_at": _ts(np.full(3, t0)),
        "as_of": _ts(np.full(3, t0)),
        "source": pa.array(["api"] * 3),
        "model_name": pa.array(["lead-scoring"] * 3),
        "model_version": pa.array(["7"] * 3),
        "model_sha256": pa.array(["x"] * 3),
        "definition_hash": pa.array(["d"] * 3),
        "thresholds_version": pa.array(["t"] * 3),
        "data_hash": pa.array(["h"] * 3),
        "probability": pa.array(p),
        "score": pa.array([50, 60, 70]),
        "stage": pa.array(["SQL"] * 3),
        "grade": pa.array(["A"] * 3),
    } | {records.feature_column(n): pa.array(X[:, i]) for i, n in enumerate(NAMES)}
    records.write_part(tmp_path, records.SCORES, pa.table(table))
    # A accepted after 10 h, B rejected after 70 h ("no budget"), C undecided after 100 h
    decisions = [("A", "sql_accepted", 10, None), ("B", "sql_rejected", 70, "no budget")]
    ts = _ts(np.array([t0 + h * 3600 for _, _, h, _ in decisions]))
    records.write_part(
        tmp_path,
        records.OUTCOMES,
        pa.table(
            {
                "lead_id": pa.array([d[0] for d in decisions]),
                "stage": pa.array([d[1] for d in decisions]),
                "ts": ts,
                "reason": pa.array([d[3] for d in decisions], type=pa.string()),
                "received_at": ts,
                "source": pa.array(["api", "api"]),
            }
        ),
    )
    now = START + timedelta(hours=100)
    sales = build_report(tmp_path, synthetic_model(), PARAMS, now=now)["sales"]
    total = sales["total"]
    assert (total["sqls"], total["accepted"], total["rejected"], total["pending"]) == (3, 1, 1, 1)
    assert total["acceptance_rate"] == 0.5
    assert (total["within_sla"], total["due"]) == (1, 3)  # C is overdue at 100 h
    assert total["median_hours"] == pytest.approx(40.0)
    assert {(r["decision"], r["reason"]) for r in sales["reasons"]} == {
        ("sql_accepted", "(no reason given)"),
        ("sql_rejected", "no budget"),
    }


def test_an_empty_or_foreign_log_says_there_is_nothing_to_monitor(tmp_path: Path) -> None:
    model = synthetic_model(version="7")
    report = build_report(tmp_path / "empty", model, PARAMS)
    assert report["status"] == "no scores" and report["verdict"]["level"] == "ok"
    assert "nothing to monitor yet" in report["notes"][0]
    other = write_period(tmp_path / "o", unshifted, names=NAMES, version="6", seed=9, per_week=20)
    report = build_report(tmp_path / "o", model, PARAMS)
    assert "no scores of lead-scoring version 7" in report["notes"][0]
    assert report["window"]["other_versions"] == {"6": other["scores"]}
    assert "nothing to monitor yet" in render_html(report, PARAMS)


def test_a_tiny_log_is_reported_without_a_judgement(tmp_path: Path) -> None:
    write_period(tmp_path, unshifted, names=NAMES, version="7", seed=10, per_week=5)
    report = build_report(tmp_path, synthetic_model(), PARAMS, now=NOW_)
    assert report["verdict"]["level"] == "ok"
    notes = " ".join(n["message"] for n in report["verdict"]["notes"])
    assert "drift not judged" in notes and "realized performance not judged" in notes


def test_the_files_are_self_contained_and_complete(tmp_path: Path) -> None:
    write_period(tmp_path / "store", unshifted, names=NAMES, version="7", seed=14)
    html_path, json_path = tmp_path / "r" / "monitoring.html", tmp_path / "r" / "monitoring.json"
    run_monitor(
        tmp_path / "store",
        synthetic_model(),
        PARAMS,
        html_path=html_path,
        json_path=json_path,
        now=NOW_,
        mlflow=False,
    )
    page = html_path.read_text()
    assert not re.search(r"(src|href)\s*=\s*['\"]?\s*(https?:)?//", page, flags=re.I)
    assert "http://" not in page and "https://" not in page and "<script" not in page
    assert page.count("<svg") >= 5 and "estimate" in page
    saved = json.loads(json_path.read_text())
    assert SECTIONS | {"verdict", "generated_at"} <= set(saved)
    assert {"realized", "estimated", "test"} <= set(saved["performance"])
    assert saved["verdict"]["level"] in ("ok", "investigate", "retrain")


# --- the command, on a real bundle ------------------------------------------------------------
SCORER = build_scorer(version="3", seed=0, rounds=20)


def scorer_pool(scorer: Scorer, n: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Leads scored through the one ingress: the matrix the model saw and its probabilities."""
    payloads = synthetic_leads(n, seed)[0]
    raw = decode_leads(orjson.dumps({"leads": payloads}), batch=True)
    admitted = scorer.admit(raw, now=NOW + 3_600, limits=FRAME_LIMITS)
    results, X = scorer.score_admitted_with_features(admitted, n_reasons=0)
    return X, np.array([r.probability for r in results])


def bundle_with_reference(tmp_path: Path) -> tuple[Path, np.ndarray, np.ndarray]:
    X, p = scorer_pool(SCORER, 1_500, seed=21)
    meta = reference_metadata(
        X, p, names=SCORER.feature_names, levels=SCORER.levels, version="3", seed=1
    )
    path = SCORER.with_metadata(**meta).save(tmp_path / "bundle")
    return path, X, p


def run_cli(tmp_path: Path, *args: str) -> Any:
    (tmp_path / "params.yaml").write_text(
        "monitor:\n  min_scores: 500\n  min_matured: 300\n  recent_weeks: 4\n"
    )
    return CliRunner().invoke(
        cli,
        [
            "monitor",
            "--params",
            str(tmp_path / "params.yaml"),
            "--html",
            str(tmp_path / "out" / "monitoring.html"),
            "--json",
            str(tmp_path / "out" / "monitoring.json"),
            *args,
        ],
    )


def test_fail_on_retrain_exits_non_zero_only_when_retrain(tmp_path: Path) -> None:
    bundle, X, p = bundle_with_reference(tmp_path)

    def resampled(rng: np.random.Generator, n: int, week: int) -> tuple[np.ndarray, np.ndarray]:
        rows = rng.integers(0, len(p), n)
        return X[rows], p[rows]

    good, bad = tmp_path / "good", tmp_path / "bad"
    names = list(SCORER.feature_names)
    write_period(good, resampled, names=names, version="3", seed=31, per_week=300)
    write_period(
        bad, resampled, names=names, version="3", seed=32, per_week=300, conversion_factor=0.3
    )
    base = ["--bundle", str(bundle), "--no-mlflow", "--now", NOW_.isoformat()]
    result = run_cli(tmp_path, "--store", str(good), *base, "--fail-on", "retrain")
    assert result.exit_code == 0, result.output
    assert "verdict: ok" in result.output
    result = run_cli(tmp_path, "--store", str(bad), *base, "--fail-on", "retrain")
    assert result.exit_code == 3, result.output
    assert "verdict: retrain" in result.output and "realized conversion" in result.output
    saved = json.loads((tmp_path / "out" / "monitoring.json").read_text())
    assert saved["model"]["version"] == "3" and saved["verdict"]["level"] == "retrain"
    result = run_cli(tmp_path, "--store", str(bad), *base)  # no --fail-on: report, exit 0
    assert result.exit_code == 0
    result = run_cli(tmp_path, "--store", str(bad), *base, "--fail-on", "sometimes")
    assert result.exit_code == 2 and "investigate or retrain" in result.output


def test_an_empty_store_says_so_on_the_command_line(tmp_path: Path) -> None:
    bundle, _, _ = bundle_with_reference(tmp_path)
    result = run_cli(
        tmp_path, "--store", str(tmp_path / "nothing"), "--bundle", str(bundle), "--no-mlflow"
    )
    assert result.exit_code == 0, result.output
    assert "nothing to monitor yet" in result.output and "verdict: ok" in result.output
    assert (tmp_path / "out" / "monitoring.html").exists()


@pytest.mark.slow
def test_the_served_champion_is_monitored_and_logged_to_mlflow(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The model the service would serve (the registry's champion, no --bundle), a log written
    by the service's own score-log writer, and a run in a real MLflow store in tmp_path."""
    from mlflow import MlflowClient
    from tests.registries import register, store_uri

    from predictive_scoring.scorelog import scored_batch, write_scores

    monkeypatch.chdir(tmp_path)
    for name in ("PREDICTIVE_SCORING_BUNDLE_DIR", "PREDICTIVE_SCORING_TRACKING_URI"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("MLFLOW_TRACKING_URI", store_uri(tmp_path))
    X, p = scorer_pool(SCORER, 1_500, seed=21)
    meta = reference_metadata(
        X, p, names=SCORER.feature_names, levels=SCORER.levels, version="3", seed=1
    )
    version = register(SCORER.with_metadata(**meta), project=tmp_path, alias="champion")
    champion = Scorer.load(
        SCORER.with_metadata(**{**meta, "version": version}).save(tmp_path / "c")
    )
    payloads = synthetic_leads(800, seed=22)[0]
    raw = decode_leads(orjson.dumps({"leads": payloads}), batch=True)
    admitted = champion.admit(raw, now=NOW + 3_600, limits=FRAME_LIMITS)
    results, features = champion.score_admitted_with_features(admitted, n_reasons=0)
    write_scores(
        tmp_path / "logs", [scored_batch(champion, admitted, results, features, source="api")]
    )
    result = run_cli(tmp_path, "--store", str(tmp_path / "logs"))
    assert result.exit_code == 0, result.output
    assert f"lead-scoring v{version}: 800 scores" in result.output
    saved = json.loads((tmp_path / "out" / "monitoring.json").read_text())
    assert "@champion" in saved["model"]["source"] and saved["drift"]["not_logged"] == []
    assert saved["drift"]["recent_scores"] == 800 and saved["drift"]["score"]["psi"] < 0.1
    client = MlflowClient(tracking_uri=store_uri(tmp_path))
    experiment = client.get_experiment_by_name("lead-scoring-monitoring")
    assert experiment is not None
    (run,) = client.search_runs([experiment.experiment_id])
    assert run.data.tags["model_version"] == version
    assert run.data.tags["verdict"] == saved["verdict"]["level"]
    assert run.data.metrics["scores"] == 800 and "score_psi" in run.data.metrics
    artifacts = {a.path for a in client.list_artifacts(run.info.run_id, "monitoring")}
    assert artifacts == {"monitoring/monitoring.html", "monitoring/monitoring.json"}
    tags = client.get_model_version("lead-scoring", version).tags
    assert tags["monitor.verdict"] == saved["verdict"]["level"]
    assert tags["monitor.run_id"] == run.info.run_id
