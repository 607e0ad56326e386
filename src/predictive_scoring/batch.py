"""The batch executor: point-in-time snapshots and the feature definition as one Ibis expression.

The expression runs on DuckDB by default (embedded, out of core) and on PySpark for data that does
not fit one machine. It works in whole epoch seconds (int64) so no backend does timestamp or
decimal arithmetic of its own; every division is on float64 (Spark would otherwise pick DECIMAL).
Engagement is aggregated in two steps, per (snapshot, event type) and then pivoted into columns,
which DuckDB runs twice as fast as one pass of many filtered aggregates.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any

import ibis
import ibis.expr.types as ir

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
    FeatureDefinition,
)

__all__ = [
    "build_snapshots",
    "connect_duckdb",
    "epoch_seconds",
    "featurize_expr",
    "lead_attribute_expr",
]

TERMINAL_STAGES = ("won", "lost")


def connect_duckdb(*, memory_limit: str | None = None, threads: int | None = None) -> Any:
    """An embedded DuckDB connection pinned to UTC, so timestamp casts never shift."""
    con = ibis.duckdb.connect()
    con.raw_sql("SET TimeZone = 'UTC'")
    if memory_limit:
        con.raw_sql(f"SET memory_limit = '{memory_limit}'")
    if threads:
        con.raw_sql(f"SET threads = {int(threads)}")
    return con


def epoch_seconds(column: ir.TimestampValue) -> ir.IntegerValue:
    """Whole UTC epoch seconds as int64, truncating any fraction (the executors' shared clock)."""
    return column.truncate("s").epoch_seconds().cast("int64")


def _first_match(text: ir.StringValue, rules: tuple[tuple[str, str], ...], default: str) -> Any:
    lowered = text.strip().lower()
    branches = [(lowered.re_search(pattern), label) for label, pattern in rules]
    return ibis.ifelse(
        text.isnull() | (text.strip().length() == 0),
        ibis.null("string"),
        ibis.cases(*branches, else_=default),
    )


def category_expr(text: ir.StringValue, aliases: Mapping[str, str]) -> ir.StringValue:
    """:meth:`FeatureDefinition.category_key` in SQL: trimmed, lower-cased, aliases applied."""
    key = text.strip().lower()
    named = key.substitute(dict(aliases)) if aliases else key
    return ibis.ifelse(key.length() == 0, ibis.null("string"), named)


def lead_attribute_expr(leads: ir.Table, definition: FeatureDefinition) -> ir.Table:
    """lead_id plus the attribute and derived attribute features of each lead."""
    cols: dict[str, Any] = {"lead_id": leads.lead_id}
    for name, kind in definition.attributes:
        if name not in leads.columns:
            cols[name] = ibis.null("float64" if kind == "numeric" else "string")
        elif kind == "numeric":
            cols[name] = leads[name].cast("float64")
        else:
            cols[name] = category_expr(leads[name].cast("string"), definition.alias_map(name))
    title_col = definition.job_title_column
    if title_col:
        title = leads[title_col].cast("string") if title_col in leads.columns else None
        null = ibis.null("string")
        cols[SENIORITY_FEATURE] = (
            _first_match(title, SENIORITY_RULES, "individual") if title is not None else null
        )
        cols[FUNCTION_FEATURE] = (
            _first_match(title, FUNCTION_RULES, "other") if title is not None else null
        )
    email_col = definition.email_column
    if email_col:
        if email_col in leads.columns:
            email = leads[email_col].cast("string")
            domain = email.strip().lower().re_extract(r"@([^@]*)$", 1)
            cols[EMAIL_FEATURE] = ibis.ifelse(
                email.contains("@"),
                domain.isin(list(FREE_EMAIL_DOMAINS)).cast("float64"),
                ibis.null("float64"),
            )
        else:
            cols[EMAIL_FEATURE] = ibis.null("float64")
    emp_col = definition.employees_column
    if emp_col:
        if emp_col in leads.columns:
            employees = leads[emp_col].cast("float64")
            branches = [(employees < bound, label) for bound, label in EMPLOYEE_BANDS[:-1]]
            cols[BAND_FEATURE] = ibis.ifelse(
                employees.isnull() | employees.isnan(),
                ibis.null("string"),
                ibis.cases(*branches, else_=EMPLOYEE_BANDS[-1][1]),
            )
        else:
            cols[BAND_FEATURE] = ibis.null("string")
    return leads.select(**cols)


def build_snapshots(
    leads: ir.Table,
    outcomes: ir.Table,
    *,
    offsets_days: list[int],
    target_stage: str,
    horizon_days: int,
    data_end_s: int,
) -> ir.Table:
    """(lead_id, as_of_s, offset_days, label) for each lead still open at each offset.

    ``leads`` needs lead_id and created_s; ``outcomes`` lead_id, stage and ts_s (epoch seconds).
    A snapshot is kept while the lead has neither closed (won/lost) nor reached the target at or
    before ``as_of``, and only if its whole horizon lies inside the data (censoring).
    """
    horizon_s = int(horizon_days) * SECONDS_PER_DAY
    offsets = ibis.memtable({"offset_days": [int(k) for k in sorted(set(offsets_days))]})
    per_lead = outcomes.group_by("lead_id").aggregate(
        closed_s=outcomes.ts_s.min(where=outcomes.stage.isin(list(TERMINAL_STAGES))),
        target_s=outcomes.ts_s.min(where=outcomes.stage == target_stage),
    )
    snaps = leads.select("lead_id", "created_s").cross_join(offsets)
    snaps = snaps.mutate(
        as_of_s=snaps.created_s + snaps.offset_days.cast("int64") * SECONDS_PER_DAY
    )
    snaps = snaps.left_join(per_lead, "lead_id").drop("lead_id_right")
    still_open = (snaps.closed_s.isnull() | (snaps.closed_s > snaps.as_of_s)) & (
        snaps.target_s.isnull() | (snaps.target_s > snaps.as_of_s)
    )
    observed = (snaps.as_of_s + horizon_s) <= data_end_s
    snaps = snaps.filter(still_open & observed)
    label = (snaps.target_s.notnull() & (snaps.target_s <= snaps.as_of_s + horizon_s)).cast("int8")
    return snaps.select(
        "lead_id", "created_s", "as_of_s", offset_days=snaps.offset_days.cast("int32"), label=label
    )


def _engagement_expr(
    snapshots: ir.Table, events: ir.Table, definition: FeatureDefinition
) -> ir.Table:
    d = definition
    types = list(d.event_types)
    ev = events.filter(events.event_type.isin(types))
    keys = snapshots.select("lead_id", "as_of_s").distinct()
    j = keys.join(ev, "lead_id").filter(ev.ts_s < keys.as_of_s)
    j = j.mutate(age_s=j.as_of_s - j.ts_s)
    j = j.mutate(age_d=j.age_s.cast("float64") / float(SECONDS_PER_DAY))
    per_type_aggs: dict[str, Any] = {
        f"c{w}": (j.age_s <= w * SECONDS_PER_DAY).cast("int64").sum() for w in d.windows_days
    }
    per_type_aggs["n"] = j.count()
    per_type_aggs["rec"] = j.age_d.min()
    per_type_aggs["dec"] = (j.age_d * (-d.decay_rate)).exp().sum()
    per_type = j.group_by(["lead_id", "as_of_s", "event_type"]).aggregate(**per_type_aggs)

    pivot: dict[str, Any] = {"n_events_total": per_type.n.sum()}
    for t in types:
        is_t = per_type.event_type == t
        for w in d.windows_days:
            pivot[d.count_name(t, w)] = per_type[f"c{w}"].max(where=is_t)
        pivot[d.recency_name(t)] = per_type.rec.max(where=is_t)
        pivot[d.decay_name(t)] = per_type.dec.max(where=is_t)
    wide = per_type.group_by(["lead_id", "as_of_s"]).aggregate(**pivot)

    recent = j.filter(j.age_s <= d.active_days_window * SECONDS_PER_DAY)
    active = recent.group_by(["lead_id", "as_of_s"]).aggregate(
        **{d.active_days_name: (recent.ts_s // SECONDS_PER_DAY).nunique()}
    )
    return wide.left_join(active, ["lead_id", "as_of_s"]).drop("lead_id_right", "as_of_s_right")


def featurize_expr(
    snapshots: ir.Table,
    leads: ir.Table,
    events: ir.Table | None,
    definition: FeatureDefinition,
) -> ir.Table:
    """Snapshot columns followed by every feature of the definition, in definition order.

    ``snapshots`` needs lead_id, as_of_s and created_s (plus any columns to carry through, such as
    label or split); ``events`` needs lead_id, ts_s and event_type.
    """
    d = definition
    carry = list(snapshots.columns)
    out = snapshots.left_join(lead_attribute_expr(leads, d), "lead_id").drop("lead_id_right")
    fills: dict[str, Any] = {}
    if d.has_events and events is not None and d.event_types:
        eng = _engagement_expr(snapshots, events, d)
        out = out.left_join(eng, ["lead_id", "as_of_s"]).drop("lead_id_right", "as_of_s_right")
        zero_filled = ["n_events_total", d.active_days_name]
        zero_filled += [d.count_name(t, w) for t in d.event_types for w in d.windows_days]
        zero_filled += [d.decay_name(t) for t in d.event_types]
        fills = {name: out[name].cast("float64").fill_null(0.0) for name in zero_filled}
    elif d.has_events:
        for name in d.engagement_names():
            fills[name] = ibis.literal(
                math.nan if name.startswith("days_since_") else 0.0, type="float64"
            )
    if d.has_created_at and d.has_events:
        fills["lead_age_days"] = (out.as_of_s - out.created_s).cast("float64") / float(
            SECONDS_PER_DAY
        )
    for name in d.engagement_names():
        if name.startswith("days_since_") and name in out.columns:
            fills[name] = out[name].cast("float64")
    out = out.mutate(**fills)
    return out.select(*carry, *d.feature_names).order_by(["lead_id", "as_of_s"])
