"""The monitor's page: one self-contained HTML file (inline CSS and SVG, nothing fetched).

It only renders the report :func:`predictive_scoring.monitor.build_report` computed.
"""

from __future__ import annotations

import html
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from predictive_scoring.config import MonitorParams
from predictive_scoring.thresholds import STAGE_NAMES

__all__ = ["pct", "render_html"]

STAGES = STAGE_NAMES


def pct(value: float | None) -> str:
    """A share as a percentage with one decimal, n/a when unknown."""
    return "n/a" if value is None else f"{100 * value:.1f}%"


_COLORS = {"SQL": "#1f77b4", "MQL": "#ff7f0e", "nurture": "#2ca02c", "all": "#444444"}
_LEVEL_COLORS = {"ok": "#2e7d32", "investigate": "#ef8f00", "retrain": "#c62828"}
_CSS = (
    "body{font-family:system-ui,sans-serif;max-width:1100px;margin:2em auto;color:#222;"
    "padding:0 1em}table{border-collapse:collapse;margin:.5em 0 1.5em;font-size:.82em}"
    "th,td{border:1px solid #ccc;padding:.2em .45em;text-align:right}"
    "thead th{background:#f0f0f0}td.l,th.l{text-align:left}"
    ".verdict{padding:.8em 1em;border-radius:6px;color:#fff;font-size:1.1em}"
    ".note{background:#fff8e0;padding:.5em;border-left:4px solid #e0b000}"
    ".est{color:#6a4c93;font-style:italic}.muted{color:#777}svg{max-width:100%}"
    "h2{border-bottom:1px solid #ddd;padding-bottom:.2em;margin-top:1.6em}"
)


def _esc(value: Any) -> str:
    return html.escape(str(value))


def _fmt(value: Any, digits: int = 3) -> str:
    if value is None:
        return ""
    if isinstance(value, float):
        return "" if not math.isfinite(value) else f"{value:,.{digits}f}"
    if isinstance(value, int):
        return f"{value:,}"
    return _esc(value)


def _table(headers: Sequence[str], rows: Sequence[Sequence[Any]], *, left: int = 1) -> str:
    head = "".join(
        f"<th class='l'>{_esc(h)}</th>" if i < left else f"<th>{_esc(h)}</th>"
        for i, h in enumerate(headers)
    )
    body = "".join(
        "<tr>"
        + "".join(
            f"<td class='l'>{c}</td>" if i < left else f"<td>{c}</td>" for i, c in enumerate(row)
        )
        + "</tr>"
        for row in rows
    )
    return f"<table><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>"


@dataclass
class _Series:
    name: str
    values: Sequence[float | None]
    color: str
    dashed: bool = False
    low: Sequence[float | None] | None = None
    high: Sequence[float | None] | None = None
    hollow: Sequence[bool] | None = None  # estimates drawn as open markers


def _svg_lines(
    labels: Sequence[str],
    series: Sequence[_Series],
    *,
    title: str,
    y_label: str,
    hlines: Sequence[tuple[float, str, str]] = (),
    percent: bool = False,
    split_at: int | None = None,
    split_label: str = "",
    width: int = 1000,
    height: int = 280,
) -> str:
    """A line chart in inline SVG: one x position per week, optional error bars, limits, and
    a dashed line before ``split_at`` (where estimates start)."""
    left, right, top, bottom = 60, 150, 28, 60
    plot_w, plot_h = width - left - right, height - top - bottom
    values = [
        v
        for s in series
        for seq in (s.values, s.low or (), s.high or ())
        for v in seq
        if v is not None and math.isfinite(v)
    ] + [h[0] for h in hlines]
    if not labels or not values:
        return ""
    lo, hi = min(0.0, min(values)), max(values)
    hi = hi if hi > lo else lo + 1.0
    hi += (hi - lo) * 0.05
    n = len(labels)

    def x(i: int) -> float:
        return left + (plot_w * (i + 0.5) / n)

    def y(v: float) -> float:
        return top + plot_h * (1 - (v - lo) / (hi - lo))

    out = [
        f"<svg width='{width}' height='{height}' "
        f"viewBox='0 0 {width} {height}' role='img' aria-label='{_esc(title)}' "
        "font-family='system-ui,sans-serif' font-size='11'>",
        f"<text x='{left}' y='16' font-size='13' font-weight='bold'>{_esc(title)}</text>",
        f"<rect x='{left}' y='{top}' width='{plot_w}' height='{plot_h}' fill='none' "
        "stroke='#bbb'/>",
    ]
    for k in range(5):
        v = lo + (hi - lo) * k / 4
        text = f"{100 * v:.0f}%" if percent else _tick(v)
        out.append(
            f"<line x1='{left}' x2='{left + plot_w}' y1='{y(v):.1f}' y2='{y(v):.1f}' "
            f"stroke='#eee'/><text x='{left - 4}' y='{y(v) + 4:.1f}' text-anchor='end'>"
            f"{text}</text>"
        )
    out.append(
        f"<text transform='translate(14,{top + plot_h / 2}) rotate(-90)' "
        f"text-anchor='middle'>{_esc(y_label)}</text>"
    )
    step = max(1, math.ceil(n / 20))
    for i in range(0, n, step):
        out.append(
            f"<text transform='translate({x(i):.1f},{top + plot_h + 12}) rotate(45)' "
            f"font-size='9'>{_esc(labels[i])}</text>"
        )
    for k, (value, name, color) in enumerate(hlines):
        out.append(
            f"<line x1='{left}' x2='{left + plot_w}' y1='{y(value):.1f}' y2='{y(value):.1f}' "
            f"stroke='{color}' stroke-dasharray='6,3'/><text x='{left + 4 + 130 * k}' "
            f"y='{y(value) - 3:.1f}' fill='{color}'>{_esc(name)}</text>"
        )
    if split_at is not None and 0 < split_at < n:
        xs = (x(split_at - 1) + x(split_at)) / 2
        out.append(
            f"<line x1='{xs:.1f}' x2='{xs:.1f}' y1='{top}' y2='{top + plot_h}' stroke='#6a4c93' "
            f"stroke-dasharray='2,3'/><text x='{xs - 4:.1f}' y='{top + 12}' fill='#6a4c93' "
            f"text-anchor='end' font-style='italic'>{_esc(split_label)}</text>"
        )
    for k, s in enumerate(series):
        points = [(i, v) for i, v in enumerate(s.values) if v is not None and math.isfinite(v)]
        if s.low is not None and s.high is not None:
            for i, (a, b) in enumerate(zip(s.low, s.high, strict=True)):
                if a is not None and b is not None:
                    out.append(
                        f"<line x1='{x(i):.1f}' x2='{x(i):.1f}' y1='{y(a):.1f}' y2='{y(b):.1f}' "
                        f"stroke='{s.color}' stroke-opacity='.5' stroke-width='3'/>"
                    )
        if len(points) > 1:
            path = " ".join(f"{x(i):.1f},{y(v):.1f}" for i, v in points)
            dash = " stroke-dasharray='5,4'" if s.dashed else ""
            out.append(
                f"<polyline points='{path}' fill='none' stroke='{s.color}' "
                f"stroke-width='1.6'{dash}/>"
            )
        for i, v in points:
            hollow = s.hollow is not None and s.hollow[i]
            fill = "#fff" if hollow else s.color
            out.append(
                f"<circle cx='{x(i):.1f}' cy='{y(v):.1f}' r='2.6' fill='{fill}' "
                f"stroke='{s.color}'/>"
            )
        ly = top + 10 + 16 * k
        dash = " stroke-dasharray='5,4'" if s.dashed else ""
        out.append(
            f"<line x1='{left + plot_w + 8}' x2='{left + plot_w + 26}' y1='{ly}' y2='{ly}' "
            f"stroke='{s.color}' stroke-width='2'{dash}/><text x='{left + plot_w + 30}' "
            f"y='{ly + 4}'>{_esc(s.name)}</text>"
        )
    out.append("</svg>")
    return "".join(out)


def _tick(value: float) -> str:
    if abs(value) >= 1000:
        return f"{value / 1000:.3g}k"
    return f"{value:.3g}"


def _svg_bars(
    labels: Sequence[str],
    groups: Sequence[tuple[str, Sequence[float], str]],
    *,
    title: str,
    limits: Sequence[tuple[float, str, str]] = (),
    percent: bool = False,
    width: int = 1000,
) -> str:
    """Horizontal bars, one row per label and one bar per group (reference against now)."""
    row_h = 8 * len(groups) + 8
    left, top = 300, 30
    height = top + row_h * len(labels) + 30
    plot_w = width - left - 120
    values = [v for _, vals, _ in groups for v in vals if math.isfinite(v)]
    values += [v for v, _, _ in limits]
    if not labels or not values:
        return ""
    hi = max(values) * 1.05 or 1.0

    def x(v: float) -> float:
        return left + plot_w * max(v, 0.0) / hi

    out = [
        f"<svg width='{width}' height='{height}' "
        f"viewBox='0 0 {width} {height}' role='img' aria-label='{_esc(title)}' "
        "font-family='system-ui,sans-serif' font-size='11'>",
        f"<text x='10' y='16' font-size='13' font-weight='bold'>{_esc(title)}</text>",
    ]
    for r, label in enumerate(labels):
        y0 = top + r * row_h
        out.append(
            f"<text x='{left - 6}' y='{y0 + row_h / 2 + 3:.1f}' text-anchor='end'>"
            f"{_esc(label)}</text>"
        )
        for g, (_, vals, color) in enumerate(groups):
            v = vals[r]
            if not math.isfinite(v):
                continue
            out.append(
                f"<rect x='{left}' y='{y0 + 4 + 8 * g}' width='{x(v) - left:.1f}' height='7' "
                f"fill='{color}'/>"
            )
            if len(groups) == 1 or g == len(groups) - 1:
                text = f"{100 * v:.1f}%" if percent else f"{v:.3f}"
                out.append(f"<text x='{x(v) + 4:.1f}' y='{y0 + 11 + 8 * g}'>{text}</text>")
    bottom = top + row_h * len(labels)
    for value, name, color in limits:
        out.append(
            f"<line x1='{x(value):.1f}' x2='{x(value):.1f}' y1='{top}' y2='{bottom}' "
            f"stroke='{color}' stroke-dasharray='6,3'/><text x='{x(value) + 3:.1f}' "
            f"y='{bottom + 14}' fill='{color}'>{_esc(name)}</text>"
        )
    for g, (name, _, color) in enumerate(groups):
        out.append(
            f"<rect x='{left + 150 * g}' y='{height - 12}' width='10' height='8' "
            f"fill='{color}'/><text x='{left + 14 + 150 * g}' y='{height - 4}'>"
            f"{_esc(name)}</text>"
        )
    out.append("</svg>")
    return "".join(out)


def _pct_cell(value: float | None, low: float | None = None, high: float | None = None) -> str:
    if value is None:
        return ""
    text = f"{100 * value:.1f}%"
    if low is not None and high is not None:
        text += f" <span class='muted'>({100 * low:.1f}-{100 * high:.1f})</span>"
    return text


def _html_verdict(report: Mapping[str, Any]) -> list[str]:
    verdict = report["verdict"]
    level = verdict["level"]
    parts = [
        f"<p class='verdict' style='background:{_LEVEL_COLORS[level]}'>Verdict: "
        f"<b>{_esc(level)}</b></p>"
    ]
    if verdict["reasons"]:
        parts.append("<ul>")
        parts += [
            f"<li><b>{_esc(r['level'])}</b> ({_esc(r['check'])}): {_esc(r['message'])}</li>"
            for r in verdict["reasons"]
        ]
        parts.append("</ul>")
    if verdict["notes"]:
        parts.append("<ul class='muted'>")
        parts += [f"<li>{_esc(n['message'])}</li>" for n in verdict["notes"]]
        parts.append("</ul>")
    return parts


def _html_volumes(volumes: Mapping[str, Any]) -> list[str]:
    weeks = volumes["weeks"]
    promised = volumes["promised"]
    parts = ["<h2>Volumes against the promise</h2>"]
    if not promised:
        parts.append(
            "<p class='note'>The bundle records no capacity agreement (exported before the "
            "monitor existed); volumes are shown without a promise.</p>"
        )
    else:
        parts.append(
            f"<p>Promised per week (the thresholds stage on the {_esc(volumes['promise_split'])}"
            " split): "
            + ", ".join(
                f"{s} {_fmt(v.get('leads_per_week'), 1)} ({pct(v.get('share'))})"
                for s, v in promised.items()
            )
            + ". Every score counts, as a weekly re-scoring sends them.</p>"
        )
    labels = [w["week"] for w in weeks]
    series = [_Series(s, [w[s]["scores"] for w in weeks], _COLORS[s]) for s in STAGES]
    hlines = [
        (float(v["leads_per_week"]), f"{s} promised", _COLORS[s])
        for s, v in promised.items()
        if v.get("leads_per_week") is not None
    ]
    parts.append(
        _svg_lines(
            labels, series, title="Scores per week by stage", y_label="scores", hlines=hlines
        )
    )
    rows = []
    for w in weeks[-26:]:
        rows.append(
            [_esc(w["week"] + (" (partial)" if w["partial"] else "")), _fmt(w["total"])]
            + [
                f"{_fmt(w[s]['scores'])} <span class='muted'>{pct(w[s]['share'])}"
                + (f", x{w[s]['ratio']:.2f}" if w[s]["ratio"] is not None else "")
                + "</span>"
                for s in STAGES
            ]
        )
    parts.append(
        "<p class='muted'>Last 26 weeks: scores, share of the week, and the ratio to the "
        "promised weekly volume.</p>"
    )
    parts.append(_table(["week", "scores", *STAGES], rows))
    return parts


def _html_conversion(report: Mapping[str, Any]) -> list[str]:
    conversion, perf = report["conversion"], report["performance"]
    weeks = conversion["weeks"]
    parts = [
        "<h2>Conversion: realized where the horizon has passed, estimated where it has not</h2>",
        f"<p>Cohort: {_esc(conversion['cohort'])}; converted = reached "
        f"<b>{_esc(conversion['target_stage'])}</b> within {conversion['horizon_days']} days. "
        f"Outcomes known up to {_esc(conversion.get('now') or 'nothing yet')}. "
        f"{conversion['excluded_closed_before_score']:,} first scores of leads already closed "
        "or converted are left out, as training leaves them out. "
        "<span class='est'>Estimates (open cohorts) come from the calibrated probabilities "
        "(CBPE) and are marked as such.</span></p>",
    ]
    labels = [w["week"] for w in weeks]
    estimate = [w["status"] != "realized" for w in weeks]
    open_from = next((i for i, e in enumerate(estimate) if e), None)
    parts.append(
        _svg_lines(
            labels,
            [
                _Series(
                    "predicted",
                    [w["all"]["mean_probability"] for w in weeks],
                    _COLORS["all"],
                    dashed=True,
                    hollow=estimate,
                ),
                _Series(
                    "realized (95% CI)",
                    [w["all"].get("rate") for w in weeks],
                    _COLORS["all"],
                    low=[w["all"].get("rate_low") for w in weeks],
                    high=[w["all"].get("rate_high") for w in weeks],
                ),
                _Series(
                    "SQL predicted",
                    [w["SQL"]["mean_probability"] for w in weeks],
                    _COLORS["SQL"],
                    dashed=True,
                    hollow=estimate,
                ),
                _Series(
                    "SQL realized (95% CI)",
                    [w["SQL"].get("rate") for w in weeks],
                    _COLORS["SQL"],
                    low=[w["SQL"].get("rate_low") for w in weeks],
                    high=[w["SQL"].get("rate_high") for w in weeks],
                ),
            ],
            title="Conversion per cohort week: realized against predicted",
            y_label="conversion",
            percent=True,
            split_at=open_from,
            split_label="realized | estimates (horizon not passed) →",
        )
    )
    rows = []
    for w in weeks[-30:]:
        a = w["all"]
        if w["status"] == "realized":
            outcome = _pct_cell(a["rate"], a["rate_low"], a["rate_high"])
            sql = _pct_cell(
                w["SQL"].get("rate"), w["SQL"].get("rate_low"), w["SQL"].get("rate_high")
            )
            status = "realized"
        else:
            outcome = (
                f"<span class='est'>{_fmt(a['expected'], 1)} expected "
                f"({_fmt(a['expected_low'], 1)}-{_fmt(a['expected_high'], 1)}); "
                f"{a['converted_so_far']:,} so far</span>"
            )
            sql = f"<span class='est'>{pct(w['SQL']['mean_probability'])} est.</span>"
            status = f"<span class='est'>estimate (matures {_esc(w['matures'])})</span>"
        auc = _fmt(a.get("roc_auc"))
        if w["status"] != "realized" and auc:
            auc = f"<span class='est'>{auc} est.</span>"
        rows.append(
            [
                _esc(w["week"]),
                status,
                _fmt(a["leads"]),
                pct(a["mean_probability"]),
                outcome,
                pct(w["SQL"]["mean_probability"]),
                sql,
                auc,
            ]
        )
    parts.append(
        _table(
            [
                "cohort week",
                "status",
                "leads",
                "predicted",
                "realized / estimated",
                "SQL predicted",
                "SQL realized",
                "ROC-AUC",
            ],
            rows,
            left=2,
        )
    )
    parts += _html_performance(perf)
    return parts


def _html_performance(perf: Mapping[str, Any]) -> list[str]:
    if not perf:
        return []
    test, ref = perf["test"], perf["reference_expected"]
    real, est = perf["realized"], perf["estimated"]
    parts = ["<h3>Pooled</h3>"]
    rows = []
    for group in ("all", *STAGES):
        r, e = real[group], est[group]
        rows.append(
            [
                _esc(group),
                _fmt(r["leads"]),
                pct(r["mean_probability"]),
                _pct_cell(r.get("rate"), r.get("rate_low"), r.get("rate_high")),
                _fmt(r.get("gap")),
                pct(r.get("promised_rate")) if r.get("promised_rate") is not None else "",
                _fmt(e["leads"]),
                f"<span class='est'>{_fmt(e['expected'], 1)} ({_fmt(e['expected_low'], 1)}-"
                f"{_fmt(e['expected_high'], 1)})</span>",
            ]
        )
    parts.append(
        f"<p>Realized: the latest matured cohort weeks ({_esc(', '.join(real['weeks']) or 'none')}"
        "). Estimated: every open cohort week.</p>"
    )
    parts.append(
        _table(
            [
                "stage",
                "matured leads",
                "predicted",
                "realized (95% CI)",
                "gap",
                "promised (precision)",
                "open leads",
                "expected conversions (95%)",
            ],
            rows,
        )
    )
    ra, ea = real["all"], est["all"]
    parts.append(
        _table(
            ["", "ROC-AUC", "95% CI", "PR-AUC"],
            [
                ["test (bundle)", _fmt(test.get("roc_auc")), "", _fmt(test.get("pr_auc"))],
                [
                    "realized (matured)",
                    _fmt(ra.get("roc_auc")),
                    f"{_fmt(ra.get('roc_auc_low'))}-{_fmt(ra.get('roc_auc_high'))}",
                    _fmt(ra.get("pr_auc")),
                ],
                [
                    "expected on the reference (CBPE)",
                    _fmt(ref.get("roc_auc")),
                    "",
                    _fmt(ref.get("pr_auc")),
                ],
                [
                    "<span class='est'>estimated (open, CBPE)</span>",
                    _fmt(ea.get("roc_auc")),
                    f"{_fmt(ea.get('roc_auc_low'))}-{_fmt(ea.get('roc_auc_high'))}",
                    _fmt(ea.get("pr_auc")),
                ],
            ],
        )
    )
    return parts


def _html_drift(drift: Mapping[str, Any], params: MonitorParams) -> list[str]:
    parts = ["<h2>Drift against the training reference (PSI)</h2>"]
    if not drift.get("available"):
        return [*parts, f"<p class='note'>{_esc(drift.get('why'))}</p>"]
    parts.append(
        f"<p>Reference: the {_esc(drift['reference_split'])} split at export "
        f"({drift['reference_rows']:,} snapshots). Now: the last {len(drift['recent_weeks'])} "
        f"week(s), {drift['recent_scores']:,} scores. PSI = sum over bins of "
        "(now - reference) x ln(now / reference); under 0.1 is stable, above 0.25 a shift.</p>"
    )
    by_week = drift["score_by_week"]
    parts.append(
        _svg_lines(
            [w["week"] for w in by_week],
            [_Series("score PSI", [w["psi"] for w in by_week], "#444444")],
            title="Score PSI per week",
            y_label="PSI",
            hlines=[
                (params.score_psi_investigate, "investigate", _LEVEL_COLORS["investigate"]),
                (params.score_psi_retrain, "retrain", _LEVEL_COLORS["retrain"]),
            ],
        )
    )
    bins = [b for b in drift["score"]["bins"] if b["bin"] != "missing" or b["current"]]
    parts.append(
        _svg_bars(
            [b["bin"] for b in bins],
            [
                ("reference", [b["reference"] or 0.0 for b in bins], "#9e9e9e"),
                ("last weeks", [b["current"] or 0.0 for b in bins], "#1f77b4"),
            ],
            title=f"Probability by reference decile (PSI {_fmt(drift['score']['psi'])})",
            percent=True,
        )
    )
    top = drift["features"][: params.top_features]
    parts.append(
        _svg_bars(
            [f["feature"] for f in top],
            [
                (
                    "PSI, last weeks",
                    [f["psi"] if f["psi"] is not None else math.nan for f in top],
                    "#6a4c93",
                )
            ],
            title="The features that drift most",
            limits=[
                (params.feature_psi_investigate, "investigate", _LEVEL_COLORS["investigate"]),
                (params.feature_psi_retrain, "retrain", _LEVEL_COLORS["retrain"]),
            ],
        )
    )
    rows = [
        [
            _esc(f["feature"]),
            _esc(f["kind"]),
            _fmt(f["psi"]),
            _esc(f["largest_change"]["bin"]),
            pct(f["largest_change"]["reference"]),
            pct(f["largest_change"]["current"]),
        ]
        for f in drift["features"]
    ]
    parts.append(
        "<details><summary>Every feature's PSI, with the bin that moved most</summary>"
        + _table(["feature", "kind", "PSI", "bin", "reference", "last weeks"], rows, left=2)
        + "</details>"
    )
    weeks = drift["top_by_week"]["weeks"][-12:]
    cells = []
    for name, values in drift["top_by_week"]["psi"].items():
        row = [_esc(name)]
        for v in values[-12:]:
            color = (
                _LEVEL_COLORS["retrain"]
                if v is not None and v >= params.feature_psi_retrain
                else _LEVEL_COLORS["investigate"]
                if v is not None and v >= params.feature_psi_investigate
                else None
            )
            style = f" style='color:{color};font-weight:bold'" if color else ""
            row.append(f"<span{style}>{_fmt(v, 2)}</span>")
        cells.append(row)
    if cells:
        parts.append(
            "<p>The same features week by week (weekly PSI is noisier: fewer scores).</p>"
        )
        parts.append(_table(["feature", *weeks], cells))
    if drift["not_logged"]:
        parts.append(
            f"<p class='note'>Not in the score log, so not compared: "
            f"{_esc(', '.join(drift['not_logged']))}</p>"
        )
    return parts


def _html_sales(sales: Mapping[str, Any]) -> list[str]:
    parts = ["<h2>Sales: SQL acceptance and the SLA</h2>"]
    total = sales["total"]
    if not total or not total.get("sqls"):
        return [*parts, "<p>No lead was scored SQL in this window.</p>"]
    parts.append(
        f"<p>{total['sqls']:,} leads scored SQL; {total['accepted']:,} accepted, "
        f"{total['rejected']:,} rejected, {total['pending']:,} without a decision. "
        f"Acceptance rate {pct(total['acceptance_rate'])} of decided. Decided within the "
        f"{_fmt(sales['sla_hours'], 0)} h SLA: {pct(total['within_sla_share'])} of the SQLs "
        f"due (decided, or older than the SLA); median {_fmt(total['median_hours'], 1)} h, "
        f"90th percentile {_fmt(total['p90_hours'], 1)} h from the first SQL score to the "
        "first decision.</p>"
    )
    rows = [
        [_esc(r["decision"].removeprefix("sql_")), _esc(r["reason"]), _fmt(r["leads"])]
        for r in sales["reasons"][:20]
    ]
    parts.append(_table(["decision", "reason", "leads"], rows, left=2))
    rows = [
        [
            _esc(w["week"]),
            _fmt(w["sqls"]),
            _fmt(w["accepted"]),
            _fmt(w["rejected"]),
            _fmt(w["pending"]),
            pct(w["acceptance_rate"]),
            pct(w["within_sla_share"]),
            _fmt(w["median_hours"], 1),
            _fmt(w["p90_hours"], 1),
        ]
        for w in sales["weeks"][-26:]
    ]
    parts.append(
        _table(
            [
                "SQL week",
                "SQLs",
                "accepted",
                "rejected",
                "pending",
                "acceptance",
                "within SLA",
                "median h",
                "p90 h",
            ],
            rows,
        )
    )
    return parts


def render_html(report: Mapping[str, Any], params: MonitorParams) -> str:
    """One self-contained HTML page: inline CSS and SVG, readable offline."""
    model, window = report["model"], report["window"]
    title = f"Monitoring: {model['name']} version {model['version']}"
    parts = [
        "<!DOCTYPE html><html lang='en'><head><meta charset='utf-8'>",
        f"<title>{_esc(title)}</title><style>{_CSS}</style></head><body>",
        f"<h1>{_esc(title)}</h1>",
        f"<p class='muted'>Generated {_esc(report['generated_at'])}. {_esc(model['source'])}"
        f"<br>Score log {_esc(window['store'])}: {window.get('scores', 0):,} scores"
        + (
            f" over {window['weeks']} week(s), as_of {_esc(window['first_as_of'])} to "
            f"{_esc(window['last_as_of'])}"
            if window.get("scores")
            else ""
        )
        + "</p>",
    ]
    parts += _html_verdict(report)
    parts += [f"<p class='note'>{_esc(n)}</p>" for n in report.get("notes", [])]
    if report.get("status") == "monitored":
        parts += _html_volumes(report["volumes"])
        parts += _html_conversion(report)
        parts += _html_drift(report["drift"], params)
        parts += _html_sales(report["sales"])
    parts.append("</body></html>")
    return "\n".join(parts)
