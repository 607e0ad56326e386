"""`predictive-scoring monitor` on a large score log: wall time and peak memory.

Not a test. A score log of ``--rows`` scores (default 10 million) and its outcomes are generated
once into ``--work`` (outside the repository), as the service would log them: each lead is a
test-split snapshot of the demo scored by the exported bundle, five times nine days apart, first
scored somewhere in a year; the values that occur once are jittered so that they do not repeat
(a log of real leads compresses no better). Outcomes are drawn once per lead from its
probability, and SQLs are accepted or rejected by sales with a reason. Then the monitor runs in
a process of its own, ``nice -n 19``, and its wall time and peak RSS (wait4) are reported.

    python benchmarks/bench_monitor.py --rows 10000000 --work /tmp/bench-monitor

Needs `dvc repro` first (the bundle in models/lead-scoring with its reference profile).
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _common import REPO, print_table, write_result

BENCH = "monitor"
PART_ROWS = 500_000
SCORES_PER_LEAD = 5
WEEKS = 52
REASONS = ("no budget", "not the decision maker", "bad timing", "duplicate")


def _source(bundle: Path) -> tuple[Any, np.ndarray, np.ndarray]:
    """The bundle's scorer, the encoded test split and its probabilities."""
    import pandas as pd

    from predictive_scoring.scoring import Scorer
    from predictive_scoring.train import encode_frame, scorer_probabilities

    scorer = Scorer.load(bundle)
    test = pd.read_parquet(REPO / "data" / "features" / "test.parquet")
    X = encode_frame(test, scorer.definition, scorer.levels)
    return scorer, X, scorer_probabilities(scorer, test)


def generate(rows: int, work: Path, *, bundle: Path, seed: int = 7) -> Path:
    """Write the score log and the outcomes under ``work/store`` (once: reused if present)."""
    import pyarrow as pa

    from predictive_scoring.records import OUTCOMES, SCORES, feature_column, write_part
    from predictive_scoring.thresholds import assign_grade, assign_stage

    store = work / "store"
    done = store / f".complete-{rows}"
    if done.exists():
        return store
    scorer, X, p = _source(bundle)
    rng = np.random.default_rng(seed)
    names = scorer.feature_names
    # values seen once in the test split are jittered, so they do not repeat in the log (real
    # leads compress no better); values seen many times (ages of exactly 7 days, zero counts)
    # stay as they are, as they would in production
    singles = {}
    for j, name in enumerate(names):
        values, counts = np.unique(X[:, j][~np.isnan(X[:, j])], return_counts=True)
        if name not in scorer.levels and (counts == 1).any():
            singles[j] = values[counts == 1]
    lineage = scorer.lineage
    end = datetime(2026, 8, 31, tzinfo=UTC)  # outcomes up to three months later
    start = end - timedelta(weeks=WEEKS)
    span_s = (end - start).total_seconds()
    n_leads = rows // SCORES_PER_LEAD
    t0 = time.perf_counter()
    for part_start in range(0, rows, PART_ROWS):
        n = min(PART_ROWS, rows - part_start)
        row_ids = np.arange(part_start, part_start + n)
        lead = row_ids % n_leads
        pick = (lead * 40_507 + 17) % X.shape[0]  # one snapshot per lead, re-scored
        matrix = X[pick].copy()
        for j, values in singles.items():
            once = np.isin(matrix[:, j], values)
            matrix[once, j] *= 1.0 + 1e-3 * rng.standard_normal(int(once.sum()))
        prob = p[pick]
        # a lead's first score somewhere in the year, the next ones a week or two apart
        first = (lead * 2_654_435_761 % n_leads) / n_leads * span_s * 0.9
        as_of_s = start.timestamp() + first + (row_ids // n_leads) * 9 * 86_400.0
        as_of = pa.array((as_of_s * 1e6).astype("int64"), type=pa.timestamp("us", tz="UTC"))
        columns: dict[str, Any] = {
            "lead_id": pa.array([f"L{i}" for i in lead]),
            "scored_at": as_of,
            "as_of": as_of,
            "source": pa.array(["api"] * n),
            **{k: pa.array([v] * n) for k, v in lineage.items()},
            "probability": pa.array(prob),
            "score": pa.array(np.clip(np.rint(prob * 100), 1, 99).astype("int64")),
            "stage": pa.array(assign_stage(prob, scorer.thresholds).astype(str)),
            "grade": pa.array(assign_grade(prob, scorer.thresholds).astype(str)),
        }
        columns |= {feature_column(name): pa.array(matrix[:, i]) for i, name in enumerate(names)}
        write_part(store, SCORES, pa.table(columns))
        first_scores = row_ids < n_leads
        if first_scores.any():  # each lead's outcomes, drawn once from its probability
            m = int(first_scores.sum())
            lead, prob, as_of_s = lead[first_scores], prob[first_scores], as_of_s[first_scores]
            won = rng.random(m) < prob
            close_s = as_of_s + rng.uniform(1, 85, size=m) * 86_400.0
            is_sql = prob >= scorer.thresholds.sql
            decide_s = as_of_s + rng.exponential(30, size=m) * 3_600.0
            accepted = rng.random(m) < 0.7
            reason = rng.choice(REASONS, size=m)
            ids = np.array([f"L{i}" for i in lead], dtype=object)
            out_lead = np.concatenate([ids, ids[is_sql]])
            out_stage = np.concatenate(
                [
                    np.where(won, "won", "lost"),
                    np.where(accepted[is_sql], "sql_accepted", "sql_rejected"),
                ]
            )
            out_ts = np.concatenate([close_s, decide_s[is_sql]])
            out_reason = np.concatenate(
                [
                    np.full(m, None, dtype=object),
                    np.where(accepted[is_sql], None, reason[is_sql]),
                ]
            )
            ts = pa.array((out_ts * 1e6).astype("int64"), type=pa.timestamp("us", tz="UTC"))
            write_part(
                store,
                OUTCOMES,
                pa.table(
                    {
                        "lead_id": pa.array(out_lead.tolist(), type=pa.string()),
                        "stage": pa.array(out_stage.tolist()),
                        "ts": ts,
                        "reason": pa.array(out_reason.tolist(), type=pa.string()),
                        "received_at": ts,
                        "source": pa.array(["file"] * len(out_lead)),
                    }
                ),
            )
        print(
            f"  {part_start + n:>12,} rows written ({time.perf_counter() - t0:.0f} s)",
            file=sys.stderr,
        )
    done.touch()
    return store


def run_monitor(store: Path, work: Path, *, bundle: Path, nice: bool) -> dict[str, Any]:
    """The CLI in a child process: wall time and the child's peak RSS."""
    cmd = [
        sys.executable,
        "-m",
        "predictive_scoring.cli",
        "monitor",
        "--store",
        str(store),
        "--bundle",
        str(bundle),
        "--html",
        str(work / "monitoring.html"),
        "--json",
        str(work / "monitoring.json"),
        "--no-mlflow",
    ]
    if nice:
        cmd = ["nice", "-n", "19", *cmd]
    log = work / "monitor.log"
    t0 = time.perf_counter()
    with log.open("w") as out:
        child = subprocess.Popen(cmd, cwd=REPO, stdout=out, stderr=subprocess.STDOUT)
        _, status, usage = os.wait4(child.pid, 0)  # this child's own rusage
    wall = time.perf_counter() - t0
    code = child.returncode = os.waitstatus_to_exitcode(status)
    if code not in (0, 3):  # 3: the verdict reached --fail-on (not asked here)
        raise SystemExit(f"monitor failed ({code}):\n{log.read_text()[-3000:]}")
    peak_kb = usage.ru_maxrss
    return {"wall_s": round(wall, 1), "peak_rss_mb": round(peak_kb / 1024), "log": log.read_text()}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--rows", type=int, default=10_000_000)
    parser.add_argument("--work", type=Path, default=Path("/tmp/bench-monitor"))
    parser.add_argument("--bundle", type=Path, default=REPO / "models" / "lead-scoring")
    parser.add_argument("--no-nice", action="store_true", help="normal priority")
    parser.add_argument("--generate-only", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    args.work.mkdir(parents=True, exist_ok=True)
    if args.generate_only:
        generate(args.rows, args.work, bundle=args.bundle)
        return 0
    t0 = time.perf_counter()
    # in a child of its own: a parent grown by the generation would inflate the monitor's peak
    # RSS as getrusage reports it (the forked child starts as a copy of the parent)
    subprocess.run(
        [
            sys.executable,
            __file__,
            "--generate-only",
            "--rows",
            str(args.rows),
            "--work",
            str(args.work),
            "--bundle",
            str(args.bundle),
        ],
        check=True,
    )
    store = args.work / "store"
    print(f"log ready in {time.perf_counter() - t0:.0f} s: {store}", file=sys.stderr)
    size_mb = sum(f.stat().st_size for f in store.rglob("*.parquet")) / 1e6
    result = run_monitor(store, args.work, bundle=args.bundle, nice=not args.no_nice)
    print(result.pop("log")[-2000:], file=sys.stderr)
    row = {"rows": args.rows, "log_mb": round(size_mb), **result}
    print_table("monitor", [row], ["rows", "log_mb", "wall_s", "peak_rss_mb"])
    write_result(BENCH, f"monitor-{args.rows}", **row)
    return 0


if __name__ == "__main__":
    sys.exit(main())
