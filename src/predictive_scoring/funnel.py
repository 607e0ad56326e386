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
from predictive_scoring.features import FeatureDefinition, normalise_aliases
from predictive_scoring.io import atomic_path, read_json
from predictive_scoring.leakage import FUNNEL_ORDER, ever_reached
from predictive_scoring.schema import LABEL, RawData, load_raw
from predictive_scoring.thresholds import Thresholds, assign_grade, assign_stage

__all__ = [
    "LEAD_SOURCE_COLUMNS",
    "FunnelReport",
    "build_funnel_report",
    "conversion_by_attribute",
    "conversion_by_event_type",
    "conversion_by_prediction",
    "engagement_before_conversion",
    "importance_by_group",
    "monthly_stage_volumes",
    "render_html",
    "stage_conversion",
    "stage_durations",
    "stage_times",
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


def _rate_table(groups: pd.Series, label: pd.Series, *, name: str) -> pd.DataFrame:
    overall = float(label.mean()) if len(label) else np.nan
    frame = pd.DataFrame({name: groups.to_numpy(), "y": label.to_numpy(dtype="float64")})
    table = frame.groupby(name, dropna=False, sort=False)["y"].agg(["size", "sum"])
    table.columns = pd.Index(["n", "conversions"])
    table["conversions"] = table["conversions"].astype("int64")
    table["rate"] = table["conversions"] / table["n"]
    table["lift"] = table["rate"] / overall if overall else np.nan
    return table.sort_values(["n", "rate"], ascending=False)


def conversion_by_attribute(
    leads: pd.DataFrame, label: pd.Series, column: str, *, max_levels: int = _MAX_LEVELS
) -> pd.DataFrame:
    """n, conversions, rate and lift (rate / overall rate) per level of one attribute.

    Numeric columns are cut into quintiles; missing is its own level; levels beyond the
    ``max_levels`` largest are folded into "(other)".
    """
    values = leads[column]
    if pd.api.types.is_numeric_dtype(values.dtype) and values.nunique() > max_levels:
        groups = pd.qcut(values, q=5, duplicates="drop").astype("str")
    else:
        groups = values.astype("object").astype("str")
    groups = groups.where(values.notna(), "(missing)")
    top = groups.value_counts().index[:max_levels]
    groups = groups.where(groups.isin(top), "(other)")
    return _rate_table(groups, label, name=column)


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


# --------------------------------------------------------------------------------------------
# The report


@dataclass
class FunnelReport:
    """Every table of the report, the plots as PNG bytes, and notes on what is unavailable."""

    title: str
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
        ax.plot(x, volumes[stage].to_numpy(), marker="o", label=stage)
    ax.set_xticks(x, [str(m) for m in volumes.index])
    ax.set_yscale("symlog")
    ax.set_title("Leads entering each stage per month")
    ax.set_ylabel("leads")
    ax.tick_params(axis="x", labelrotation=60, labelsize=7)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
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
    """Categorical columns as the model knows their values (case, spaces and aliases folded by
    :meth:`FeatureDefinition.category_key`), so one value is one row of a table."""
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
        out[column] = values.map(keys).astype(object)
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
    others = [c for c in kinds if c != source and kinds[c] == "categorical"]
    others += [c for c in kinds if c != source and kinds[c] == "numeric"]
    for column in others[:_MAX_ATTRIBUTE_TABLES]:
        report.tables[f"Conversion by {column}"] = conversion_by_attribute(leads, label, column)

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
    return report


def _table_html(frame: pd.DataFrame) -> str:
    def fmt(value: Any) -> str:
        if isinstance(value, float | np.floating):
            return "" if np.isnan(value) else f"{value:,.3f}"
        return html.escape(str(value))

    head = "".join(
        f"<th>{html.escape(str(c))}</th>" for c in [frame.index.name or "", *frame.columns]
    )
    body = "".join(
        "<tr>" + f"<th>{fmt(idx)}</th>" + "".join(f"<td>{fmt(v)}</td>" for v in row) + "</tr>"
        for idx, row in zip(frame.index, frame.itertuples(index=False), strict=True)
    )
    return f"<table><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>"


_CSS = (
    "body{font-family:system-ui,sans-serif;max-width:1000px;margin:2em auto;color:#222}"
    "table{border-collapse:collapse;margin:.5em 0 1.5em;font-size:.85em}"
    "th,td{border:1px solid #ccc;padding:.2em .5em;text-align:right}"
    "thead th{background:#f0f0f0}"
    ".note{background:#fff8e0;padding:.5em;border-left:4px solid #e0b000}"
    "img{max-width:100%}"
)


def render_html(report: FunnelReport) -> str:
    """One self-contained HTML page: inline CSS, tables, plots as base64 PNG."""
    parts = [
        "<!DOCTYPE html><html><head><meta charset='utf-8'>",
        f"<title>{html.escape(report.title)}</title><style>{_CSS}</style></head><body>",
        f"<h1>{html.escape(report.title)}</h1>",
    ]
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
    training = root / "models/staging/training.json"
    if not training.is_file():
        return
    import mlflow

    from predictive_scoring.registry import default_tracking_uri

    try:
        run_id = read_json(training)["run_id"]
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
