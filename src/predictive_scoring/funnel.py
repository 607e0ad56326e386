"""The funnel report: stage volumes, conversion, timing, lift and what engagement precedes a win.

The computations are pure functions on the canonical frames of ``schema.load_raw`` (and the
staging predictions) returning DataFrames; :func:`write_funnel_report` renders them into ONE
self-contained HTML file (tables plus PNG plots embedded as base64, no external JS or CSS).
Flat exports have no outcomes or events: the report then shows the label rate by attribute and
says which sections are not available.
"""

from __future__ import annotations

import base64
import html
import io
import itertools
import logging
import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from matplotlib.figure import Figure

from predictive_scoring.config import Params, load_params
from predictive_scoring.errors import PredictiveScoringError
from predictive_scoring.explain import feature_group
from predictive_scoring.features import (
    FeatureDefinition,
    normal_text,
    normalise_aliases,
    title_function,
    title_seniority,
)
from predictive_scoring.io import atomic_path, read_json
from predictive_scoring.leakage import FUNNEL_ORDER, ever_reached
from predictive_scoring.schema import LABEL, RawData, load_raw
from predictive_scoring.thresholds import Thresholds, assign_grade, assign_stage

__all__ = [
    "LEAD_SOURCE_COLUMNS",
    "FunnelReport",
    "FunnelSummary",
    "build_funnel_report",
    "conversion_by_attribute",
    "conversion_by_event_type",
    "conversion_by_prediction",
    "engagement_before_conversion",
    "importance_by_group",
    "monthly_stage_volumes",
    "normalised_categories",
    "readable_bins",
    "readable_number",
    "render_html",
    "stage_conversion",
    "stage_durations",
    "stage_times",
    "summarise_funnel",
    "title_groups",
    "write_funnel_report",
]

logger = logging.getLogger(__name__)

LEAD_SOURCE_COLUMNS: tuple[str, ...] = (
    "lead_source",
    "source",
    "origin",
    "channel",
    "utm_source",
    "traffic_type",
)
_SECONDS_PER_DAY = 86_400.0
_MAX_ATTRIBUTE_TABLES = 10
_MAX_LEVELS = 15  # rows per attribute table; the rest are folded into "(other)"
_MISSING, _OTHER = "(missing)", "(other)"
_STAGE_LABELS = {"lead": "leads", "mql": "MQL", "sql": "SQL", "opportunity": "opportunity"}


# --------------------------------------------------------------------------------------------
# Pure computations


def stage_times(leads: pd.DataFrame, outcomes: pd.DataFrame) -> pd.DataFrame:
    """When each lead reached each funnel stage present in ``outcomes`` (NaT: never).

    Columns: ``lead_id``, ``lead`` (created_at), then one column per present stage in funnel
    order. Reaching a stage counts as reaching every earlier present stage at that time at the
    latest, so counts fall monotonically down the funnel. Stages absent from the data (Olist has
    no SQL or opportunity) are left out rather than reported as empty.
    """
    present = [s for s in FUNNEL_ORDER if s in set(outcomes["stage"].astype(str))]
    first = (
        outcomes[outcomes["stage"].isin(present)]
        .groupby(["lead_id", "stage"], sort=False)["ts"]
        .min()
        .unstack("stage")
    )
    out = pd.DataFrame({"lead_id": leads["lead_id"].to_numpy()})
    out["lead"] = leads["created_at"].to_numpy() if "created_at" in leads else pd.NaT
    later: pd.Series | None = None
    for stage in reversed(present):
        own = out["lead_id"].map(first[stage]) if stage in first else pd.Series(pd.NaT)
        own = pd.to_datetime(own, utc=True)
        if later is not None:
            use_later = later.notna() & (own.isna() | (later < own))
            own = own.where(~use_later, later)
        reached = own
        out[stage] = reached
        later = reached
    return out[["lead_id", "lead", *present]]


def _stages(times: pd.DataFrame) -> list[str]:
    return [c for c in times.columns if c != "lead_id"]


def monthly_stage_volumes(times: pd.DataFrame) -> pd.DataFrame:
    """Leads entering each stage per calendar month (UTC); index month 'YYYY-MM'."""
    counts: dict[str, pd.Series] = {}
    for stage in _stages(times):
        when = pd.to_datetime(times[stage], utc=True).dropna()
        month = when.dt.tz_convert(None).dt.to_period("M").astype(str)
        counts[stage] = month.value_counts()
    frame = pd.DataFrame(counts).fillna(0).astype("int64").sort_index()
    frame.index.name = "month"
    return frame


def stage_conversion(times: pd.DataFrame) -> pd.DataFrame:
    """Conversion between consecutive stages and from lead to the last stage.

    ``rate`` is the share of leads that reached ``from`` which also reached ``to`` (by the end
    of the data: recent leads had less time, so the last months understate it).
    """
    stages = _stages(times)
    pairs = list(itertools.pairwise(stages))
    if len(stages) > 2:
        pairs.append((stages[0], stages[-1]))
    rows = []
    for a, b in pairs:
        n_from = int(times[a].notna().sum())
        n_to = int((times[a].notna() & times[b].notna()).sum())
        rows.append(
            {
                "from": a,
                "to": b,
                "n_from": n_from,
                "n_to": n_to,
                "rate": n_to / n_from if n_from else np.nan,
            }
        )
    return pd.DataFrame(rows, columns=["from", "to", "n_from", "n_to", "rate"])


def stage_durations(times: pd.DataFrame) -> pd.DataFrame:
    """Days between consecutive stages (and lead to last stage): n, median, quartiles."""
    stages = _stages(times)
    pairs = list(itertools.pairwise(stages))
    if len(stages) > 2:
        pairs.append((stages[0], stages[-1]))
    rows = []
    for a, b in pairs:
        start = pd.to_datetime(times[a], utc=True)
        end = pd.to_datetime(times[b], utc=True)
        days = ((end - start).dt.total_seconds() / _SECONDS_PER_DAY).dropna()
        rows.append(
            {
                "from": a,
                "to": b,
                "n": len(days),
                "median_days": float(days.median()) if len(days) else np.nan,
                "p25_days": float(days.quantile(0.25)) if len(days) else np.nan,
                "p75_days": float(days.quantile(0.75)) if len(days) else np.nan,
            }
        )
    return pd.DataFrame(rows, columns=["from", "to", "n", "median_days", "p25_days", "p75_days"])


def readable_number(value: float, *, digits: int = 3) -> str:
    """A number as a reader takes it in: ``digits`` significant digits, thousands separators,
    millions and billions as M and B (36,900; 3.79M; 102B)."""
    if not math.isfinite(value):
        return str(value)
    rounded = float(f"{value:.{digits}g}")
    for size, suffix in ((1e12, "T"), (1e9, "B"), (1e6, "M")):
        if abs(rounded) >= size:
            return f"{rounded / size:.{digits}g}{suffix}"
    if rounded.is_integer():
        return f"{int(rounded):,}"
    return f"{rounded:,.{digits}g}" if abs(rounded) < 1 else f"{rounded:,}"


def _round_sig(value: float, *, digits: int = 3, direction: int = 0) -> float:
    """``value`` to ``digits`` significant digits: the nearest (0), rounded down (-1) or up (1)."""
    if value == 0 or not math.isfinite(value):
        return value
    scale = 10.0 ** (math.floor(math.log10(abs(value))) - digits + 1)
    ratio = value / scale
    step = (
        math.floor(ratio) if direction < 0 else math.ceil(ratio) if direction > 0 else round(ratio)
    )
    return float(f"{step * scale:.{digits + 1}g}")


def readable_bins(values: pd.Series, *, q: int = 5) -> tuple[pd.Series, list[str]]:
    """Cut a numeric column into about ``q`` equal-count bins whose edges are round numbers.

    Edges are the quantiles rounded to three significant digits (the lowest down, the highest
    up), so a label reads "28-93" or "3.79M-13.4M" instead of "(27.0, 93.0]". Whole-number
    columns get disjoint ranges; other columns' ranges include their upper end. Returns each
    row's label (NaN where the value is missing) and the labels in ascending order.
    """
    present = pd.to_numeric(values, errors="coerce").dropna().astype("float64")
    if present.empty:
        return pd.Series(np.nan, index=values.index, dtype="object"), []
    whole = bool(np.all(np.isclose(present, np.round(present))))
    quantiles = present.quantile(np.linspace(0, 1, q + 1)).to_numpy()
    lo = _round_sig(float(quantiles[0]), direction=-1)
    hi = _round_sig(float(quantiles[-1]), direction=1)
    inner = [_round_sig(float(v)) for v in quantiles[1:-1]]
    if whole:
        lo, hi, inner = math.floor(lo), math.ceil(hi), [round(v) for v in inner]
    edges = sorted({lo, hi, *(v for v in inner if lo < v < hi)})
    if len(edges) == 1:
        return values.where(values.isna(), readable_number(lo)).astype("object"), [
            readable_number(lo)
        ]
    labels = []
    for i, (a, b) in enumerate(itertools.pairwise(edges)):
        start = a if (i == 0 or not whole) else a + 1
        labels.append(
            readable_number(b)
            if start == b
            else f"{readable_number(start)}\u2013{readable_number(b)}"
        )
    codes = pd.cut(present, bins=edges, labels=False, include_lowest=True, right=True)
    named = pd.Series(
        np.asarray(labels, dtype=object)[codes.to_numpy(dtype="int64")], index=present.index
    )
    return named.reindex(values.index).astype("object"), labels


def _rate_table(
    groups: pd.Series, label: pd.Series, *, name: str, order: list[str] | None = None
) -> pd.DataFrame:
    """n, conversions, rate and lift per group; largest first unless ``order`` is given, with
    "(other)" and "(missing)" last."""
    overall = float(label.mean()) if len(label) else np.nan
    frame = pd.DataFrame({name: groups.to_numpy(), "y": label.to_numpy(dtype="float64")})
    table = frame.groupby(name, dropna=False, sort=False)["y"].agg(["size", "sum"])
    table.columns = pd.Index(["n", "conversions"])
    table["conversions"] = table["conversions"].astype("int64")
    table["rate"] = table["conversions"] / table["n"]
    table["lift"] = table["rate"] / overall if overall else np.nan
    if order is None:
        table = table.sort_values(["n", "rate"], ascending=False)
        order = [str(v) for v in table.index]
    tail = [v for v in (_OTHER, _MISSING) if v in table.index]
    keep = [v for v in order if v in table.index and v not in tail]
    return table.loc[keep + tail]


def conversion_by_attribute(
    leads: pd.DataFrame, label: pd.Series, column: str, *, max_levels: int = _MAX_LEVELS
) -> pd.DataFrame:
    """n, conversions, rate and lift (rate / overall rate) per level of one attribute.

    Numeric columns with many values are cut into five bins with round edges, in ascending
    order; missing is its own level; levels beyond the ``max_levels`` largest are folded into
    "(other)".
    """
    values = leads[column]
    order: list[str] | None = None
    if pd.api.types.is_numeric_dtype(values.dtype) and values.nunique() > max_levels:
        groups, order = readable_bins(values)
    elif pd.api.types.is_numeric_dtype(values.dtype):
        order = [readable_number(float(v)) for v in sorted(values.dropna().unique())]
        groups = values.map(lambda v: readable_number(float(v)), na_action="ignore")
    else:
        groups = values.astype("object").astype("str")
    groups = groups.where(values.notna(), _MISSING).astype("str")
    top = groups.value_counts().index[:max_levels]
    groups = groups.where(groups.isin(top), _OTHER)
    return _rate_table(groups, label, name=column, order=order)


def title_groups(titles: pd.Series) -> pd.DataFrame:
    """Job titles as the model reads them: the seniority and the function that the feature
    definition derives (:func:`features.title_seniority`, :func:`features.title_function`)."""
    unique = titles.dropna().unique()
    seniority = {t: title_seniority(t) for t in unique}
    function = {t: title_function(t) for t in unique}
    return pd.DataFrame(
        {
            "seniority": titles.map(seniority).fillna(_MISSING).astype("str"),
            "function": titles.map(function).fillna(_MISSING).astype("str"),
        },
        index=titles.index,
    )


def conversion_by_event_type(
    events: pd.DataFrame, leads: pd.DataFrame, label: pd.Series, *, column: str = "event_type"
) -> pd.DataFrame:
    """Per event (or content) type: leads with at least one such event, their rate and lift."""
    overall = float(label.mean()) if len(label) else np.nan
    y = pd.Series(label.to_numpy(dtype="float64"), index=leads["lead_id"].to_numpy())
    pairs = events[["lead_id", column]].dropna().drop_duplicates()
    pairs = pairs[pairs["lead_id"].isin(y.index)]
    pairs = pairs.assign(y=pairs["lead_id"].map(y).to_numpy(dtype="float64"))
    table = pairs.groupby(column, sort=False)["y"].agg(["size", "sum"])
    table.columns = pd.Index(["leads", "conversions"])
    table["conversions"] = table["conversions"].astype("int64")
    table["rate"] = table["conversions"] / table["leads"]
    table["lift"] = table["rate"] / overall if overall else np.nan
    return table.sort_values("lift", ascending=False)


def engagement_before_conversion(
    events: pd.DataFrame, times: pd.DataFrame, *, target: str
) -> pd.DataFrame:
    """Mean events per lead by type: converters (before they converted) vs the others.

    ``ratio`` = converters' mean / others' mean; the types with the highest ratio are the
    engagement that most precedes conversion. Only events before the conversion count, so
    the after-sale activity of won accounts does not inflate it.
    """
    if target not in times.columns:
        raise PredictiveScoringError(
            f"funnel: target stage '{target}' is not in the outcomes; set featurize.target_stage "
            f"to one of {_stages(times)[1:]}"
        )
    converted_at = times.set_index("lead_id")[target]
    ev = events[["lead_id", "event_type", "ts"]].copy()
    ev = ev[ev["lead_id"].isin(converted_at.index)]
    when = ev["lead_id"].map(converted_at)
    is_conv = when.notna().to_numpy()
    keep = ~is_conv | (ev["ts"] < when).to_numpy()
    ev = ev[keep].assign(group=np.where(is_conv[keep], "converters", "others"))
    n_leads = {
        "converters": max(int(converted_at.notna().sum()), 1),
        "others": max(int(converted_at.isna().sum()), 1),
    }
    counts = ev.groupby(["event_type", "group"], sort=False).size().unstack("group", fill_value=0)
    for group in ("converters", "others"):
        if group not in counts:
            counts[group] = 0
    out = pd.DataFrame(
        {
            "per_converter": counts["converters"] / n_leads["converters"],
            "per_other": counts["others"] / n_leads["others"],
        }
    )
    conv, other = out["per_converter"].to_numpy(), out["per_other"].to_numpy()
    with np.errstate(divide="ignore", invalid="ignore"):
        out["ratio"] = np.where(
            other > 0, conv / np.where(other > 0, other, 1.0), np.where(conv > 0, np.inf, np.nan)
        )
    out.index.name = "event_type"
    return out.sort_values("ratio", ascending=False, na_position="last")


def conversion_by_prediction(predictions: pd.DataFrame, thresholds: Thresholds) -> pd.DataFrame:
    """Observed conversion of scored snapshots by predicted stage and by grade.

    ``predictions`` needs ``p`` and ``label`` (the staging predictions of one split).
    """
    p = predictions["p"].to_numpy(dtype="float64")
    y = predictions["label"].astype("float64")
    rows = []
    for by, values, order in (
        ("stage", assign_stage(p, thresholds), ("SQL", "MQL", "nurture")),
        ("grade", assign_grade(p, thresholds), ("A", "B", "C", "D")),
    ):
        for level in order:
            mask = values == level
            n = int(mask.sum())
            rows.append(
                {
                    "by": by,
                    "level": level,
                    "n": n,
                    "conversions": int(y[mask].sum()),
                    "rate": float(y[mask].mean()) if n else np.nan,
                    "mean_probability": float(p[mask].mean()) if n else np.nan,
                }
            )
    return pd.DataFrame(rows)


def importance_by_group(importance: pd.DataFrame, definition: FeatureDefinition) -> pd.DataFrame:
    """The model's gain importance summed per event type or attribute, as shares of the total."""
    groups = [feature_group(str(name), definition) for name in importance["feature"]]
    frame = pd.DataFrame({"group": groups, "gain": importance["gain"].astype("float64")})
    table = frame.groupby("group")["gain"].sum().sort_values(ascending=False).to_frame()
    total = float(table["gain"].sum())
    table["share"] = table["gain"] / total if total else np.nan
    return table


@dataclass
class FunnelSummary:
    """The ten-second view for a head of sales: how many leads reach each stage, how long each
    step takes, and how the model's grades converted."""

    target: str
    horizon_days: int
    stages: list[tuple[str, int]] = field(default_factory=list)  # (stage, leads reaching it)
    median_days: list[tuple[str, str, float]] = field(default_factory=list)
    n_leads: int = 0
    conversions: int = 0
    grades: pd.DataFrame | None = None  # level, n, conversions, rate (test split)


def summarise_funnel(
    *,
    label: pd.Series,
    target: str,
    horizon_days: int,
    times: pd.DataFrame | None = None,
    predictions: pd.DataFrame | None = None,
    thresholds: Thresholds | None = None,
) -> FunnelSummary:
    """The summary that opens the report, from the same computations as its tables."""
    summary = FunnelSummary(
        target=target,
        horizon_days=horizon_days,
        n_leads=len(label),
        conversions=int(label.sum()),
    )
    if times is not None:
        summary.stages = [(s, int(times[s].notna().sum())) for s in _stages(times)]
        summary.median_days = [
            (str(row.from_), str(row.to), float(row.median_days))
            for row in stage_durations(times)
            .rename(columns={"from": "from_"})
            .itertuples(index=False)
        ]
    if predictions is not None and thresholds is not None:
        test = predictions[predictions["split"] == "test"]
        table = conversion_by_prediction(test, thresholds)
        grades = table[table["by"] == "grade"].drop(columns=["by"])
        summary.grades = grades.reset_index(drop=True)
    return summary


# --------------------------------------------------------------------------------------------
# The report


@dataclass
class FunnelReport:
    """Every table of the report, the plots as PNG bytes, and notes on what is unavailable."""

    title: str
    summary: FunnelSummary | None = None
    tables: dict[str, pd.DataFrame] = field(default_factory=dict)
    captions: dict[str, str] = field(default_factory=dict)
    plots: dict[str, bytes] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)


def _png(fig: Figure) -> bytes:
    buffer = io.BytesIO()
    fig.tight_layout()
    fig.savefig(buffer, format="png", dpi=90)
    return buffer.getvalue()


def _plot_volumes(volumes: pd.DataFrame) -> bytes:
    fig = Figure(figsize=(8, 3.6))
    ax = fig.add_subplot()
    x = np.arange(len(volumes))
    for stage in volumes.columns:
        ax.plot(x, volumes[stage].to_numpy(), marker="o", label=_STAGE_LABELS.get(stage, stage))
    ax.set_xticks(x, [str(m) for m in volumes.index])
    # a linear axis from zero: every tick is a count a reader can compare
    ax.set_ylim(bottom=0)
    ax.yaxis.set_major_formatter(lambda value, _: f"{value:,.0f}")
    ax.set_title("Leads entering each stage per month")
    ax.set_ylabel("leads")
    ax.tick_params(axis="x", labelrotation=60, labelsize=7)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8, loc="center left", bbox_to_anchor=(1.0, 0.5))
    return _png(fig)


def _plot_rates(table: pd.DataFrame, *, title: str, label_col: str | None = None) -> bytes:
    labels = table[label_col] if label_col else table.index
    fig = Figure(figsize=(8, 0.35 * len(table) + 1.2))
    ax = fig.add_subplot()
    y = np.arange(len(table))
    ax.barh(y, table["rate"].to_numpy(dtype="float64"))
    ax.set_yticks(y, [str(v) for v in labels], fontsize=8)
    ax.invert_yaxis()
    ax.set_xlabel("conversion rate")
    ax.xaxis.set_major_formatter(lambda value, _: f"{value:.0%}")
    ax.set_title(title)
    ax.grid(alpha=0.3, axis="x")
    return _png(fig)


def _lead_source_column(raw: RawData) -> str | None:
    by_key = {
        c.lower().replace("_", ""): c
        for c, kind in raw.attribute_types.items()
        if kind == "categorical"
    }
    for name in LEAD_SOURCE_COLUMNS:
        if name.replace("_", "") in by_key:
            return by_key[name.replace("_", "")]
    return None


def normalised_categories(
    leads: pd.DataFrame,
    kinds: Mapping[str, str],
    definition: FeatureDefinition | None,
    params: Params,
) -> pd.DataFrame:
    """Categorical columns as the model knows their values, so one value is one row of a table.

    Case, spaces and aliases are folded by :meth:`FeatureDefinition.category_key`; each value is
    then shown as its canonical spelling in ``featurize.category_aliases`` ("United States"),
    else as the data's most frequent spelling of it ("FR", not "fr").
    """
    if definition is None:
        definition = FeatureDefinition(
            event_types=(), aliases=normalise_aliases(params.featurize.category_aliases)
        )
    out = leads.copy()
    for column, kind in kinds.items():
        if kind != "categorical" or column not in out.columns:
            continue
        values = out[column].astype(object)
        keys = {v: definition.category_key(column, v) for v in values.dropna().unique()}
        spelled = {
            normal_text(str(c)): str(c).strip()
            for c in params.featurize.category_aliases.get(column, {}).values()
        }
        counts = values.map(lambda v: str(v).strip(), na_action="ignore").value_counts()
        shown: dict[str, str] = {}
        for raw_text, _ in counts.items():  # most frequent first
            text = str(raw_text)
            key = definition.category_key(column, text)
            if key is None or key in spelled:
                continue
            # the spelling that is the key itself beats an alias ("Germany" over "DE")
            if key not in shown or (normal_text(shown[key]) != key and normal_text(text) == key):
                shown[key] = text
        shown.update(spelled)
        out[column] = values.map(
            {v: shown.get(k, k) if k is not None else None for v, k in keys.items()}
        ).astype(object)
    return out


def build_funnel_report(
    raw: RawData,
    params: Params,
    *,
    predictions: pd.DataFrame | None = None,
    thresholds: Thresholds | None = None,
    importance: pd.DataFrame | None = None,
    definition: FeatureDefinition | None = None,
) -> FunnelReport:
    """Compute every section the data allows; the others get a note saying why they are missing."""
    target = params.featurize.target_stage
    report = FunnelReport(title=f"Funnel report: {params.data.dir}")
    leads = raw.leads
    times: pd.DataFrame | None = None
    if raw.outcomes is not None and len(raw.outcomes):
        label = ever_reached(raw.outcomes, leads, target)
        times = stage_times(leads, raw.outcomes)
        volumes = monthly_stage_volumes(times)
        report.tables["Volume per stage and month"] = volumes
        report.plots["Volume per stage and month"] = _plot_volumes(volumes)
        report.tables["Conversion between stages"] = stage_conversion(times)
        report.captions["Conversion between stages"] = (
            "Share of leads reaching 'from' that also reached 'to' by the end of the data."
        )
        report.tables["Days between stages"] = stage_durations(times)
        label_name = f"reached '{target}' by the end of the data"
    elif LABEL in leads.columns:
        label = leads[LABEL].astype("float64")
        label_name = f"label column '{params.data.label_column}'"
        report.notes.append(
            "Flat export (one table with a label): stage volumes, conversion between stages, "
            "days between stages and engagement sections are not available; the label rate by "
            "attribute is shown instead."
        )
    else:  # pragma: no cover - load_raw guarantees outcomes or a label
        raise PredictiveScoringError("funnel: the data has neither outcomes nor a label column")
    report.notes.append(f"Conversion below means: {label_name}; overall rate {label.mean():.1%}.")

    source = _lead_source_column(raw)
    kinds = raw.attribute_types
    leads = normalised_categories(
        leads, {**kinds, **({source: "categorical"} if source else {})}, definition, params
    )
    if source is not None:
        table = conversion_by_attribute(leads, label, source)
        report.tables[f"Conversion and lift by lead source ({source})"] = table
        report.plots[f"Conversion by lead source ({source})"] = _plot_rates(
            table, title=f"Conversion by {source}"
        )
    else:
        report.notes.append(
            f"No lead-source column (one of {', '.join(LEAD_SOURCE_COLUMNS)}): lift by lead "
            "source is not available."
        )
    title = definition.job_title_column if definition is not None else None
    title = title or params.data.job_title_column
    if title not in leads.columns:
        title = None
    others = [c for c in kinds if c not in (source, title) and kinds[c] == "categorical"]
    others += [c for c in kinds if c not in (source, title) and kinds[c] == "numeric"]
    for column in others[:_MAX_ATTRIBUTE_TABLES]:
        report.tables[f"Conversion by {column}"] = conversion_by_attribute(leads, label, column)
        if column in kinds and kinds[column] == "numeric":
            report.captions[f"Conversion by {column}"] = (
                "Five bins of about equal size; edges rounded to three significant digits."
            )
    if title is not None:
        groups = title_groups(leads[title])
        for part in ("seniority", "function"):
            name = f"Conversion by job-title {part} ({title})"
            report.tables[name] = conversion_by_attribute(groups, label, part)
            report.captions[name] = (
                f"Free-text titles grouped by the {part} the model derives from them "
                f"(feature title_{part})."
            )

    if raw.events is not None and len(raw.events) and times is not None:
        report.tables["Conversion and lift by event type"] = conversion_by_event_type(
            raw.events, leads, label
        )
        for extra in ("channel", "content_type", "campaign"):
            if extra in raw.events.columns:
                report.tables[f"Conversion and lift by {extra}"] = conversion_by_event_type(
                    raw.events, leads, label, column=extra
                ).head(_MAX_LEVELS)
        if target in times.columns:
            report.tables["Engagement before conversion"] = engagement_before_conversion(
                raw.events, times, target=target
            )
            report.captions["Engagement before conversion"] = (
                "Mean events per lead; converters count only events before they converted."
            )
    elif params.data.format == "contract":
        report.notes.append(
            "No engagement events (data.events is not set or empty): conversion by event type "
            "and engagement before conversion are not available."
        )

    if predictions is not None and thresholds is not None:
        test = predictions[predictions["split"] == "test"]
        table = conversion_by_prediction(test, thresholds)
        report.tables["Conversion by predicted stage and grade (test split)"] = table
        report.plots["Conversion by predicted grade (test split)"] = _plot_rates(
            table[table["by"] == "grade"], title="Test conversion by grade", label_col="level"
        )
    else:
        report.notes.append(
            "No scored predictions (models/staging/predictions.parquet and "
            "models/thresholds.json): run `dvc repro` for conversion by predicted stage and grade."
        )
    if importance is not None and definition is not None:
        report.tables["Model gain importance by feature group"] = importance_by_group(
            importance, definition
        )
    report.summary = summarise_funnel(
        label=label,
        target=target if times is not None else params.data.label_column or "converted",
        horizon_days=params.featurize.horizon_days,
        times=times,
        predictions=predictions,
        thresholds=thresholds,
    )
    return report


_PERCENT_COLUMNS = frozenset({"rate", "share", "mean_probability"})
_TIMES_COLUMNS = frozenset({"lift", "ratio"})


def _cell(column: str, value: Any) -> str:
    """One value as a reader wants it: counts with separators, rates in percent, lifts as x."""
    if isinstance(value, bool | np.bool_):
        return str(value)
    if isinstance(value, int | np.integer):
        return f"{int(value):,}"
    if isinstance(value, float | np.floating):
        number = float(value)
        if math.isnan(number):
            return ""
        if column in _PERCENT_COLUMNS:
            return f"{number:.1%}"
        if column in _TIMES_COLUMNS:
            return "\u221e" if math.isinf(number) else f"{number:.2f}\u00d7"
        if column.endswith("_days"):
            return f"{number:,.1f}"
        return f"{number:,.2f}"
    return html.escape(str(value))


def _table_html(frame: pd.DataFrame) -> str:
    """A table; the index is a column only when it names something (not 0, 1, 2, ...)."""
    show_index = not isinstance(frame.index, pd.RangeIndex)
    names = [str(frame.index.name or "")] if show_index else []
    head = "".join(f"<th>{html.escape(str(c))}</th>" for c in [*names, *frame.columns])
    rows = []
    for idx, row in zip(frame.index, frame.itertuples(index=False), strict=True):
        first = f"<th>{html.escape(str(idx))}</th>" if show_index else ""
        cells = "".join(
            f"<td>{_cell(str(c), v)}</td>" for c, v in zip(frame.columns, row, strict=True)
        )
        rows.append(f"<tr>{first}{cells}</tr>")
    return f"<table><thead><tr>{head}</tr></thead><tbody>{''.join(rows)}</tbody></table>"


def _days(value: float) -> str:
    if math.isnan(value):
        return "n/a"
    return f"{value:,.0f} days" if value >= 10 else f"{value:.1f} days"


def _summary_html(summary: FunnelSummary) -> str:
    """Three lines a head of sales reads in ten seconds: the funnel, the timing, the grades."""
    parts = ["<section class='summary'><h2>Summary</h2>"]
    if summary.stages:
        boxes = []
        previous: int | None = None
        for stage, n in summary.stages:
            if previous is not None:
                rate = n / previous if previous else math.nan
                boxes.append(f"<div class='step'>{rate:.0%}<br>&rarr;</div>")
            name = _STAGE_LABELS.get(stage, stage)
            boxes.append(f"<div class='stage'><b>{n:,}</b><br>{html.escape(name)}</div>")
            previous = n
        parts.append(f"<div class='funnel'>{''.join(boxes)}</div>")
        first, last = summary.stages[0][1], summary.stages[-1]
        if first:
            parts.append(
                f"<p><b>{last[1] / first:.1%}</b> of leads reached "
                f"{html.escape(_STAGE_LABELS.get(last[0], last[0]))} by the end of the data "
                "(the percentages between the boxes are each step's rate).</p>"
            )
    elif summary.n_leads:
        parts.append(
            f"<p><b>{summary.conversions:,}</b> of <b>{summary.n_leads:,}</b> leads "
            f"({summary.conversions / summary.n_leads:.1%}) converted (label column "
            f"'{html.escape(summary.target)}').</p>"
        )
    if summary.median_days:
        steps = " &middot; ".join(
            f"{html.escape(_STAGE_LABELS.get(a, a))} &rarr; "
            f"{html.escape(_STAGE_LABELS.get(b, b))} <b>{_days(d)}</b>"
            for a, b, d in summary.median_days
        )
        parts.append(f"<p>Median time between stages: {steps}.</p>")
    if summary.grades is not None and len(summary.grades):
        grades = summary.grades
        head = "".join(f"<th>{html.escape(str(g))}</th>" for g in grades["level"])
        rates = "".join(f"<td><b>{_cell('rate', r)}</b></td>" for r in grades["rate"])
        counts = "".join(f"<td>{int(n):,}</td>" for n in grades["n"])
        parts.append(
            "<p>How each grade converted on the test split (the share of scores followed by "
            f"{html.escape(summary.target)} within {summary.horizon_days} days; a lead is "
            "scored at several points of its life):</p>"
            f"<table class='grades'><thead><tr><th>grade</th>{head}</tr></thead><tbody>"
            f"<tr><th>converted</th>{rates}</tr><tr><th>scores</th>{counts}</tr>"
            "</tbody></table>"
        )
    parts.append("</section>")
    return "".join(parts)


_CSS = (
    "body{font-family:system-ui,sans-serif;max-width:1000px;margin:2em auto;color:#222}"
    "table{border-collapse:collapse;margin:.5em 0 1.5em;font-size:.85em}"
    "th,td{border:1px solid #ccc;padding:.2em .5em;text-align:right}"
    "thead th{background:#f0f0f0}"
    ".note{background:#fff8e0;padding:.5em;border-left:4px solid #e0b000}"
    ".summary{background:#f4f8fc;border:1px solid #c8d8e8;padding:.2em 1em .5em}"
    ".funnel{display:flex;align-items:center;flex-wrap:wrap;gap:.4em;margin:.5em 0}"
    ".stage{background:#fff;border:1px solid #9ab;border-radius:4px;padding:.3em .8em;"
    "text-align:center;min-width:5em}"
    ".stage b{font-size:1.3em}"
    ".step{text-align:center;color:#357;font-weight:600;font-size:.9em}"
    ".grades td,.grades th{min-width:4em;text-align:center}"
    "img{max-width:100%}"
)


def render_html(report: FunnelReport) -> str:
    """One self-contained HTML page: inline CSS, tables, plots as base64 PNG."""
    parts = [
        # the empty icon keeps a browser from asking for /favicon.ico
        "<!DOCTYPE html><html lang='en'><head><meta charset='utf-8'>"
        "<link rel='icon' href='data:,'>",
        f"<title>{html.escape(report.title)}</title><style>{_CSS}</style></head><body>",
        f"<h1>{html.escape(report.title)}</h1>",
    ]
    if report.summary is not None:
        parts.append(_summary_html(report.summary))
    parts += [f"<p class='note'>{html.escape(n)}</p>" for n in report.notes]
    for name, png in report.plots.items():
        data = base64.b64encode(png).decode("ascii")
        parts.append(
            f"<h2>{html.escape(name)}</h2><img alt='{html.escape(name)}' "
            f"src='data:image/png;base64,{data}'>"
        )
    for name, table in report.tables.items():
        parts.append(f"<h2>{html.escape(name)}</h2>")
        if name in report.captions:
            parts.append(f"<p>{html.escape(report.captions[name])}</p>")
        parts.append(_table_html(table))
    parts.append("</body></html>")
    return "\n".join(parts)


def _read_optional(root: Path) -> dict[str, Any]:
    found: dict[str, Any] = {}
    preds, thr = root / "models/staging/predictions.parquet", root / "models/thresholds.json"
    if preds.is_file() and thr.is_file():
        found["predictions"] = pd.read_parquet(preds)
        found["thresholds"] = Thresholds.from_dict(read_json(thr))
    imp = root / "models/staging/feature_importance.csv"
    training = root / "models/staging/training.json"
    if imp.is_file() and training.is_file():
        found["importance"] = pd.read_csv(imp)
        found["definition"] = FeatureDefinition.from_dict(read_json(training)["definition"])
    return found


def _log_to_mlflow(output: Path, root: Path) -> None:
    from predictive_scoring.train import STAGING_RUN, staging_run_id

    staging = root / "models/staging"
    if not (staging / STAGING_RUN).is_file():
        return
    import mlflow

    from predictive_scoring.registry import default_tracking_uri

    try:
        run_id = staging_run_id(staging)
        mlflow.set_tracking_uri(default_tracking_uri(root))
        with mlflow.start_run(run_id=run_id):
            mlflow.log_artifact(str(output), "reports")
        logger.info("funnel report logged to MLflow run %s", run_id)
    except Exception as exc:  # the report on disk is the product; tracking is a copy
        logger.warning("funnel report not logged to MLflow: %s", exc)


def write_funnel_report(*, params_path: Path, output: Path, log_to_mlflow: bool = True) -> Path:
    """Build the funnel report from params.yaml's data (paths relative to its folder); atomic.

    Uses models/staging/predictions.parquet and models/thresholds.json when present, and logs
    the HTML to the training run in MLflow when models/staging/training.json exists.
    """
    params_path = Path(params_path)
    params = load_params(params_path)
    root = params_path.resolve().parent
    raw = load_raw(params.data, root=root / params.data.dir)
    report = build_funnel_report(raw, params, **_read_optional(root))
    output = Path(output)
    with atomic_path(output) as tmp:
        tmp.write_text(render_html(report), encoding="utf-8")
        tmp.chmod(0o644)  # a report to share, not a private temp file
    logger.info(
        "funnel report: %d tables, %d plots -> %s", len(report.tables), len(report.plots), output
    )
    if log_to_mlflow:
        _log_to_mlflow(output, root)
    return output
