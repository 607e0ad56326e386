"""The monitor: the score log and the outcomes against the bundle's reference and promises.

Everything heavy runs in DuckDB over the Parquet parts of the stores (:mod:`records`), so a log
of ten million scores is read in a few passes and never loaded into pandas: volumes and PSI by
binning in SQL (cumulative ``count_if`` per reference edge), cohorts as each lead's first score
per week joined to its outcomes, AUCs from counts per probability group. The small aggregates
then become the figures (docs/monitoring.md, "The monitor"):

- volumes per week and stage against what the thresholds promised (the capacity agreement);
- on cohorts whose horizon has passed: realized conversion (Wilson 95% interval) against the
  mean predicted probability, realized ROC-AUC / PR-AUC against the test figures;
- on cohorts still open: CBPE estimates from the calibrated probabilities (expected
  conversions = sum of p, with a Poisson-binomial 95% interval; expected AUCs by treating each
  probability as a Bernoulli label, as NannyML does), marked as estimates;
- PSI of the score and of every model input against the reference, the most drifting first;
- SQL acceptance and rejection by reason, and the time from SQL to the sales decision against
  the SLA;
- a verdict, ok / investigate / retrain, with its reasons, from the ``monitor`` limits.

Cohorts are weeks of ``as_of`` (Monday, UTC). A lead scored several times counts in each score's
week for volumes and drift, but once per cohort week for conversion: its first score that week.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from predictive_scoring.config import FeaturizeParams, MonitorParams
from predictive_scoring.errors import BundleError, ConfigError
from predictive_scoring.io import atomic_path, write_json
from predictive_scoring.monitor_report import pct, render_html
from predictive_scoring.profile import (
    Distribution,
    Reference,
    auc_from_counts,
    average_precision_from_counts,
    psi,
)
from predictive_scoring.records import OUTCOMES, SCORES, feature_column, scan
from predictive_scoring.thresholds import STAGE_NAMES

__all__ = [
    "EXPERIMENT",
    "LEVELS",
    "MonitoredModel",
    "build_report",
    "log_to_mlflow",
    "monitored_model",
    "render_html",
    "run_monitor",
    "verdict_at_least",
    "wilson_interval",
]

logger = logging.getLogger(__name__)

EXPERIMENT = "lead-scoring-monitoring"
LEVELS = ("ok", "investigate", "retrain")
STAGES = STAGE_NAMES
Z = 1.959963984540054  # two-sided 95%
MIN_CLASS = 10  # positives and negatives a realized AUC needs
DECISIONS = ("sql_accepted", "sql_rejected")


# --------------------------------------------------------------------------------------------
# Statistics


def wilson_interval(k: float, n: float, z: float = Z) -> tuple[float, float]:
    """Wilson score interval of a proportion k/n (NaN, NaN when n is 0)."""
    if n <= 0:
        return math.nan, math.nan
    p = k / n
    denom = 1.0 + z * z / n
    centre = (p + z * z / (2 * n)) / denom
    half = z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / denom
    return max(0.0, centre - half), min(1.0, centre + half)


def auc_interval(auc: float, n_pos: float, n_neg: float, z: float = Z) -> tuple[float, float]:
    """Hanley-McNeil 95% interval of a ROC-AUC with n_pos positives and n_neg negatives."""
    if not (math.isfinite(auc) and n_pos > 1 and n_neg > 1):
        return math.nan, math.nan
    q1, q2 = auc / (2 - auc), 2 * auc * auc / (1 + auc)
    var = (auc * (1 - auc) + (n_pos - 1) * (q1 - auc**2) + (n_neg - 1) * (q2 - auc**2)) / (
        n_pos * n_neg
    )
    half = z * math.sqrt(max(var, 0.0))
    return max(0.0, auc - half), min(1.0, auc + half)


def _num(value: Any) -> float | None:
    """A JSON number, or None for NaN and missing values."""
    if value is None:
        return None
    f = float(value)
    return f if math.isfinite(f) else None


# --------------------------------------------------------------------------------------------
# What is monitored


@dataclass(frozen=True)
class MonitoredModel:
    """The model version whose scores are monitored, with its reference and promises."""

    name: str
    version: str
    reference: Reference | None
    capacity: Mapping[str, Any] | None
    test_metrics: Mapping[str, float]
    target_stage: str
    horizon_days: int
    source: str = ""


def monitored_model(
    metadata: Mapping[str, Any], *, featurize: FeaturizeParams, source: str = ""
) -> MonitoredModel:
    """Read what the monitor needs from a bundle's metadata.

    The label definition is the bundle's own (written at export); params.yaml's featurize
    section stands in for a bundle exported before the reference existed.
    """
    reference: Reference | None = None
    raw = metadata.get("reference")
    if raw is not None:
        try:
            reference = Reference.from_dict(raw)
        except Exception as exc:  # any malformed part means the same to the user
            raise BundleError(
                f"the bundle's reference profile (metadata.reference) is malformed "
                f"({type(exc).__name__}: {exc}); re-export the bundle (`dvc repro`)"
            ) from exc
    label = reference.label if reference else {}
    metrics = metadata.get("metrics") if isinstance(metadata.get("metrics"), Mapping) else {}
    test: dict[str, float] = {}
    for key in ("roc_auc", "pr_auc", "base_rate", "mean_probability"):
        value = metrics.get(key, metrics.get(f"test_{key}")) if metrics else None
        if value is not None:
            test[key] = float(value)
    capacity = metadata.get("capacity")
    return MonitoredModel(
        name=str(metadata.get("name", "lead-scoring")),
        version=str(metadata.get("version", "unregistered")),
        reference=reference,
        capacity=capacity if isinstance(capacity, Mapping) else None,
        test_metrics=test,
        target_stage=str(label.get("target_stage", featurize.target_stage)),
        horizon_days=int(label.get("horizon_days", featurize.horizon_days)),
        source=source,
    )


# --------------------------------------------------------------------------------------------
# DuckDB: the aggregates


def _quote(text: str) -> str:
    return "'" + text.replace("'", "''") + "'"


def _count(condition: str) -> str:
    """count_if that says 0, not NULL, when the condition is NULL on every row."""
    return f"coalesce(count_if({condition}), 0)"


def _ident(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'


@dataclass(frozen=True)
class _Binned:
    """How one variable's bins are counted in SQL and read back."""

    name: str
    dist: Distribution
    columns: tuple[str, ...]  # aggregate names in the weekly query
    missing_column: str | None


def _bin_aggregates(expr: str, dist: Distribution, prefix: str) -> tuple[list[str], _Binned]:
    """Cumulative count_if per numeric edge (cheaper in DuckDB than histogram()), or one
    count_if per categorical code; missing counted apart for numbers."""
    aggs: list[str] = []
    cols: list[str] = []
    if dist.kind == "numeric":
        for j, edge in enumerate(dist.edges):
            cols.append(f"{prefix}_{j}")
            aggs.append(f"{_count(f'{expr} <= {float(edge)!r}')} AS {cols[-1]}")
        missing = f"{prefix}_m"
        aggs.append(f"count_if({expr} IS NULL OR isnan({expr})) AS {missing}")
        return aggs, _Binned(prefix, dist, tuple(cols), missing)
    for j in range(dist.n_bins):
        cols.append(f"{prefix}_{j}")
        aggs.append(f"{_count(f'{expr} = {j}')} AS {cols[-1]}")
    return aggs, _Binned(prefix, dist, tuple(cols), None)


def _bin_matrix(weekly: pd.DataFrame, binned: _Binned) -> tuple[np.ndarray, np.ndarray]:
    """Counts per bin (rows x bins) and missing counts (rows) from the weekly query."""
    values = weekly[list(binned.columns)].to_numpy(dtype=np.float64).reshape(len(weekly), -1)
    n = weekly["n"].to_numpy(dtype=np.float64)
    if binned.dist.kind == "numeric":
        missing = weekly[binned.missing_column or ""].to_numpy(dtype=np.float64)
        cumulative = np.column_stack([np.zeros(len(weekly)), values, n - missing])
        return np.diff(cumulative, axis=1), missing
    return values, n - values.sum(axis=1)


@dataclass
class _Collected:
    versions: dict[str, int]
    weekly: pd.DataFrame
    binned: dict[str, _Binned]  # "score" and each feature with a logged column
    not_logged: list[str]
    cohorts: pd.DataFrame
    decisions_weekly: pd.DataFrame
    reasons: pd.DataFrame
    decision_hours: dict[str, float | None]
    outcome_rows: int
    outcome_unique: int
    last_outcome: datetime | None
    first_as_of: datetime | None
    last_as_of: datetime | None


def _connect(memory_limit: str) -> Any:
    import duckdb

    con = duckdb.connect()
    try:
        con.execute(f"SET memory_limit = {_quote(memory_limit)}")
    except duckdb.Error as exc:
        raise ConfigError(f"monitor.duckdb_memory_limit: {memory_limit!r} ({exc})") from exc
    con.execute("SET TimeZone = 'UTC'")
    con.execute("SET preserve_insertion_order = false")
    return con


def _df(con: Any, query: str) -> pd.DataFrame:
    cursor = con.execute(query)
    names = [d[0] for d in cursor.description]
    return pd.DataFrame(cursor.fetchall(), columns=names)


def _utc(value: Any) -> datetime | None:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return None
    ts = pd.Timestamp(value)
    if pd.isna(ts):
        return None
    ts = ts.tz_localize("UTC") if ts.tzinfo is None else ts.tz_convert("UTC")
    moment: datetime = ts.to_pydatetime()
    return moment


def _collect(
    con: Any,
    store: str | Path,
    model: MonitoredModel,
    params: MonitorParams,
    *,
    since: datetime | None,
    now: datetime | None,
) -> _Collected | dict[str, int]:
    """Run the queries; the rows per model version instead when this version has none."""
    log = scan(con, store, SCORES)
    if log is None:
        return {}
    log.create_view("log_all")
    versions = {
        str(v): int(n)
        for v, n in con.execute(
            "SELECT model_version, count(*) FROM log_all GROUP BY 1 ORDER BY 2 DESC"
        ).fetchall()
    }
    if versions.get(model.version, 0) == 0:
        return versions
    where = f"model_version = {_quote(model.version)}"
    if since is not None:
        where += f" AND as_of >= {_quote(since.isoformat())}::TIMESTAMPTZ"
    con.execute(f"CREATE TEMP VIEW s AS SELECT * FROM log_all WHERE {where}")
    logged = set(log.columns)

    # 1. one pass over every score: volumes per week and stage, and the bins of every variable
    aggs: list[str] = []
    binned: dict[str, _Binned] = {}
    not_logged: list[str] = []
    if model.reference is not None:
        score_aggs, binned["score"] = _bin_aggregates("probability", model.reference.score, "s")
        aggs += score_aggs
        for i, (name, dist) in enumerate(model.reference.features.items()):
            column = feature_column(name)
            if column not in logged:
                not_logged.append(name)
                continue
            feature_aggs, b = _bin_aggregates(_ident(column), dist, f"f{i}")
            binned[name] = b
            aggs += feature_aggs
    extra = "".join(f", {a}" for a in aggs)
    weekly = _df(
        con,
        "SELECT date_trunc('week', as_of::TIMESTAMP) AS week, stage, count(*) AS n, "
        f"sum(probability) AS sum_p, min(as_of) AS first_as_of, max(as_of) AS last_as_of{extra} "
        "FROM s GROUP BY ALL ORDER BY week, stage",
    )
    if weekly.empty:
        return versions

    # 2. cohorts: each lead's first score per week, joined to its deduplicated outcomes
    con.execute(
        "CREATE TEMP TABLE firsts AS SELECT lead_id, "
        "date_trunc('week', as_of::TIMESTAMP) AS week, min(as_of) AS as_of, "
        "arg_min(probability, as_of) AS p, arg_min(stage, as_of) AS stage, "
        "min(as_of) FILTER (WHERE stage = 'SQL') AS sql_at FROM s GROUP BY lead_id, week"
    )
    outcomes = scan(con, store, OUTCOMES)
    if outcomes is None:
        con.execute(
            "CREATE TEMP TABLE o (lead_id VARCHAR, stage VARCHAR, ts TIMESTAMPTZ, reason VARCHAR)"
        )
        outcome_rows = 0
    else:
        outcomes.create_view("outcomes_all")
        # posted twice (a retry, a re-import) is one outcome: (lead_id, stage, ts) is its key
        con.execute(
            "CREATE TEMP TABLE o AS SELECT lead_id, stage, ts, "
            "arg_min(reason, received_at) AS reason FROM outcomes_all GROUP BY lead_id, stage, ts"
        )
        outcome_rows = int(con.execute("SELECT count(*) FROM outcomes_all").fetchone()[0])
    outcome_unique, last_outcome = con.execute("SELECT count(*), max(ts) FROM o").fetchone()
    horizon_s = int(model.horizon_days) * 86_400
    converted = _count(
        f"l.target_ts > f.as_of AND epoch(l.target_ts) - epoch(f.as_of) <= {horizon_s}"
    )
    cohorts = _df(
        con,
        f"""
        WITH l AS (
            SELECT lead_id,
                   min(ts) FILTER (WHERE stage = {_quote(model.target_stage)}) AS target_ts,
                   min(ts) FILTER (WHERE stage IN ('won', 'lost')) AS closed_ts
            FROM o GROUP BY lead_id
        )
        SELECT f.week, f.stage, round(f.p, 3) AS pbin,
               coalesce(l.closed_ts <= f.as_of OR l.target_ts <= f.as_of, false) AS already,
               count(*) AS n, sum(f.p) AS sum_p, sum(f.p * (1 - f.p)) AS var_p,
               {converted} AS pos
        FROM firsts f LEFT JOIN l USING (lead_id)
        GROUP BY ALL ORDER BY f.week, pbin
        """,
    )

    # 3. sales: the first decision on each lead at or after the model first made it an SQL
    clock = now or _utc(last_outcome) or _utc(weekly["last_as_of"].max())
    sla_s = float(params.sql_sla_hours) * 3600.0
    now_sql = _quote(clock.isoformat()) + "::TIMESTAMPTZ" if clock else "NULL"
    due = _count(f"decision IS NOT NULL OR epoch({now_sql}) - epoch(sql_at) > {sla_s}")
    con.execute(
        """
        CREATE TEMP TABLE decisions AS
        WITH sq AS (
            SELECT lead_id, min(sql_at) AS sql_at FROM firsts
            WHERE sql_at IS NOT NULL GROUP BY lead_id
        )
        SELECT sq.lead_id, sq.sql_at, min(o.ts) AS decided_at,
               arg_min(o.stage, o.ts) AS decision, arg_min(o.reason, o.ts) AS reason,
               (epoch(min(o.ts)) - epoch(sq.sql_at)) / 3600.0 AS hours
        FROM sq LEFT JOIN o ON o.lead_id = sq.lead_id
             AND o.stage IN ('sql_accepted', 'sql_rejected') AND o.ts >= sq.sql_at
        GROUP BY sq.lead_id, sq.sql_at
        """
    )
    decisions_weekly = _df(
        con,
        f"""
        SELECT date_trunc('week', sql_at::TIMESTAMP) AS week, count(*) AS sqls,
               {_count("decision = 'sql_accepted'")} AS accepted,
               {_count("decision = 'sql_rejected'")} AS rejected,
               {_count("decision IS NULL")} AS pending,
               {_count(f"hours * 3600.0 <= {sla_s}")} AS within_sla,
               {due} AS due,
               median(hours) AS median_hours, quantile_cont(hours, 0.9) AS p90_hours
        FROM decisions GROUP BY 1 ORDER BY 1
        """,
    )
    reasons = _df(
        con,
        "SELECT decision, coalesce(reason, '(no reason given)') AS reason, count(*) AS leads "
        "FROM decisions WHERE decision IS NOT NULL GROUP BY ALL ORDER BY leads DESC, reason",
    )
    median_h, p90_h = con.execute(
        "SELECT median(hours), quantile_cont(hours, 0.9) FROM decisions"
    ).fetchone()
    return _Collected(
        versions=versions,
        weekly=weekly,
        binned=binned,
        not_logged=not_logged,
        cohorts=cohorts,
        decisions_weekly=decisions_weekly,
        reasons=reasons,
        decision_hours={"median": _num(median_h), "p90": _num(p90_h)},
        outcome_rows=outcome_rows,
        outcome_unique=int(outcome_unique),
        last_outcome=_utc(last_outcome),
        first_as_of=_utc(weekly["first_as_of"].min()),
        last_as_of=_utc(weekly["last_as_of"].max()),
    )


# --------------------------------------------------------------------------------------------
# The figures


def _week_label(week: Any) -> str:
    return str(pd.Timestamp(week).strftime("%Y-%m-%d"))


def _promised(model: MonitoredModel) -> dict[str, dict[str, float | None]]:
    stages = (model.capacity or {}).get("stages") or {}
    return {s: dict(stages[s]) for s in STAGES if s in stages}


def _volumes(data: _Collected, model: MonitoredModel, params: MonitorParams) -> dict[str, Any]:
    promised = _promised(model)
    table = data.weekly.pivot_table(index="week", columns="stage", values="n", aggfunc="sum")
    table = table.reindex(columns=list(STAGES)).fillna(0.0).sort_index()
    last_seen = data.last_as_of
    weeks = []
    for week, row in table.iterrows():
        start = pd.Timestamp(week).tz_localize("UTC")
        partial = last_seen is not None and start + pd.Timedelta(days=7) > last_seen
        total = float(row.sum())
        entry: dict[str, Any] = {"week": _week_label(week), "partial": bool(partial)}
        entry["total"] = int(total)
        for stage in STAGES:
            n = float(row[stage])
            per_week = (promised.get(stage) or {}).get("leads_per_week")
            entry[stage] = {
                "scores": int(n),
                "share": _num(n / total) if total else None,
                "promised": _num(per_week),
                "ratio": _num(n / per_week) if per_week else None,
            }
        weeks.append(entry)
    full = [w for w in weeks if not w["partial"]][-params.recent_weeks :]
    recent: dict[str, Any] = {"weeks": len(full)}
    for stage in STAGES:
        mean = float(np.mean([w[stage]["scores"] for w in full])) if full else math.nan
        per_week = (promised.get(stage) or {}).get("leads_per_week")
        shares = [w[stage]["share"] for w in full if w[stage]["share"] is not None]
        recent[stage] = {
            "scores_per_week": _num(mean),
            "promised": _num(per_week),
            "ratio": _num(mean / per_week) if per_week else None,
            "share": _num(float(np.mean(shares))) if shares else None,
            "promised_share": _num((promised.get(stage) or {}).get("share")),
        }
    return {
        "promised": promised,
        "promise_split": (model.capacity or {}).get("split"),
        "weeks": weeks,
        "recent": recent,
    }


def _group_figures(
    part: pd.DataFrame, *, matured: bool, promised_rate: float | None = None
) -> dict[str, Any]:
    """Conversion figures of one set of cohort rows (leads scored after closing excluded)."""
    n = float(part["n"].sum())
    sum_p = float(part["sum_p"].sum())
    sd = math.sqrt(float(part["var_p"].sum()))
    out: dict[str, Any] = {
        "leads": int(n),
        "mean_probability": _num(sum_p / n) if n else None,
        "expected": _num(sum_p),
        "expected_low": _num(max(0.0, sum_p - Z * sd)),
        "expected_high": _num(min(n, sum_p + Z * sd)),
        "promised_rate": _num(promised_rate),
    }
    converted = float(part["pos"].sum())
    if matured:
        low, high = wilson_interval(converted, n)
        out |= {
            "converted": int(converted),
            "rate": _num(converted / n) if n else None,
            "rate_low": _num(low),
            "rate_high": _num(high),
            "gap": _num(converted / n - sum_p / n) if n else None,
        }
    else:
        out["converted_so_far"] = int(converted)
    return out


def _aucs(part: pd.DataFrame, *, matured: bool) -> dict[str, Any]:
    grouped = part.groupby("pbin")[["n", "sum_p", "pos"]].sum().sort_index()
    if matured:
        pos = grouped["pos"].to_numpy(dtype=np.float64)
    else:
        pos = grouped["sum_p"].to_numpy(dtype=np.float64)
    neg = grouped["n"].to_numpy(dtype=np.float64) - pos
    n_pos, n_neg = float(pos.sum()), float(neg.sum())
    if matured and (n_pos < MIN_CLASS or n_neg < MIN_CLASS):
        return {"roc_auc": None, "roc_auc_low": None, "roc_auc_high": None, "pr_auc": None}
    auc = auc_from_counts(pos, neg)
    low, high = auc_interval(auc, n_pos, n_neg)
    return {
        "roc_auc": _num(auc),
        "roc_auc_low": _num(low),
        "roc_auc_high": _num(high),
        "pr_auc": _num(average_precision_from_counts(pos, neg)),
    }


def _conversion(
    data: _Collected, model: MonitoredModel, params: MonitorParams, now: datetime | None
) -> tuple[dict[str, Any], dict[str, Any]]:
    """Per cohort week and stage, then pooled: realized where matured, else estimates."""
    cohorts = data.cohorts
    kept = cohorts[~cohorts["already"].astype(bool)]
    excluded = int(cohorts.loc[cohorts["already"].astype(bool), "n"].sum())
    promised = _promised(model)
    horizon = timedelta(days=model.horizon_days)
    weeks_out: list[dict[str, Any]] = []
    matured_weeks: list[Any] = []
    open_weeks: list[Any] = []
    for week, part in kept.groupby("week", sort=True):
        end = pd.Timestamp(week).tz_localize("UTC").to_pydatetime() + timedelta(days=7)
        matured = now is not None and end + horizon <= now
        (matured_weeks if matured else open_weeks).append(week)
        entry: dict[str, Any] = {
            "week": _week_label(week),
            "status": "realized" if matured else "estimate",
            "matures": (end + horizon).date().isoformat(),
            "all": _group_figures(part, matured=matured) | _aucs(part, matured=matured),
        }
        for stage in STAGES:
            rows = part[part["stage"] == stage]
            rate = (promised.get(stage) or {}).get("precision")
            entry[stage] = _group_figures(rows, matured=matured, promised_rate=rate)
        weeks_out.append(entry)

    # the verdict reads the latest matured cohorts: recent_weeks of them, more if needed to
    # reach min_matured leads
    chosen: list[Any] = []
    total = 0.0
    sizes = kept.groupby("week")["n"].sum()
    for week in reversed(matured_weeks):
        if len(chosen) >= params.recent_weeks and total >= params.min_matured:
            break
        chosen.append(week)
        total += float(sizes[week])

    def pooled(weeks: list[Any], *, matured: bool) -> dict[str, Any]:
        part = kept[kept["week"].isin(weeks)]
        out: dict[str, Any] = {
            "weeks": [_week_label(w) for w in sorted(weeks)],
            "all": _group_figures(part, matured=matured) | _aucs(part, matured=matured),
        }
        for stage in STAGES:
            rate = (promised.get(stage) or {}).get("precision")
            rows = part[part["stage"] == stage]
            out[stage] = _group_figures(rows, matured=matured, promised_rate=rate)
        return out

    conversion = {
        "cohort": "each lead's first score in a week (as_of, Monday UTC)",
        "target_stage": model.target_stage,
        "horizon_days": model.horizon_days,
        "now": now.isoformat() if now else None,
        "excluded_closed_before_score": excluded,
        "weeks": weeks_out,
    }
    performance = {
        "test": {k: _num(v) for k, v in model.test_metrics.items()},
        "reference_expected": dict(model.reference.expected) if model.reference else {},
        "realized": pooled(chosen, matured=True),
        "realized_all_matured": pooled(matured_weeks, matured=True),
        "estimated": pooled(open_weeks, matured=False),
    }
    return conversion, performance


def _top_change(dist: Distribution, counts: np.ndarray, missing: float) -> dict[str, Any]:
    current = np.append(counts, missing)
    total = current.sum()
    shares = current / total if total else current
    reference = np.append(np.asarray(dist.proportions), dist.missing)
    i = int(np.argmax(np.abs(shares - reference)))
    return {
        "bin": dist.bin_labels()[i],
        "reference": _num(reference[i]),
        "current": _num(shares[i]),
    }


def _drift(data: _Collected, model: MonitoredModel, params: MonitorParams) -> dict[str, Any]:
    if model.reference is None:
        return {
            "available": False,
            "why": "the bundle has no reference profile; re-export it (`dvc repro`)",
        }
    weekly = data.weekly
    weeks, week_index = np.unique(pd.to_datetime(weekly["week"]).to_numpy(), return_inverse=True)
    recent = week_index >= len(weeks) - params.recent_weeks
    scores_per_week = np.bincount(week_index, weights=weekly["n"].to_numpy(dtype=np.float64))

    def per_week(binned: _Binned) -> tuple[np.ndarray, np.ndarray, np.ndarray, float]:
        """Counts and missing per week, then over the recent weeks."""
        counts, missing = _bin_matrix(weekly, binned)
        by_week = np.zeros((len(weeks), counts.shape[1]))
        np.add.at(by_week, week_index, counts)
        missing_by_week = np.bincount(week_index, weights=missing, minlength=len(weeks))
        return by_week, missing_by_week, counts[recent].sum(axis=0), float(missing[recent].sum())

    n_recent = int(weekly.loc[recent, "n"].sum())
    score = data.binned["score"]
    s_weeks, s_missing_weeks, s_counts, s_missing = per_week(score)
    s_total = s_counts.sum() + s_missing
    score_bins = [
        {"bin": label, "reference": _num(ref), "current": _num(cur / s_total if s_total else 0)}
        for label, ref, cur in zip(
            score.dist.bin_labels(),
            [*score.dist.proportions, score.dist.missing],
            [*s_counts, s_missing],
            strict=True,
        )
    ]
    week_labels = [_week_label(w) for w in weeks]
    score_by_week = [
        {
            "week": week_labels[i],
            "scores": int(scores_per_week[i]),
            "psi": _num(psi(score.dist, s_weeks[i], s_missing_weeks[i])),
        }
        for i in range(len(weeks))
    ]
    features: list[dict[str, Any]] = []
    feature_weeks: dict[str, list[float | None]] = {}
    for name, binned in data.binned.items():
        if name == "score":
            continue
        by_week, missing_by_week, c, m = per_week(binned)
        feature_weeks[name] = [
            _num(psi(binned.dist, by_week[i], missing_by_week[i])) for i in range(len(weeks))
        ]
        features.append(
            {
                "feature": name,
                "kind": binned.dist.kind,
                "psi": _num(psi(binned.dist, c, m)),
                "largest_change": _top_change(binned.dist, c, m),
            }
        )
    features.sort(key=lambda f: -(f["psi"] if f["psi"] is not None else -1.0))
    top = [f["feature"] for f in features[: params.top_features]]
    top_by_week = {name: feature_weeks[name] for name in top}
    return {
        "available": True,
        "reference_split": model.reference.split,
        "reference_rows": model.reference.rows,
        "recent_weeks": week_labels[-params.recent_weeks :],
        "recent_scores": n_recent,
        "score": {"psi": _num(psi(score.dist, s_counts, s_missing)), "bins": score_bins},
        "score_by_week": score_by_week,
        "features": features,
        "top": top,
        "top_by_week": {"weeks": week_labels, "psi": top_by_week},
        "not_logged": data.not_logged,
    }


def _sales(data: _Collected, params: MonitorParams) -> dict[str, Any]:
    weeks: list[dict[str, Any]] = []
    for row in data.decisions_weekly.to_dict("records"):
        decided = int(row["accepted"]) + int(row["rejected"])
        due = int(row["due"])
        weeks.append(
            {
                "week": _week_label(row["week"]),
                "sqls": int(row["sqls"]),
                "accepted": int(row["accepted"]),
                "rejected": int(row["rejected"]),
                "pending": int(row["pending"]),
                "acceptance_rate": _num(int(row["accepted"]) / decided) if decided else None,
                "within_sla": int(row["within_sla"]),
                "due": due,
                "within_sla_share": _num(int(row["within_sla"]) / due) if due else None,
                "median_hours": _num(row["median_hours"]),
                "p90_hours": _num(row["p90_hours"]),
            }
        )
    totals: dict[str, Any] = {
        key: int(sum(int(w[key]) for w in weeks))
        for key in ("sqls", "accepted", "rejected", "pending", "within_sla", "due")
    }
    decided = totals["accepted"] + totals["rejected"]
    totals |= {
        "acceptance_rate": _num(totals["accepted"] / decided) if decided else None,
        "within_sla_share": _num(totals["within_sla"] / totals["due"]) if totals["due"] else None,
        "median_hours": data.decision_hours["median"],
        "p90_hours": data.decision_hours["p90"],
    }
    reasons = [
        {"decision": str(r["decision"]), "reason": str(r["reason"]), "leads": int(r["leads"])}
        for r in data.reasons.to_dict("records")
    ]
    return {"sla_hours": params.sql_sla_hours, "total": totals, "weeks": weeks, "reasons": reasons}


# --------------------------------------------------------------------------------------------
# The verdict


def _finding(
    level: str, check: str, message: str, value: Any = None, limit: Any = None
) -> dict[str, Any]:
    return {"level": level, "check": check, "message": message, "value": value, "limit": limit}


def _verdict(report: Mapping[str, Any], params: MonitorParams) -> dict[str, Any]:
    """ok / investigate / retrain with every reason; notes (level ok) say what was not judged."""
    findings: list[dict[str, Any]] = []
    drift = report["drift"]
    if not drift.get("available"):
        findings.append(_finding("ok", "drift", f"drift not judged: {drift.get('why')}"))
    elif drift["recent_scores"] < params.min_scores:
        findings.append(
            _finding(
                "ok",
                "drift",
                f"drift not judged: {drift['recent_scores']} scores in the last "
                f"{params.recent_weeks} week(s), fewer than monitor.min_scores "
                f"({params.min_scores})",
            )
        )
    else:
        value = drift["score"]["psi"]
        if value is not None:
            level = (
                "retrain"
                if value >= params.score_psi_retrain
                else "investigate"
                if value >= params.score_psi_investigate
                else "ok"
            )
            limit = (
                params.score_psi_retrain if level == "retrain" else params.score_psi_investigate
            )
            word = {"ok": "below", "investigate": "at or above", "retrain": "at or above"}[level]
            findings.append(
                _finding(
                    level,
                    "score_psi",
                    f"score PSI {value:.3f} over the last {params.recent_weeks} week(s), "
                    f"{word} {limit}",
                    value,
                    limit,
                )
            )
        for level, limit in (
            ("retrain", params.feature_psi_retrain),
            ("investigate", params.feature_psi_investigate),
        ):
            over = [
                f
                for f in drift["features"]
                if f["psi"] is not None
                and f["psi"] >= limit
                and (level == "retrain" or f["psi"] < params.feature_psi_retrain)
            ]
            if over:
                named = ", ".join(
                    f"{f['feature']} {f['psi']:.2f} ({f['largest_change']['bin']}: "
                    f"{pct(f['largest_change']['reference'])} -> "
                    f"{pct(f['largest_change']['current'])})"
                    for f in over[:5]
                )
                more = f" and {len(over) - 5} more" if len(over) > 5 else ""
                findings.append(
                    _finding(
                        level,
                        "feature_psi",
                        f"{len(over)} feature(s) with PSI at or above {limit}: {named}{more}",
                        [f["feature"] for f in over],
                        limit,
                    )
                )
        if not any(f["check"] == "feature_psi" for f in findings):
            worst = drift["features"][0] if drift["features"] else None
            if worst is not None and worst["psi"] is not None:
                findings.append(
                    _finding(
                        "ok",
                        "feature_psi",
                        f"every feature's PSI below {params.feature_psi_investigate} "
                        f"(highest: {worst['feature']} {worst['psi']:.3f})",
                        worst["psi"],
                        params.feature_psi_investigate,
                    )
                )

    perf = report["performance"]
    realized = perf["realized"]
    n = realized["all"]["leads"]
    if n < params.min_matured:
        findings.append(
            _finding(
                "ok",
                "calibration",
                f"realized performance not judged: {n} matured lead(s), fewer than "
                f"monitor.min_matured ({params.min_matured})",
            )
        )
    else:
        groups = [("all", realized["all"])] + [(s, realized[s]) for s in STAGES]
        for group, figures in groups:
            if figures["leads"] < params.min_matured or figures["rate"] is None:
                continue
            gap, predicted = figures["gap"], figures["mean_probability"]
            outside = not (figures["rate_low"] <= predicted <= figures["rate_high"])
            if abs(gap) >= params.calibration_gap and outside:
                where = "all matured leads" if group == "all" else f"{group} leads"
                findings.append(
                    _finding(
                        "retrain",
                        "calibration",
                        f"{where}: realized conversion {pct(figures['rate'])} "
                        f"(95% {pct(figures['rate_low'])}-{pct(figures['rate_high'])}) "
                        f"against {pct(predicted)} predicted, over {figures['leads']} leads of "
                        f"{len(realized['weeks'])} matured week(s); gap {gap:+.3f}, limit "
                        f"{params.calibration_gap}",
                        gap,
                        params.calibration_gap,
                    )
                )
        if not any(f["check"] == "calibration" for f in findings):
            a = realized["all"]
            findings.append(
                _finding(
                    "ok",
                    "calibration",
                    f"realized conversion {pct(a['rate'])} against {pct(a['mean_probability'])}"
                    f" predicted on {a['leads']} matured leads",
                    a["gap"],
                    params.calibration_gap,
                )
            )
        test_auc = perf["test"].get("roc_auc")
        auc, high = realized["all"]["roc_auc"], realized["all"]["roc_auc_high"]
        if auc is not None and test_auc is not None:
            drop = test_auc - auc
            if drop >= params.auc_drop and high is not None and high < test_auc:
                findings.append(
                    _finding(
                        "retrain",
                        "auc_drop",
                        f"realized ROC-AUC {auc:.3f} (95% up to {high:.3f}) against "
                        f"{test_auc:.3f} on test: down {drop:.3f}, limit {params.auc_drop}",
                        drop,
                        params.auc_drop,
                    )
                )
            else:
                findings.append(
                    _finding(
                        "ok",
                        "auc_drop",
                        f"realized ROC-AUC {auc:.3f} against {test_auc:.3f} on test",
                        drop,
                        params.auc_drop,
                    )
                )

    estimated = perf["estimated"]["all"]
    expected_auc = perf["reference_expected"].get("roc_auc")
    if (
        estimated["leads"] >= params.min_scores
        and estimated["roc_auc"] is not None
        and expected_auc is not None
    ):
        drop = expected_auc - estimated["roc_auc"]
        if drop >= params.auc_drop:
            findings.append(
                _finding(
                    "investigate",
                    "estimated_auc_drop",
                    f"estimated ROC-AUC (CBPE) {estimated['roc_auc']:.3f} on "
                    f"{estimated['leads']} open leads against {expected_auc:.3f} on the "
                    f"reference: down {drop:.3f}, limit {params.auc_drop}",
                    drop,
                    params.auc_drop,
                )
            )
    level = max((f["level"] for f in findings), key=LEVELS.index, default="ok")
    return {
        "level": level,
        "reasons": [f for f in findings if f["level"] != "ok"],
        "notes": [f for f in findings if f["level"] == "ok"],
    }


def verdict_at_least(level: str, threshold: str) -> bool:
    """Whether a verdict is at least as severe as ``threshold`` (ok < investigate < retrain)."""
    return LEVELS.index(level) >= LEVELS.index(threshold)


# --------------------------------------------------------------------------------------------
# The report


def build_report(
    store: str | Path,
    model: MonitoredModel,
    params: MonitorParams,
    *,
    now: datetime | None = None,
    since: datetime | None = None,
) -> dict[str, Any]:
    """Every figure and the verdict, as one JSON-ready dict (reports/monitoring.json).

    ``now`` is when outcomes are known up to: by default the latest outcome's time, so a
    replayed period or a late CRM sync never counts a cohort as matured too early.
    """
    header = {
        "generated_at": datetime.now(UTC).isoformat(timespec="seconds"),
        "model": {
            "name": model.name,
            "version": model.version,
            "source": model.source,
            "target_stage": model.target_stage,
            "horizon_days": model.horizon_days,
            "reference": model.reference is not None,
            "test": {k: _num(v) for k, v in model.test_metrics.items()},
        },
    }
    con = _connect(params.duckdb_memory_limit)
    try:
        collected = _collect(con, store, model, params, since=since, now=now)
    finally:
        con.close()
    if not isinstance(collected, _Collected):
        return _empty_report(header, store, model, collected, params)
    notes = []
    clock = now or (collected.last_outcome if collected.outcome_unique else None)
    if not collected.outcome_unique:
        notes.append(
            "no outcomes received yet: every cohort is open, so conversion and AUC are "
            "estimates (POST /v1/outcomes or `predictive-scoring outcomes import`)"
        )
    conversion, performance = _conversion(
        collected, model, params, clock if collected.outcome_unique else None
    )
    first, last = collected.first_as_of, collected.last_as_of
    report: dict[str, Any] = {
        **header,
        "status": "monitored",
        "window": {
            "store": str(store),
            "first_as_of": first.isoformat() if first else None,
            "last_as_of": last.isoformat() if last else None,
            "since": since.isoformat() if since else None,
            "now": clock.isoformat() if clock else None,
            "now_from": "--now" if now else ("the latest outcome" if clock else None),
            "scores": int(collected.weekly["n"].sum()),
            "weeks": int(collected.weekly["week"].nunique()),
            "other_versions": {v: n for v, n in collected.versions.items() if v != model.version},
            "outcomes": {
                "rows": collected.outcome_rows,
                "unique": collected.outcome_unique,
                "duplicates_ignored": collected.outcome_rows - collected.outcome_unique,
            },
        },
        "volumes": _volumes(collected, model, params),
        "conversion": conversion,
        "performance": performance,
        "drift": _drift(collected, model, params),
        "sales": _sales(collected, params),
        "notes": notes,
    }
    report["verdict"] = _verdict(report, params)
    return report


def _empty_report(
    header: dict[str, Any],
    store: str | Path,
    model: MonitoredModel,
    versions: Mapping[str, int],
    params: MonitorParams,
) -> dict[str, Any]:
    if versions:
        others = ", ".join(f"version {v}: {n}" for v, n in list(versions.items())[:5])
        why = (
            f"nothing to monitor yet: the score log at {store} holds no scores of "
            f"{model.name} version {model.version} (it holds {others})"
        )
    else:
        why = f"nothing to monitor yet: the score log at {store} holds no scores"
    empty_drift = {"available": False, "why": why}
    return {
        **header,
        "status": "no scores",
        "window": {"store": str(store), "scores": 0, "weeks": 0, "other_versions": dict(versions)},
        "volumes": {"promised": _promised(model), "weeks": [], "recent": {}},
        "conversion": {"weeks": [], "target_stage": model.target_stage},
        "performance": {},
        "drift": empty_drift,
        "sales": {"sla_hours": params.sql_sla_hours, "weeks": [], "reasons": [], "total": {}},
        "notes": [why],
        "verdict": {
            "level": "ok",
            "reasons": [],
            "notes": [_finding("ok", "data", why)],
        },
    }


# --------------------------------------------------------------------------------------------
# Writing it down


def _summary_metrics(report: Mapping[str, Any]) -> dict[str, float]:
    """The headline figures, for MLflow."""
    out: dict[str, float] = {
        "scores": float(report["window"].get("scores", 0)),
        "verdict_level": float(LEVELS.index(report["verdict"]["level"])),
    }
    drift = report["drift"]
    if drift.get("available"):
        out["score_psi"] = drift["score"]["psi"]
        for f in drift["features"]:
            out[f"psi.{f['feature']}"] = f["psi"]
        if drift["features"]:
            out["max_feature_psi"] = drift["features"][0]["psi"]
    perf = report.get("performance") or {}
    for kind in ("realized", "estimated"):
        figures = (perf.get(kind) or {}).get("all") or {}
        for key in ("leads", "mean_probability", "rate", "gap", "expected", "roc_auc", "pr_auc"):
            if figures.get(key) is not None:
                out[f"{kind}.{key}"] = figures[key]
    total = (report.get("sales") or {}).get("total") or {}
    for key in ("acceptance_rate", "within_sla_share", "median_hours"):
        if total.get(key) is not None:
            out[f"sales.{key}"] = total[key]
    recent = (report.get("volumes") or {}).get("recent") or {}
    for stage in STAGES:
        ratio = (recent.get(stage) or {}).get("ratio")
        if ratio is not None:
            out[f"volume_ratio.{stage}"] = ratio
    return {k: float(v) for k, v in out.items() if v is not None and math.isfinite(float(v))}


def log_to_mlflow(
    report: Mapping[str, Any], *, files: Sequence[Path], root: str | Path = "."
) -> str:
    """One run in the ``lead-scoring-monitoring`` experiment, tagged with the model version:
    the headline figures as metrics, score PSI per week as a series, the report files as
    artifacts. The registered version, when the store has it, gets the verdict as tags."""
    import mlflow
    from mlflow import MlflowClient

    from predictive_scoring.registry import default_tracking_uri, ensure_experiment

    model = report["model"]
    experiment_id = ensure_experiment(EXPERIMENT, root=root)
    verdict = report["verdict"]["level"]
    tags = {
        "model_name": model["name"],
        "model_version": model["version"],
        "verdict": verdict,
        "mlflow.note.content": "\n".join(r["message"] for r in report["verdict"]["reasons"])
        or "ok",
    }
    with mlflow.start_run(
        experiment_id=experiment_id,
        run_name=f"{model['name']} v{model['version']} {report['generated_at'][:10]}",
        tags=tags,
    ) as run:
        mlflow.log_metrics(_summary_metrics(report))
        drift = report["drift"]
        if drift.get("available"):
            for step, week in enumerate(drift["score_by_week"]):
                if week["psi"] is not None:
                    stamp = int(pd.Timestamp(week["week"], tz="UTC").timestamp() * 1000)
                    mlflow.log_metric("weekly.score_psi", week["psi"], step=step, timestamp=stamp)
        for path in files:
            mlflow.log_artifact(str(path), "monitoring")
        run_id = str(run.info.run_id)
    client = MlflowClient(tracking_uri=default_tracking_uri(root))
    try:
        client.get_model_version(model["name"], model["version"])
    except Exception:  # an unregistered bundle: the run's tags are the record
        logger.info(
            "%s version %s is not in the registry; the run carries the verdict",
            model["name"],
            model["version"],
        )
    else:
        client.set_model_version_tag(model["name"], model["version"], "monitor.verdict", verdict)
        client.set_model_version_tag(model["name"], model["version"], "monitor.run_id", run_id)
        client.set_model_version_tag(
            model["name"], model["version"], "monitor.at", report["generated_at"]
        )
    return run_id


def run_monitor(
    store: str | Path,
    model: MonitoredModel,
    params: MonitorParams,
    *,
    html_path: Path,
    json_path: Path,
    now: datetime | None = None,
    since: datetime | None = None,
    mlflow: bool = True,
    root: str | Path = ".",
) -> dict[str, Any]:
    """Build the report, write the HTML and the JSON (atomically), log them to MLflow."""
    report = build_report(store, model, params, now=now, since=since)
    write_json(json_path, report)
    with atomic_path(html_path) as tmp:
        tmp.write_text(render_html(report, params), encoding="utf-8")
    if mlflow:
        try:
            report["mlflow_run_id"] = log_to_mlflow(
                report, files=[html_path, json_path], root=root
            )
        except Exception as exc:  # the files on disk are the product; tracking is a copy
            logger.warning("monitoring not logged to MLflow: %s", exc)
    return report
