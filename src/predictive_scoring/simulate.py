"""Production after the training data: a simulated period, an optional shift, and its replay.

:func:`simulate_period` continues the demo's funnel for some weeks after the training data ends,
with the demo's own generator and ground truth (:mod:`predictive_scoring.synth`), optionally with
one injected shift, and writes it in the data contract's shape. :func:`replay` sends it through a
running service the way production would: every lead scored at its scheduled ages, every stage
change posted once its time has passed, at a bounded request rate. The service refuses times in
the future, so the replay maps the simulated period onto the most recent whole weeks that lie in
the past.

Every random draw of a shift comes from a stream of its own, so a shifted period equals the
unshifted one of the same seed except for what the shift says it changes.
"""

from __future__ import annotations

import json
import logging
import math
import time
from collections import Counter
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Literal, get_args

import httpx
import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from predictive_scoring import synth
from predictive_scoring.config import GenerateParams
from predictive_scoring.errors import ConfigError, PredictiveScoringError

__all__ = [
    "NEW_SOURCE",
    "OUTCOMES_SCHEMA",
    "SHIFTS",
    "PeriodSummary",
    "ReplayError",
    "ReplaySummary",
    "Shift",
    "ShiftKind",
    "expected_leads",
    "parse_ages",
    "replay",
    "scoring_schedule",
    "simulate_period",
]

logger = logging.getLogger(__name__)

ShiftKind = Literal["none", "new_source", "bot_burst", "conversion_drop"]
SHIFTS: tuple[str, ...] = get_args(ShiftKind)

# A lead source training never saw, as synth describes sources: (name, share, fit effect, intent
# effect). A vendor's purchased list: poorer fit and less intent than any source in training.
NEW_SOURCE: tuple[str, float, float, float] = ("lead_vendor", 1.0, -0.6, -0.4)
# The data contract's outcomes, plus the reason sales gives when it rejects an SQL.
OUTCOMES_SCHEMA = synth.OUTCOMES_SCHEMA.append(pa.field("reason", pa.string()))

# Random streams: [_STREAM, seed, part, ...]; training's are [seed, chunk], so none is shared.
_STREAM = 8_675_309
_BASE, _NEW_SOURCE, _BOTS, _DROP = 0, 1, 2, 3
_SALES = 99
# Events and outcomes are simulated this long past the period's end: the leads' future, kept
# as eventual_outcomes.parquet (the truth that matures after the period).
_FUTURE_DAYS = 365
_US = 1_000_000
_DAY_S = 86_400
_WEEK_S = 7 * _DAY_S
_MAX_WEEKS = 156

# Sales answers an SQL after a lognormal delay (median 18 hours).
_DECISION_MEDIAN_HOURS = 18.0
_DECISION_SIGMA = 0.9
# Bots: bursts of events within minutes, no intent behind them.
_BOT_TYPES = ("web_visit", "email_click", "email_open")
_BOT_MIX = np.array([0.55, 0.35, 0.10])
_BOT_CHANNELS = ("direct", "email", "email")

_RETRY_STATUS = frozenset({429, 502, 503, 504})
_ATTEMPTS = 3
_MAX_CONSECUTIVE_FAILURES = 5


class ReplayError(PredictiveScoringError):
    """The replay cannot go on: the service is unreachable, refuses the key, or keeps failing."""


@dataclass(frozen=True)
class Shift:
    """One injected change. ``share`` sizes new_source (new leads, as a share of the period's)
    and bot_burst (the share of leads bots hit); ``factor`` is the share of wins that remain
    under conversion_drop."""

    kind: ShiftKind = "none"
    share: float = 0.3
    factor: float = 0.5

    def __post_init__(self) -> None:
        if self.kind not in SHIFTS:
            raise ConfigError(f"shift: unknown kind {self.kind!r}; use one of {', '.join(SHIFTS)}")
        if not 0 < self.share <= 1:
            raise ConfigError(f"shift share must lie in (0, 1], got {self.share}")
        if not 0 <= self.factor < 1:
            raise ConfigError(f"conversion_drop factor must lie in [0, 1), got {self.factor}")


@dataclass(frozen=True)
class PeriodSummary:
    """What :func:`simulate_period` wrote; ``shift`` says what was changed, with counts."""

    seed: int
    weeks: int
    start: str
    end: str
    n_leads: int
    n_events: int
    n_outcomes: int
    n_won: int
    shift: dict[str, Any]

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass
class ReplaySummary:
    """What :func:`replay` sent and how the service answered."""

    url: str
    requests: int = 0
    errors: int = 0
    leads: int = 0
    scorings: int = 0
    scorings_planned: int = 0
    outcomes_posted: int = 0
    outcomes_due: int = 0
    outcomes_endpoint: bool = True
    outcomes_file: str = ""
    offset_days: int = 0
    start: str = ""
    end: str = ""
    stages: dict[str, int] = field(default_factory=dict)
    warnings: int = 0
    seconds: float = 0.0

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


# --- the period ---------------------------------------------------------------------------------
def simulate_period(
    out_dir: Path,
    demo: GenerateParams,
    *,
    weeks: int = 8,
    shift: Shift | None = None,
    seed: int | None = None,
    n_leads: int | None = None,
) -> PeriodSummary:
    """Simulate ``weeks`` of production after the demo's training data into ``out_dir``.

    Writes leads, events and outcomes (the data contract's shape; outcomes add sales accepting
    or rejecting SQLs, with a reason) up to the period's end, the latent truth, the outcomes
    that mature after the end (``eventual_outcomes.parquet``) and ``period.json``. The folder is
    replaced only once complete; the same arguments write the same bytes.

    Args:
        out_dir: the folder to write.
        demo: the ``generate`` section the training data came from; the period starts where it
            ends and continues its seasonality and growth.
        weeks: the period's length.
        shift: the injected change (default none).
        seed: the period's seed (default ``demo.seed``).
        n_leads: leads created in the period before any shift (default: the training data's
            volume for those weeks, growth included).
    """
    shift = shift or Shift()
    if not 1 <= weeks <= _MAX_WEEKS:
        raise ConfigError(f"weeks must lie in 1..{_MAX_WEEKS}, got {weeks}")
    if n_leads is not None and n_leads < 1:
        raise ConfigError(f"n_leads must be at least 1, got {n_leads}")
    seed = demo.seed if seed is None else seed
    train_start = synth._period_start(demo)
    start = train_start + pd.DateOffset(months=demo.months)
    end = start + pd.Timedelta(weeks=weeks)
    period = synth._period(
        start, end, origin=train_start, until=end + pd.Timedelta(days=_FUTURE_DAYS)
    )
    n_base = expected_leads(demo, start=start, end=end) if n_leads is None else n_leads
    end_us = synth._to_us(end)

    parts = [
        _simulate_leads(
            seed=seed, part=_BASE, first=demo.n_leads, n=n_base, period=period, demo=demo
        )
    ]
    details: dict[str, Any] = {"kind": shift.kind}
    if shift.kind == "new_source":
        n_new = max(1, round(shift.share * n_base))
        parts.append(
            _simulate_leads(
                seed=seed,
                part=_NEW_SOURCE,
                first=demo.n_leads + n_base,
                n=n_new,
                period=period,
                demo=demo,
                sources=(NEW_SOURCE,),
            )
        )
    leads, events, outcomes, latent = (pa.concat_tables([p[k] for p in parts]) for k in range(4))
    if shift.kind == "new_source":
        details |= _describe_new_source(parts[1][0], parts[1][3], parts[0][3])
    elif shift.kind == "bot_burst":
        window_us = synth._to_us(start + (end - start) / 4)
        events, added = _add_bot_bursts(
            events,
            leads,
            rng=np.random.default_rng([_STREAM, seed, _BOTS]),
            share=shift.share,
            window_start_us=window_us,
            end_us=end_us,
        )
        details |= {
            "description": f"bots hit {shift.share:.0%} of the leads from "
            f"{_iso_us(window_us)} on with bursts of web visits, e-mail clicks and opens "
            "(minutes apart, no intent behind them); leads, outcomes and latent truth unchanged",
            "share": shift.share,
            "from": _iso_us(window_us),
            **added,
        }
    elif shift.kind == "conversion_drop":
        outcomes, latent, n_dropped = _drop_wins(
            outcomes,
            latent,
            rng=np.random.default_rng([_STREAM, seed, _DROP]),
            factor=shift.factor,
        )
        details |= {
            "description": f"the true conversion rate falls to {shift.factor:.0%} of what it "
            "was: the same leads and events, and that share of the wins become losses at the "
            "same time (latent propensity scaled alike)",
            "factor": shift.factor,
            "wins_lost": n_dropped,
        }
    else:
        details["description"] = "no shift: the training data's world, continued"

    observed_events = events.filter(pc.less(_us(events["ts"]), end_us))
    observed = outcomes.filter(pc.less(_us(outcomes["ts"]), end_us))
    summary = PeriodSummary(
        seed=seed,
        weeks=weeks,
        start=_iso_us(synth._to_us(start)),
        end=_iso_us(end_us),
        n_leads=leads.num_rows,
        n_events=observed_events.num_rows,
        n_outcomes=observed.num_rows,
        n_won=int(pc.sum(pc.equal(observed["stage"], "won")).as_py() or 0),
        shift=details,
    )
    with synth._atomic_dir(Path(out_dir)) as tmp:
        pq.write_table(leads, tmp / "leads.parquet")
        pq.write_table(observed_events, tmp / "events.parquet")
        pq.write_table(observed, tmp / "outcomes.parquet")
        pq.write_table(outcomes, tmp / "eventual_outcomes.parquet")
        pq.write_table(latent, tmp / "latent.parquet")
        (tmp / "period.json").write_text(json.dumps(summary.to_dict(), indent=2) + "\n")
    logger.info(
        "simulated %d weeks from %s: %d leads, %d events, %d outcomes (%d won); shift: %s",
        weeks,
        summary.start,
        summary.n_leads,
        summary.n_events,
        summary.n_outcomes,
        summary.n_won,
        shift.kind,
    )
    return summary


def expected_leads(demo: GenerateParams, *, start: pd.Timestamp, end: pd.Timestamp) -> int:
    """Leads the demo's world creates in [start, end): its volume per day, season and growth
    continued past the training data."""
    train_start = synth._period_start(demo)
    train_end = train_start + pd.DateOffset(months=demo.months)
    trained = synth._day_weights(synth._days(train_start, train_end), train_start).sum()
    wanted = synth._day_weights(synth._days(start, end), train_start).sum()
    return max(1, round(demo.n_leads * float(wanted) / float(trained)))


def _simulate_leads(
    *,
    seed: int,
    part: int,
    first: int,
    n: int,
    period: synth._Period,
    demo: GenerateParams,
    sources: tuple[tuple[str, float, float, float], ...] = synth._SOURCES,
) -> tuple[pa.Table, pa.Table, pa.Table, pa.Table]:
    """Leads, events, outcomes (sales decisions added) and latent truth of one part."""
    chunks = []
    for i, lo in enumerate(range(0, n, demo.chunk_leads)):
        chunks.append(
            synth._simulate_chunk(
                rng=np.random.default_rng([_STREAM, seed, part, i]),
                first=first + lo,
                n=min(demo.chunk_leads, n - lo),
                period=period,
                params=demo,
                sources=sources,
            )
        )
    leads = pa.concat_tables([c.leads for c in chunks])
    events = pa.concat_tables([c.events for c in chunks])
    latent = pa.concat_tables([c.latent for c in chunks])
    stages = pa.concat_tables([c.outcomes for c in chunks])
    decisions = _sales_decisions(
        stages, leads, latent, rng=np.random.default_rng([_STREAM, seed, part, _SALES])
    )
    plain = stages.append_column("reason", pa.nulls(stages.num_rows, pa.string()))
    outcomes = pa.concat_tables([plain, decisions]).sort_by(
        [("lead_id", "ascending"), ("ts", "ascending")]
    )
    return leads, events, outcomes, latent


def _sales_decisions(
    stages: pa.Table, leads: pa.Table, latent: pa.Table, *, rng: np.random.Generator
) -> pa.Table:
    """Sales accepts an SQL that becomes an opportunity and rejects the others, with the reason
    the ground truth gives: low fit is no budget (small companies) or the wrong person, low
    intent is bad timing, and the rest never answer."""
    frame = stages.select(["lead_id", "stage", "ts"]).to_pandas()
    frame["ts"] = _us(stages["ts"]).to_numpy()
    sql = frame[frame["stage"] == "sql"].set_index("lead_id")["ts"]
    opportunity = frame[frame["stage"] == "opportunity"].set_index("lead_id")["ts"]
    delay = np.exp(rng.normal(math.log(_DECISION_MEDIAN_HOURS), _DECISION_SIGMA, len(sql)))
    at = sql.to_numpy() + np.maximum((delay * 3600 * _US).astype(np.int64), _US)
    opp_at = opportunity.reindex(sql.index).to_numpy(dtype=np.float64)
    accepted = ~np.isnan(opp_at)
    before_opp = sql.to_numpy() + 0.9 * (opp_at - sql.to_numpy())
    at = np.where(accepted, np.minimum(at, np.nan_to_num(before_opp, nan=0.0)), at).astype(
        np.int64
    )
    truth = latent.to_pandas().set_index("lead_id").reindex(sql.index)
    employees = (
        leads.select(["lead_id", "employees"]).to_pandas().set_index("lead_id")["employees"]
    )
    small = employees.reindex(sql.index).fillna(0).to_numpy() < 50
    fit, intent = truth["fit"].to_numpy(), truth["intent"].to_numpy()
    reason = np.select(
        [fit < 0, intent < 0],
        [np.where(small, "no budget", "not the decision maker"), "bad timing"],
        "no response",
    )
    return pa.table(
        {
            "lead_id": pa.array(sql.index.to_numpy(), pa.string()),
            "stage": pa.array(np.where(accepted, "sql_accepted", "sql_rejected"), pa.string()),
            "ts": pa.array(at, synth.OUTCOMES_SCHEMA.field("ts").type),
            "amount": pa.nulls(len(sql), pa.float64()),
            "reason": pa.array(reason, pa.string(), mask=accepted),
        },
        schema=OUTCOMES_SCHEMA,
    )


def _describe_new_source(leads: pa.Table, latent: pa.Table, base: pa.Table) -> dict[str, Any]:
    name, _, fit, intent = NEW_SOURCE
    new_p = float(pc.mean(latent["propensity"]).as_py())
    base_p = float(pc.mean(base["propensity"]).as_py())
    return {
        "description": f"a new lead source, {name!r}, unseen in training, adds "
        f"{leads.num_rows} leads to the period's {base.num_rows}: poorer fit and less intent "
        f"than any source the model knows (true conversion {new_p:.1%} against {base_p:.1%}); "
        "the other leads unchanged",
        "source": name,
        "leads_added": leads.num_rows,
        "first_lead_id": leads["lead_id"][0].as_py(),
        "fit_effect": fit,
        "intent_effect": intent,
        "mean_propensity": round(new_p, 4),
        "mean_propensity_others": round(base_p, 4),
    }


def _add_bot_bursts(
    events: pa.Table,
    leads: pa.Table,
    *,
    rng: np.random.Generator,
    share: float,
    window_start_us: int,
    end_us: int,
) -> tuple[pa.Table, dict[str, int]]:
    """Bursts of bot events (minutes apart) on ``share`` of the leads, between the window's
    start (or the lead's creation) and the period's end."""
    created = _us(leads["created_at"]).to_numpy()
    n = created.shape[0]
    hit = rng.random(n) < share
    n_bursts = np.where(hit, 1 + rng.poisson(1.0, n), 0)
    burst_lead = np.repeat(np.arange(n), n_bursts)
    lo = np.maximum(created[burst_lead], window_start_us)
    t0 = lo + (rng.random(burst_lead.shape[0]) * (end_us - lo)).astype(np.int64)
    size = rng.integers(10, 40, burst_lead.shape[0])
    lead = np.repeat(burst_lead, size)
    ts = np.repeat(t0, size) + (rng.exponential(300.0, lead.shape[0]) * _US).astype(np.int64)
    kind = rng.choice(len(_BOT_TYPES), size=lead.shape[0], p=_BOT_MIX)
    keep = ts < end_us
    lead, ts, kind = lead[keep], ts[keep], kind[keep]
    bots = pa.table(
        {
            "lead_id": leads["lead_id"].take(pa.array(lead)),
            "ts": pa.array(ts, synth.EVENTS_SCHEMA.field("ts").type),
            "event_type": pa.array(np.array(_BOT_TYPES)[kind], pa.string()),
            "channel": pa.array(np.array(_BOT_CHANNELS)[kind], pa.string()),
            "content_id": pa.nulls(lead.shape[0], pa.string()),
            "campaign": pa.nulls(lead.shape[0], pa.string()),
        },
        schema=synth.EVENTS_SCHEMA,
    )
    merged = pa.concat_tables([events, bots]).sort_by(
        [("lead_id", "ascending"), ("ts", "ascending")]
    )
    counts = {
        "leads_hit": int(np.unique(lead).shape[0]),
        "events_added": int(lead.shape[0]),
        "web_visits_added": int(np.sum(kind == 0)),
        "email_clicks_added": int(np.sum(kind == 1)),
    }
    return merged, counts


def _drop_wins(
    outcomes: pa.Table, latent: pa.Table, *, rng: np.random.Generator, factor: float
) -> tuple[pa.Table, pa.Table, int]:
    """Keep each win with probability ``factor``; the others are lost at the same time."""
    won = np.flatnonzero(pc.equal(outcomes["stage"], "won").to_numpy(zero_copy_only=False))
    lost = won[rng.random(won.shape[0]) >= factor]
    flip = np.zeros(outcomes.num_rows, dtype=bool)
    flip[lost] = True
    mask = pa.array(flip)
    stage = pc.if_else(mask, "lost", outcomes["stage"])
    amount = pc.if_else(mask, pa.scalar(None, pa.float64()), outcomes["amount"])
    outcomes = outcomes.set_column(1, "stage", stage).set_column(3, "amount", amount)
    propensity = pc.multiply(latent["propensity"], factor)
    latent = latent.set_column(3, "propensity", propensity)
    return outcomes, latent, int(lost.shape[0])


def _us(column: pa.ChunkedArray | pa.Array) -> pa.ChunkedArray:
    """Microseconds since the epoch of a UTC timestamp column."""
    return pc.cast(pc.cast(column, pa.timestamp("us", tz="UTC")), pa.int64())


def _iso_us(us: int) -> str:
    return datetime.fromtimestamp(us / _US, UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


# --- the replay ---------------------------------------------------------------------------------
def parse_ages(text: str, *, offsets: Sequence[int] = (0, 7, 30, 60)) -> tuple[int, ...]:
    """Scoring ages in days: ``"0,7,30,60"``, or ``"weekly"`` (every 7 days up to the largest
    of ``offsets``, the training snapshots' ages)."""
    if text.strip().lower() == "weekly":
        return tuple(range(0, max(offsets) + 1, 7))
    try:
        ages = sorted({int(part) for part in text.split(",") if part.strip()})
    except ValueError as exc:
        raise ConfigError(
            f"ages: expected whole days such as 0,7,30,60 or 'weekly', got {text!r}"
        ) from exc
    if not ages or ages[0] < 0:
        raise ConfigError(f"ages: expected days of 0 or more, got {text!r}")
    return tuple(ages)


def scoring_schedule(
    created_s: np.ndarray, closed_s: np.ndarray, *, ages: Sequence[int], end_s: int
) -> tuple[np.ndarray, np.ndarray]:
    """Every (lead, as_of) to score, in time order: at each age while the lead is open (not won
    or lost by then; ``closed_s`` is inf for an open lead) and before the period's end. Returns
    lead positions and as_of, in epoch seconds."""
    n = created_s.shape[0]
    lead = np.repeat(np.arange(n), len(ages))
    as_of = created_s[lead] + np.tile(np.asarray(ages, dtype=np.int64) * _DAY_S, n)
    keep = (as_of < end_s) & (as_of < closed_s[lead])
    lead, as_of = lead[keep], as_of[keep]
    order = np.lexsort((lead, as_of))
    return lead[order], as_of[order]


@dataclass(frozen=True)
class _Replayed:
    """A period as the replay reads it; times in epoch seconds, outcomes in time order."""

    lead_ids: list[str]
    created_s: np.ndarray
    attributes: list[dict[str, Any]]
    event_start: np.ndarray  # per lead, its first row in the event arrays (and one past the end)
    event_ts: np.ndarray  # sorted by (lead, ts)
    event_type: list[str]
    outcomes: pa.Table  # sorted by (ts, lead_id)
    outcome_ts: np.ndarray
    closed_s: np.ndarray  # per lead: first won or lost, inf if none
    start_s: int
    end_s: int


def _read_period(folder: Path) -> _Replayed:
    manifest = folder / "period.json"
    if not manifest.exists():
        raise ConfigError(
            f"{folder}: no period.json; write the period with `predictive-scoring simulate`"
        )
    meta = json.loads(manifest.read_text())
    leads = pq.read_table(folder / "leads.parquet")
    ids = leads["lead_id"].to_pylist()
    created = _seconds(leads["created_at"])
    others = [c for c in leads.column_names if c not in ("lead_id", "created_at")]
    columns = {c: leads[c].to_pylist() for c in others}
    attributes = [
        {c: columns[c][i] for c in others if columns[c][i] is not None} for i in range(len(ids))
    ]
    index = pd.Index(ids)

    events = pq.read_table(folder / "events.parquet", columns=["lead_id", "ts", "event_type"])
    lead_of = index.get_indexer(events["lead_id"].to_pylist())
    if (lead_of < 0).any():
        raise ConfigError(f"{folder}/events.parquet: events of leads not in leads.parquet")
    ts = _seconds(events["ts"])
    order = np.lexsort((ts, lead_of))
    types = events["event_type"].take(pa.array(order)).to_pylist()

    outcomes = (
        pq.read_table(folder / "outcomes.parquet")
        .select(list(OUTCOMES_SCHEMA.names))
        .sort_by([("ts", "ascending"), ("lead_id", "ascending")])
    )
    outcome_ts = _seconds(outcomes["ts"])
    closing = pc.is_in(outcomes["stage"], pa.array(["won", "lost"])).to_numpy(zero_copy_only=False)
    closed = np.full(len(ids), np.inf)
    owner = index.get_indexer(outcomes["lead_id"].to_pylist())
    np.minimum.at(closed, owner[closing], outcome_ts[closing].astype(np.float64))
    return _Replayed(
        lead_ids=ids,
        created_s=created,
        attributes=attributes,
        event_start=np.searchsorted(lead_of[order], np.arange(len(ids) + 1), side="left"),
        event_ts=ts[order],
        event_type=types,
        outcomes=outcomes,
        outcome_ts=outcome_ts,
        closed_s=closed,
        start_s=int(pd.Timestamp(meta["start"]).timestamp()),
        end_s=int(pd.Timestamp(meta["end"]).timestamp()),
    )


def _seconds(column: pa.ChunkedArray) -> np.ndarray:
    """Whole epoch seconds (floored), as the service reads times."""
    return np.asarray(_us(column).to_numpy() // _US, dtype=np.int64)


def _iso_seconds(seconds: np.ndarray) -> list[str]:
    text = np.datetime_as_string(np.asarray(seconds, dtype="datetime64[s]"), unit="s")
    return [f"{t}Z" for t in text.tolist()]


def _offset_seconds(end_s: int, *, until: datetime | None) -> int:
    """Whole weeks (weekdays kept) that move the period's end to ``until`` or just before it
    (default: the start of today, UTC, so the period ends yesterday)."""
    now = datetime.now(UTC)
    if until is None:
        until = now.replace(hour=0, minute=0, second=0, microsecond=0)
    elif until.tzinfo is None:
        until = until.replace(tzinfo=UTC)
    if until > now:
        raise ConfigError(
            f"the replay must end in the past (the service refuses future times), got {until}"
        )
    return math.floor((int(until.timestamp()) - end_s) / _WEEK_S) * _WEEK_S


@dataclass(frozen=True)
class _Step:
    kind: Literal["score", "outcomes"]
    rows: range | list[int]  # schedule rows or outcome rows


def _plan(
    lead: np.ndarray, as_of: np.ndarray, outcome_ts: np.ndarray, *, batch_size: int
) -> list[_Step]:
    """Score batches in time order (a lead at most once per batch); after each, the outcomes
    whose time the batch's latest as_of has reached; the rest at the end."""
    steps: list[_Step] = []
    posted = 0

    def flush(clock: float) -> None:
        nonlocal posted
        due = int(np.searchsorted(outcome_ts, clock, side="right"))
        for lo in range(posted, due, batch_size):
            steps.append(_Step("outcomes", range(lo, min(lo + batch_size, due))))
        posted = max(posted, due)

    batch: list[int] = []
    members: set[int] = set()
    for row, i in enumerate(lead.tolist()):
        if len(batch) == batch_size or i in members:
            steps.append(_Step("score", batch))
            flush(float(as_of[batch[-1]]))
            batch, members = [], set()
        batch.append(row)
        members.add(i)
    if batch:
        steps.append(_Step("score", batch))
        flush(float(as_of[batch[-1]]))
    flush(math.inf)
    return steps


class _Pacer:
    """At most ``rate`` requests per second: request i starts no earlier than i / rate."""

    def __init__(self, rate: float) -> None:
        self.rate = rate
        self._start = time.monotonic()
        self._sent = 0

    def wait(self) -> None:
        delay = self._start + self._sent / self.rate - time.monotonic()
        if delay > 0:
            time.sleep(delay)
        self._sent += 1


def replay(
    period_dir: Path,
    *,
    url: str,
    api_key: str | None,
    outcome_key: str | None = None,
    rate: float = 10.0,
    batch_size: int = 100,
    ages: Sequence[int] = (0, 7, 30, 60),
    until: datetime | None = None,
    timeout: float = 30.0,
    progress: bool = False,
    transport: httpx.BaseTransport | None = None,
) -> ReplaySummary:
    """Replay a simulated period through the service at ``url``.

    Each lead is scored (``POST /v1/score/batch``) at every age in ``ages`` while it is open,
    with the events it had by then; each outcome (``POST /v1/outcomes``) is posted once the
    replay's simulated clock has passed its time. The period is mapped onto real time by whole
    weeks so that it ends before ``until`` (default: today, so the last day replayed is
    yesterday); no time sent lies in the future or before the lead's creation. Requests go at
    most ``rate`` per second, ``batch_size`` leads or outcomes each; a failed one is retried
    a few times, then counted as an error. ``<period_dir>/replay/outcomes.parquet`` receives
    every outcome due at its replayed time, in the data contract's shape: when the service has
    no outcomes endpoint (404) it is the only copy, ready for ``outcomes import``.
    """
    if rate <= 0:
        raise ConfigError(f"rate must be positive (requests per second), got {rate}")
    if batch_size < 1:
        raise ConfigError(f"batch size must be at least 1, got {batch_size}")
    started = time.monotonic()
    folder = Path(period_dir)
    period = _read_period(folder)
    offset = _offset_seconds(period.end_s, until=until)
    lead, as_of = scoring_schedule(
        period.created_s, period.closed_s, ages=ages, end_s=period.end_s
    )
    steps = _plan(lead, as_of, period.outcome_ts, batch_size=batch_size)
    summary = ReplaySummary(
        url=url,
        scorings_planned=int(lead.shape[0]),
        outcomes_due=period.outcomes.num_rows,
        offset_days=offset // _DAY_S,
        start=_iso_us((period.start_s + offset) * _US),
        end=_iso_us((period.end_s + offset) * _US),
        outcomes_file=str(_write_replayed_outcomes(folder, period.outcomes, offset=offset)),
    )

    created_iso = _iso_seconds(period.created_s + offset)
    as_of_iso = _iso_seconds(as_of + offset)
    event_iso = _iso_seconds(period.event_ts + offset)
    outcome_iso = _iso_seconds(period.outcome_ts + offset)
    outcome_ids = period.outcomes["lead_id"].to_pylist()
    outcome_stages = period.outcomes["stage"].to_pylist()
    outcome_reasons = period.outcomes["reason"].to_pylist()

    def score_body(rows: Sequence[int]) -> dict[str, Any]:
        leads = []
        for row in rows:
            i = int(lead[row])
            lo, hi = int(period.event_start[i]), int(period.event_start[i + 1])
            # the lead's events before as_of: what the CRM knew when it asked for the score
            cut = lo + int(np.searchsorted(period.event_ts[lo:hi], as_of[row], side="left"))
            leads.append(
                {
                    "lead_id": period.lead_ids[i],
                    "created_at": created_iso[i],
                    "as_of": as_of_iso[row],
                    "attributes": period.attributes[i],
                    "events": [
                        {"event_type": period.event_type[k], "ts": event_iso[k]}
                        for k in range(lo, cut)
                    ],
                }
            )
        return {"leads": leads}

    def outcome_body(rows: Sequence[int]) -> dict[str, Any]:
        items = []
        for k in rows:
            item = {"lead_id": outcome_ids[k], "stage": outcome_stages[k], "ts": outcome_iso[k]}
            if outcome_reasons[k] is not None:
                item["reason"] = outcome_reasons[k]
            items.append(item)
        return {"outcomes": items}

    scored: set[str] = set()
    stages: Counter[str] = Counter()
    outcome_key = outcome_key or api_key
    with (
        httpx.Client(base_url=url, timeout=timeout, transport=transport) as client,
        _progress_bar(enabled=progress, total=len(steps)) as advance,
    ):
        _wait_ready(client, timeout=timeout)
        sender = _Sender(client, pacer=_Pacer(rate), summary=summary)
        for step in steps:
            if step.kind == "score":
                answer = sender.post("/v1/score/batch", score_body(step.rows), key=api_key)
                if answer is not None:
                    results = answer.get("results", [])
                    summary.scorings += len(results)
                    scored.update(str(r["lead_id"]) for r in results)
                    stages.update(str(r.get("stage")) for r in results)
                    summary.warnings += sum(len(r.get("warnings") or []) for r in results)
            elif summary.outcomes_endpoint:
                answer = sender.post(
                    "/v1/outcomes", outcome_body(step.rows), key=outcome_key, optional=True
                )
                if answer is _MISSING:
                    summary.outcomes_endpoint = False
                    logger.warning(
                        "%s has no POST /v1/outcomes: the outcomes are only in %s",
                        url,
                        summary.outcomes_file,
                    )
                elif answer is not None:
                    summary.outcomes_posted += len(step.rows)
            advance()
    summary.leads = len(scored)
    summary.stages = dict(sorted(stages.items()))
    summary.seconds = round(time.monotonic() - started, 3)
    (folder / "replay" / "replay.json").write_text(json.dumps(summary.to_dict(), indent=2) + "\n")
    logger.info(
        "replayed %s..%s: %d requests (%d errors), %d scorings of %d leads, %d of %d outcomes "
        "posted, in %.1f s",
        summary.start,
        summary.end,
        summary.requests,
        summary.errors,
        summary.scorings,
        summary.leads,
        summary.outcomes_posted,
        summary.outcomes_due,
        summary.seconds,
    )
    return summary


def _write_replayed_outcomes(folder: Path, outcomes: pa.Table, *, offset: int) -> Path:
    """The outcomes due, at their replayed (real) times as sent (whole seconds), in the data
    contract's shape."""
    shifted = pa.array((_seconds(outcomes["ts"]) + offset) * _US)
    table = outcomes.set_column(
        outcomes.schema.get_field_index("ts"),
        "ts",
        pc.cast(shifted, OUTCOMES_SCHEMA.field("ts").type),
    )
    path = folder / "replay" / "outcomes.parquet"
    path.parent.mkdir(exist_ok=True)
    pq.write_table(table, path)
    return path


_MISSING: Any = object()


class _Sender:
    """Posts JSON at the pacer's rate, retries what may pass on a second try, counts errors."""

    def __init__(self, client: httpx.Client, *, pacer: _Pacer, summary: ReplaySummary) -> None:
        self.client = client
        self.pacer = pacer
        self.summary = summary
        self.failures = 0

    def post(
        self, path: str, body: dict[str, Any], *, key: str | None, optional: bool = False
    ) -> Any:
        """The answer's JSON, None after an error, or _MISSING for an optional route's 404."""
        headers = {"X-API-Key": key} if key else {}
        problem = ""
        for attempt in range(_ATTEMPTS):
            self.pacer.wait()
            self.summary.requests += 1
            try:
                response = self.client.post(path, json=body, headers=headers)
            except httpx.TransportError as exc:
                problem = f"{type(exc).__name__}: {exc}"
            else:
                if response.status_code == 200:
                    self.failures = 0
                    return response.json()
                if optional and response.status_code in (404, 405):
                    return _MISSING
                if response.status_code in (401, 403):
                    raise ReplayError(
                        f"POST {path} refused the key ({response.status_code}: "
                        f"{response.text[:200]}); pass a key the service accepts (--api-key; "
                        "for outcomes --outcome-key, a key in PREDICTIVE_SCORING_OUTCOME_KEYS "
                        "or PREDICTIVE_SCORING_ADMIN_KEYS)"
                    )
                problem = f"{response.status_code}: {response.text[:300]}"
                if response.status_code not in _RETRY_STATUS:
                    break
            if attempt + 1 < _ATTEMPTS:
                time.sleep(0.5 * 2**attempt)
        self.summary.errors += 1
        self.failures += 1
        logger.warning("POST %s failed: %s", path, problem)
        if self.failures >= _MAX_CONSECUTIVE_FAILURES:
            raise ReplayError(
                f"{self.failures} requests in a row failed at {self.client.base_url}; the "
                f"last: {problem}"
            )
        return None


def _wait_ready(client: httpx.Client, *, timeout: float) -> None:
    """Wait (boundedly) until GET /readyz answers 200: a model is loaded."""
    deadline = time.monotonic() + timeout
    last = ""
    while True:
        try:
            response = client.get("/readyz")
        except httpx.TransportError as exc:
            last = f"{type(exc).__name__}: {exc}"
        else:
            if response.status_code == 200:
                return
            last = f"{response.status_code}: {response.text[:200]}"
        if time.monotonic() >= deadline:
            raise ReplayError(f"{client.base_url} is not ready after {timeout:g} s ({last})")
        time.sleep(0.5)


@contextmanager
def _progress_bar(*, enabled: bool, total: int) -> Iterator[Callable[[], None]]:
    """A rich progress bar over the requests when enabled, a no-op otherwise."""
    if not enabled:
        yield lambda: None
        return
    from rich.progress import Progress

    with Progress(transient=False) as bar:
        task = bar.add_task("replaying", total=total)
        yield lambda: bar.advance(task)
