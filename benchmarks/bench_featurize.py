"""Featurization: the batch executor (Ibis on DuckDB) vs one hand-written DuckDB SQL query.

Not a test. Demo data at about 1M and 10M events (synth.generate_demo, 20k and 200k leads with 50
events each) is generated once into ``--work``. Each variant runs in its own subprocess, which
reports its wall time and its own peak RSS (getrusage). The variants:

- ``ibis``: batch.build_snapshots + batch.featurize_expr on tables read by DuckDB with
  ``con.read_parquet`` (ts normalised with batch.epoch_seconds): the executor itself.
- ``sql``: one hand-written DuckDB query computing the same snapshots and features (the floor).
  Its output must equal the executor's (checked column by column before anything is reported).
- ``pipeline``: ``python pipelines/featurize.py`` end to end (load_raw in pandas, featurize,
  write the splits), on a params file pointing at the generated data.
- ``featuretools``: deep feature synthesis with cutoff times on a sample of the same snapshots
  (run in ``--ft-python``, a separate venv with pandas<3, since Featuretools breaks on pandas 3).

    python benchmarks/bench_featurize.py --sizes 20000 200000 --work /tmp/bench-featurize
"""

from __future__ import annotations

import argparse
import json
import resource
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _common import REPO, machine_info, print_table, write_result

BENCH = "featurize"
OFFSETS = [0, 7, 30, 60]
TARGET = "won"
HORIZON = 90


def _definition() -> Any:
    from predictive_scoring.features import FeatureDefinition

    path = REPO / "data" / "features" / "definition.json"
    if not path.exists():
        raise SystemExit(f"{path} not found: run `dvc repro` first (the demo's definition)")
    return FeatureDefinition.from_dict(json.loads(path.read_text()))


def generate(n_leads: int, work: Path) -> Path:
    """Demo data for ``n_leads`` leads (50 events each on average), generated once."""
    from predictive_scoring.config import GenerateParams
    from predictive_scoring.synth import generate_demo

    out = work / f"demo-{n_leads}"
    if (out / "events.parquet").exists():
        return out
    started = time.perf_counter()
    generate_demo(out, GenerateParams(n_leads=n_leads, events_per_lead=50.0))
    print(f"generated {out} in {time.perf_counter() - started:.0f} s", flush=True)
    return out


def _data_end_s(con: Any, data: Path) -> int:
    q = f"""
        SELECT greatest(
            (SELECT max(epoch(date_trunc('second', created_at))) FROM '{data}/leads.parquet'),
            (SELECT max(epoch(date_trunc('second', ts))) FROM '{data}/outcomes.parquet'),
            (SELECT max(epoch(date_trunc('second', ts))) FROM '{data}/events.parquet'))
    """
    return int(con.execute(q).fetchall()[0][0])


def run_ibis(data: Path, out: Path, memory_limit: str | None = None) -> int:
    """The executor: build_snapshots + featurize_expr on DuckDB, tables read by DuckDB."""
    import ibis

    from predictive_scoring.batch import (
        build_snapshots,
        connect_duckdb,
        epoch_seconds,
        featurize_expr,
    )

    d = _definition()
    con = connect_duckdb(memory_limit=memory_limit)
    raw_leads = con.read_parquet(str(data / "leads.parquet"))
    leads = raw_leads.mutate(created_s=epoch_seconds(raw_leads.created_at))
    raw_out = con.read_parquet(str(data / "outcomes.parquet"))
    outcomes = raw_out.select("lead_id", "stage", ts_s=epoch_seconds(raw_out.ts))
    raw_ev = con.read_parquet(str(data / "events.parquet"))
    events = raw_ev.select("lead_id", "event_type", ts_s=epoch_seconds(raw_ev.ts))
    import duckdb

    end_s = _data_end_s(duckdb.connect(), data)
    snaps = build_snapshots(
        leads,
        outcomes,
        offsets_days=OFFSETS,
        target_stage=TARGET,
        horizon_days=HORIZON,
        data_end_s=end_s,
    )
    expr = featurize_expr(snaps, leads, events, d)
    table = con.to_pyarrow(expr)
    import pyarrow.parquet as pq

    pq.write_table(table, out)
    del ibis
    return int(table.num_rows)


def _rules_sql(column: str, rules: tuple[tuple[str, str], ...], default: str) -> str:
    text = f"lower(trim({column}))"
    whens = " ".join(
        f"WHEN regexp_matches({text}, '{pattern}') THEN '{label}'" for label, pattern in rules
    )
    return (
        f"CASE WHEN {column} IS NULL OR length(trim({column})) = 0 THEN NULL "
        f"ELSE CASE {whens} ELSE '{default}' END END"
    )


def hand_written_sql(data: Path, end_s: int) -> str:
    """One DuckDB query: snapshots, then per (snapshot, type) aggregates pivoted into columns."""
    from predictive_scoring.features import (
        BAND_FEATURE,
        EMAIL_FEATURE,
        EMPLOYEE_BANDS,
        FREE_EMAIL_DOMAINS,
        FUNCTION_FEATURE,
        FUNCTION_RULES,
        SECONDS_PER_DAY,
        SENIORITY_FEATURE,
        SENIORITY_RULES,
    )

    d = _definition()
    day = SECONDS_PER_DAY
    types = ", ".join(f"'{t}'" for t in d.event_types)
    windows = [f"count(*) FILTER (WHERE age_s <= {w * day}) AS c{w}" for w in d.windows_days]
    pivot = ["sum(n) AS n_events_total"]
    for t in d.event_types:
        for w in d.windows_days:
            pivot.append(f"max(c{w}) FILTER (WHERE event_type = '{t}') AS {d.count_name(t, w)}")
        pivot.append(f"max(rec) FILTER (WHERE event_type = '{t}') AS {d.recency_name(t)}")
        pivot.append(f"max(dec) FILTER (WHERE event_type = '{t}') AS {d.decay_name(t)}")
    attrs = []
    for name, kind in d.attributes:
        attrs.append(f"CAST(l.{name} AS {'DOUBLE' if kind == 'numeric' else 'VARCHAR'}) AS {name}")
    if d.job_title_column:
        attrs.append(
            f"{_rules_sql('l.' + d.job_title_column, SENIORITY_RULES, 'individual')} "
            f"AS {SENIORITY_FEATURE}"
        )
        attrs.append(
            f"{_rules_sql('l.' + d.job_title_column, FUNCTION_RULES, 'other')} "
            f"AS {FUNCTION_FEATURE}"
        )
    if d.email_column:
        free = ", ".join(f"'{x}'" for x in FREE_EMAIL_DOMAINS)
        e = f"l.{d.email_column}"
        attrs.append(
            f"CASE WHEN contains({e}, '@') THEN CAST(regexp_extract(lower(trim({e})), "
            f"'@([^@]*)$', 1) IN ({free}) AS DOUBLE) END AS {EMAIL_FEATURE}"
        )
    if d.employees_column:
        emp = f"CAST(l.{d.employees_column} AS DOUBLE)"
        bands = " ".join(f"WHEN {emp} < {b} THEN '{label}'" for b, label in EMPLOYEE_BANDS[:-1])
        attrs.append(
            f"CASE WHEN {emp} IS NULL OR isnan({emp}) THEN NULL ELSE CASE {bands} "
            f"ELSE '{EMPLOYEE_BANDS[-1][1]}' END END AS {BAND_FEATURE}"
        )
    zero = ["n_events_total", d.active_days_name]
    zero += [d.count_name(t, w) for t in d.event_types for w in d.windows_days]
    zero += [d.decay_name(t) for t in d.event_types]
    outer = []
    for name in d.feature_names:
        if name == "lead_age_days":
            outer.append(
                f"CAST(s.as_of_s - s.created_s AS DOUBLE) / {float(day)} AS lead_age_days"
            )
        elif name in zero:
            outer.append(f"coalesce(CAST(w.{name} AS DOUBLE), 0.0) AS {name}")
        elif name.startswith("days_since_"):
            outer.append(f"CAST(w.{name} AS DOUBLE) AS {name}")
        else:
            outer.append(f"a.{name}")
    offsets = ", ".join(f"({k})" for k in OFFSETS)
    return f"""
WITH leads AS (
    SELECT *, CAST(epoch(date_trunc('second', created_at)) AS BIGINT) AS created_s
    FROM read_parquet('{data}/leads.parquet')
), per_lead AS (
    SELECT lead_id,
           min(CAST(epoch(date_trunc('second', ts)) AS BIGINT))
               FILTER (WHERE stage IN ('won', 'lost')) AS closed_s,
           min(CAST(epoch(date_trunc('second', ts)) AS BIGINT))
               FILTER (WHERE stage = '{TARGET}') AS target_s
    FROM read_parquet('{data}/outcomes.parquet') GROUP BY lead_id
), snaps AS (
    SELECT l.lead_id, l.created_s, l.created_s + o.k * {day} AS as_of_s,
           CAST(o.k AS INTEGER) AS offset_days,
           CAST(p.target_s IS NOT NULL AND p.target_s <= l.created_s + o.k * {day}
                + {HORIZON * day} AS TINYINT) AS label
    FROM leads l CROSS JOIN (VALUES {offsets}) o(k) LEFT JOIN per_lead p USING (lead_id)
    WHERE (p.closed_s IS NULL OR p.closed_s > l.created_s + o.k * {day})
      AND (p.target_s IS NULL OR p.target_s > l.created_s + o.k * {day})
      AND l.created_s + o.k * {day} + {HORIZON * day} <= {end_s}
), j AS (
    SELECT k.lead_id, k.as_of_s, e.event_type, e.ts_s, k.as_of_s - e.ts_s AS age_s
    FROM (SELECT DISTINCT lead_id, as_of_s FROM snaps) k
    JOIN (SELECT lead_id, event_type, CAST(epoch(date_trunc('second', ts)) AS BIGINT) AS ts_s
          FROM read_parquet('{data}/events.parquet') WHERE event_type IN ({types})) e
      ON e.lead_id = k.lead_id AND e.ts_s < k.as_of_s
), per_type AS (
    SELECT lead_id, as_of_s, event_type, {", ".join(windows)}, count(*) AS n,
           min(CAST(age_s AS DOUBLE) / {float(day)}) AS rec,
           sum(exp(CAST(age_s AS DOUBLE) / {float(day)} * {-d.decay_rate!r})) AS dec
    FROM j GROUP BY ALL
), wide AS (
    SELECT lead_id, as_of_s, {", ".join(pivot)} FROM per_type GROUP BY lead_id, as_of_s
), active AS (
    SELECT lead_id, as_of_s, count(DISTINCT ts_s // {day}) AS {d.active_days_name}
    FROM j WHERE age_s <= {d.active_days_window * day} GROUP BY lead_id, as_of_s
), attrs AS (
    SELECT l.lead_id, {", ".join(attrs)} FROM leads l
)
SELECT s.lead_id, s.created_s, s.as_of_s, s.offset_days, s.label, {", ".join(outer)}
FROM snaps s
LEFT JOIN (SELECT w.*, a.{d.active_days_name} FROM wide w
           LEFT JOIN active a USING (lead_id, as_of_s)) w USING (lead_id, as_of_s)
LEFT JOIN attrs a USING (lead_id)
ORDER BY s.lead_id, s.as_of_s
"""


def run_sql(data: Path, out: Path, memory_limit: str | None = None) -> int:
    import duckdb

    con = duckdb.connect()
    con.execute("SET TimeZone = 'UTC'")
    if memory_limit:
        con.execute(f"SET memory_limit = '{memory_limit}'")
    end_s = _data_end_s(con, data)
    table = con.sql(hand_written_sql(data, end_s)).to_arrow_table()
    import pyarrow.parquet as pq

    pq.write_table(table, out)
    return int(table.num_rows)


def run_pipeline(data: Path, work: Path) -> int:
    import yaml

    params = yaml.safe_load((REPO / "params.yaml").read_text())
    params["data"]["dir"] = str(data)
    path = work / f"params-{data.name}.yaml"
    path.write_text(yaml.safe_dump(params, sort_keys=False))
    out = work / f"features-{data.name}"
    subprocess.run(
        [
            sys.executable,
            str(REPO / "pipelines" / "featurize.py"),
            "--params",
            str(path),
            "--out",
            str(out),
        ],
        check=True,
        cwd=REPO,
    )
    summary = json.loads((out / "summary.json").read_text())
    return int(sum(summary[s]["snapshots"] for s in ("train", "valid", "test")))


def child(args: argparse.Namespace) -> int:
    """Run one variant in this process and print its facts as one JSON line."""
    started = time.perf_counter()
    data, out = Path(args.data), Path(args.out)
    if args.variant == "ibis":
        rows = run_ibis(data, out, args.memory_limit)
    elif args.variant == "sql":
        rows = run_sql(data, out, args.memory_limit)
    elif args.variant == "pipeline":
        rows = run_pipeline(data, out.parent)
    else:
        raise SystemExit(f"unknown variant {args.variant}")
    wall = time.perf_counter() - started
    self_kb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    kids_kb = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss
    print(
        "RESULT "
        + json.dumps(
            {
                "wall_s": round(wall, 2),
                "rows": rows,
                "peak_rss_mb": round(max(self_kb, kids_kb) / 1024, 1),
            }
        ),
        flush=True,
    )
    return 0


def _spawn(variant: str, data: Path, out: Path, memory_limit: str | None = None) -> dict[str, Any]:
    cmd = [
        sys.executable,
        __file__,
        "child",
        "--variant",
        variant,
        "--data",
        str(data),
        "--out",
        str(out),
    ]
    if memory_limit:
        cmd += ["--memory-limit", memory_limit]
    proc = subprocess.run(cmd, capture_output=True, text=True, cwd=REPO)
    if proc.returncode != 0:
        raise RuntimeError(f"{variant} failed:\n{proc.stdout[-3000:]}\n{proc.stderr[-5000:]}")
    line = [x for x in proc.stdout.splitlines() if x.startswith("RESULT ")][-1]
    return json.loads(line[len("RESULT ") :])


def compare(a: Path, b: Path) -> float:
    """Largest absolute difference between two feature tables (identical shape and keys)."""
    import numpy as np
    import pandas as pd

    x = pd.read_parquet(a).sort_values(["lead_id", "as_of_s"]).reset_index(drop=True)
    y = pd.read_parquet(b).sort_values(["lead_id", "as_of_s"]).reset_index(drop=True)
    if len(x) != len(y):
        raise AssertionError(f"{a.name} has {len(x)} rows, {b.name} {len(y)}")
    worst = 0.0
    for col in x.columns:
        if col not in y.columns:
            raise AssertionError(f"{b.name} lacks column {col}")
        u, v = x[col], y[col]
        if pd.api.types.is_numeric_dtype(u) and pd.api.types.is_numeric_dtype(v):
            uu, vv = u.to_numpy(dtype=np.float64), v.to_numpy(dtype=np.float64)
            if not np.array_equal(np.isnan(uu), np.isnan(vv)):
                raise AssertionError(f"column {col}: missing values differ")
            ok = ~np.isnan(uu)
            diff = float(np.max(np.abs(uu[ok] - vv[ok]), initial=0.0))
            if diff > 1e-9 * max(1.0, float(np.max(np.abs(uu[ok]), initial=0.0))):
                raise AssertionError(f"column {col}: values differ by {diff}")
            worst = max(worst, diff)
        elif not u.astype("string").fillna("<NA>").equals(v.astype("string").fillna("<NA>")):
            raise AssertionError(f"column {col}: values differ")
    return worst


def featuretools_run(data: Path, ft_python: str, sample: int, work: Path) -> dict[str, Any] | None:
    """Featuretools DFS with cutoff times on ``sample`` snapshots, in the pandas<3 venv."""
    if not Path(ft_python).exists():
        print(f"featuretools: {ft_python} not found; skipped")
        return None
    snaps = work / f"snaps-{data.name}.parquet"
    import pandas as pd

    feats = pd.read_parquet(work / f"ibis-{data.name}.parquet", columns=["lead_id", "as_of_s"])
    feats.sample(n=min(sample, len(feats)), random_state=0).to_parquet(snaps)
    script = Path(__file__).with_name("_featuretools_dfs.py")
    proc = subprocess.run(
        [ft_python, str(script), "--data", str(data), "--snapshots", str(snaps)],
        capture_output=True,
        text=True,
        timeout=3600,
    )
    if proc.returncode != 0:
        print(f"featuretools failed:\n{proc.stderr[-3000:]}")
        return None
    line = [x for x in proc.stdout.splitlines() if x.startswith("RESULT ")][-1]
    return dict(json.loads(line[len("RESULT ") :]))


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    sub = parser.add_subparsers(dest="cmd")
    c = sub.add_parser("child")
    c.add_argument("--variant", required=True)
    c.add_argument("--data", required=True)
    c.add_argument("--out", required=True)
    c.add_argument("--memory-limit", default=None)
    parser.add_argument("--sizes", type=int, nargs="+", default=[20_000, 200_000])
    parser.add_argument("--work", type=Path, default=Path("/tmp/bench-featurize"))
    parser.add_argument("--ft-python", default="/tmp/ftvenv/bin/python")
    parser.add_argument("--ft-sample", type=int, default=200)
    parser.add_argument("--skip-pipeline", action="store_true")
    parser.add_argument("--skip-featuretools", action="store_true")
    parser.add_argument(
        "--memory-limit", default=None, help="DuckDB memory_limit for both variants, e.g. 1GB"
    )
    args = parser.parse_args()
    if args.cmd == "child":
        return child(args)

    import pyarrow.parquet as pq

    print(f"machine: {machine_info()}", flush=True)
    args.work.mkdir(parents=True, exist_ok=True)
    rows: list[dict[str, Any]] = []
    for n in args.sizes:
        data = generate(n, args.work)
        n_events = pq.read_metadata(data / "events.parquet").num_rows
        r_sql = _spawn("sql", data, args.work / f"sql-{data.name}.parquet", args.memory_limit)
        r_ibis = _spawn("ibis", data, args.work / f"ibis-{data.name}.parquet", args.memory_limit)
        worst = compare(
            args.work / f"ibis-{data.name}.parquet", args.work / f"sql-{data.name}.parquet"
        )
        print(
            f"{n_events:,} events: executor == hand-written SQL (max |diff| {worst:.1e})",
            flush=True,
        )
        base = {
            "n_leads": n,
            "n_events": n_events,
            "snapshots": r_ibis["rows"],
            "duckdb_memory_limit": args.memory_limit,
        }
        for variant, r in (("hand-written DuckDB SQL", r_sql), ("batch executor (Ibis)", r_ibis)):
            row = {
                **base,
                "variant": variant,
                **r,
                "time_vs_sql": round(r["wall_s"] / r_sql["wall_s"], 2),
            }
            rows.append(row)
            write_result(BENCH, variant, **row)
        if not args.skip_pipeline:
            r_pipe = _spawn("pipeline", data, args.work / "unused")
            row = {
                **base,
                "variant": "pipelines/featurize.py (end to end)",
                **r_pipe,
                "time_vs_sql": round(r_pipe["wall_s"] / r_sql["wall_s"], 2),
            }
            rows.append(row)
            write_result(BENCH, "pipeline", **row)
        print_table(
            "featurization (so far)",
            rows,
            ["n_events", "variant", "snapshots", "wall_s", "peak_rss_mb", "time_vs_sql"],
        )
    small = generate(args.sizes[0], args.work)
    ft = (
        None
        if args.skip_featuretools
        else featuretools_run(small, args.ft_python, args.ft_sample, args.work)
    )
    if ft is not None:
        ours = next(
            r
            for r in rows
            if r["n_leads"] == args.sizes[0] and r["variant"] == "batch executor (Ibis)"
        )
        ours_per = ours["wall_s"] / ours["snapshots"]
        ft_per = ft["wall_s"] / ft["snapshots"]
        row = {
            "n_leads": args.sizes[0],
            "n_events": ours["n_events"],
            **ft,
            "variant": "featuretools DFS (cutoff times)",
            "s_per_snapshot": ft_per,
            "ours_s_per_snapshot": ours_per,
            "ratio": round(ft_per / ours_per, 0),
        }
        write_result(BENCH, "featuretools", **row)
        print(
            f"\nfeaturetools: {ft['snapshots']} snapshots in {ft['wall_s']:.1f} s = "
            f"{ft_per * 1e3:.1f} ms/snapshot; ours {ours_per * 1e6:.1f} us/snapshot; "
            f"ours is {ft_per / ours_per:,.0f}x cheaper per snapshot"
        )
    print_table(
        "featurization",
        rows,
        ["n_events", "variant", "snapshots", "wall_s", "peak_rss_mb", "time_vs_sql"],
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
