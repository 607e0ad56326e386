"""Demo data: a simulated B2B funnel with known ground truth (latent fit, intent, propensity).

Leads carry firmographics that drive a latent *fit*; a latent *intent* drives engagement, which
decays after creation, comes back in bursts, ramps up in the weeks before a funnel stage, and is
mixed with noise and bot-like email opens. Output follows the data contract (DESIGN section 2).
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from functools import cache
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from predictive_scoring.config import GenerateParams
from predictive_scoring.errors import ConfigError
from predictive_scoring.io import atomic_dir

__all__ = [
    "EVENTS_SCHEMA",
    "EVENT_TYPES",
    "LATENT_SCHEMA",
    "LEADS_SCHEMA",
    "OUTCOMES_SCHEMA",
    "generate_demo",
]

logger = logging.getLogger(__name__)

_US_PER_DAY = 86_400_000_000
_TS = pa.timestamp("us", tz="UTC")

LEADS_SCHEMA = pa.schema(
    [
        ("lead_id", pa.string()),
        ("created_at", _TS),
        ("industry", pa.string()),
        ("employees", pa.int64()),
        ("annual_revenue", pa.float64()),
        ("country", pa.string()),
        ("job_title", pa.string()),
        ("lead_source", pa.string()),
        ("email", pa.string()),
    ]
)
EVENTS_SCHEMA = pa.schema(
    [
        ("lead_id", pa.string()),
        ("ts", _TS),
        ("event_type", pa.string()),
        ("channel", pa.string()),
        ("content_id", pa.string()),
        ("campaign", pa.string()),
    ]
)
OUTCOMES_SCHEMA = pa.schema(
    [
        ("lead_id", pa.string()),
        ("stage", pa.string()),
        ("ts", _TS),
        ("amount", pa.float64()),
    ]
)
LATENT_SCHEMA = pa.schema(
    [
        ("lead_id", pa.string()),
        ("fit", pa.float64()),
        ("intent", pa.float64()),
        ("propensity", pa.float64()),
    ]
)

EVENT_TYPES: tuple[str, ...] = (
    "web_visit",
    "pricing_page_view",
    "content_download",
    "webinar_registered",
    "webinar_attended",
    "email_open",
    "email_click",
    "form_submit",
    "demo_request",
    "contact_sales",
    "trade_show_visit",
)
_ET = {name: i for i, name in enumerate(EVENT_TYPES)}

# Event-type mixes per engagement component, in EVENT_TYPES order.
_MIX_BROWSE = np.array([0.36, 0.04, 0.09, 0.05, 0.025, 0.24, 0.08, 0.04, 0.012, 0.006, 0.01])
_MIX_HOT = np.array([0.22, 0.13, 0.10, 0.06, 0.06, 0.12, 0.11, 0.07, 0.06, 0.05, 0.02])
_MIX_NOISE = np.array([0.38, 0.02, 0.03, 0.01, 0.004, 0.5, 0.04, 0.01, 0.003, 0.002, 0.001])

_STAGES = ("mql", "sql", "opportunity", "won", "lost")

# (name, probability, fit effect)
_INDUSTRIES = (
    ("Software", 0.17, 0.55),
    ("Financial Services", 0.10, 0.3),
    ("Healthcare", 0.09, 0.0),
    ("Manufacturing", 0.11, -0.15),
    ("Retail", 0.09, -0.1),
    ("Education", 0.07, -0.5),
    ("Government", 0.05, -0.6),
    ("Media", 0.06, 0.2),
    ("Professional Services", 0.10, 0.25),
    ("Telecommunications", 0.05, 0.1),
    ("Non-profit", 0.04, -0.6),
    ("Real Estate", 0.07, -0.2),
)
# (spellings, probability, fit effect)
_COUNTRIES = (
    (("US", "USA", "United States"), 0.42, 0.2),
    (("UK", "United Kingdom"), 0.10, 0.2),
    (("DE", "Germany"), 0.08, 0.1),
    (("FR",), 0.05, 0.0),
    (("CA", "Canada"), 0.06, 0.1),
    (("AU",), 0.04, 0.1),
    (("IN", "India"), 0.09, -0.4),
    (("BR",), 0.05, -0.3),
    (("NL",), 0.03, 0.1),
    (("ES",), 0.03, -0.1),
    (("SG",), 0.02, 0.1),
    (("MX",), 0.03, -0.3),
)
# (name, probability, fit effect, intent effect)
_SOURCES = (
    ("organic_search", 0.21, 0.0, 0.15),
    ("paid_search", 0.14, -0.15, 0.05),
    ("referral", 0.07, 0.5, 0.3),
    ("webinar", 0.10, 0.2, 0.2),
    ("trade_show", 0.07, 0.1, 0.0),
    ("outbound", 0.12, -0.25, -0.4),
    ("partner", 0.05, 0.4, 0.15),
    ("social", 0.12, -0.4, -0.1),
    ("content_syndication", 0.12, -0.3, -0.3),
)
_INBOUND = ("organic_search", "paid_search", "social", "content_syndication", "referral")

# Seniority: (probability, fit effect, title templates). {F}/{f}: function, {R}/{r}: role.
_SENIORITY = (
    (0.05, 0.5, ()),  # C-level: titles per function below
    (
        0.07,
        0.7,
        ("VP of {F}", "VP, {F}", "Vice President of {F}", "vp {f}", "SVP {F}", "V.P. {F}"),
    ),
    (
        0.12,
        0.6,
        ("Director of {F}", "{F} Director", "Dir. {F}", "director, {f}", "Sr. Director, {F}"),
    ),
    (0.06, 0.5, ("Head of {F}", "head of {f}", "{F} Lead")),
    (0.25, 0.2, ("{F} Manager", "{f} mgr", "Manager, {F}", "Sr. {F} Manager", "{F} Mgr.")),
    (0.15, -0.15, ("Sr. {R}", "Senior {R}", "{R} II", "Lead {R}", "sr {r}", "Principal {R}")),
    (0.25, -0.35, ("{R}", "{r}", "Jr. {R}", "{R} I")),
    (
        0.05,
        -1.2,
        ("Student", "Intern", "{F} Intern", "student", "Graduate Student", "intern - {f}"),
    ),
)
# Function: (probability, fit effect, names, individual-contributor roles, C-level titles)
_FUNCTIONS = (
    (
        0.25,
        0.5,
        ("Marketing", "Mktg", "Demand Generation", "Growth", "Digital Marketing"),
        ("Marketing Specialist", "Marketing Coordinator", "Content Writer", "SEO Specialist"),
        ("CMO", "Chief Marketing Officer", "cmo"),
    ),
    (
        0.17,
        0.3,
        ("Sales", "Business Development", "Inside Sales"),
        ("Account Executive", "SDR", "Sales Representative", "BDR", "account exec"),
        ("CRO", "Chief Revenue Officer", "Chief Sales Officer"),
    ),
    (
        0.08,
        0.45,
        ("Revenue Operations", "RevOps", "Marketing Operations", "Sales Ops", "Operations"),
        ("Operations Analyst", "RevOps Analyst", "Marketing Ops Specialist"),
        ("COO", "Chief Operating Officer"),
    ),
    (
        0.05,
        0.15,
        ("Strategy", "Business Strategy", "General Management"),
        ("Business Analyst", "Strategy Analyst", "Consultant"),
        ("CEO", "Founder", "Co-Founder & CEO", "Owner", "President", "ceo"),
    ),
    (
        0.12,
        -0.35,
        ("Engineering", "Software Engineering", "R&D"),
        ("Software Engineer", "Developer", "software dev", "Data Engineer", "Engineer"),
        ("CTO", "Chief Technology Officer", "cto"),
    ),
    (
        0.08,
        -0.05,
        ("IT", "Information Technology", "I.T.", "IT Infrastructure"),
        ("Systems Administrator", "IT Specialist", "sysadmin", "Network Engineer"),
        ("CIO", "Chief Information Officer"),
    ),
    (
        0.06,
        -0.1,
        ("Finance", "Accounting", "FP&A"),
        ("Accountant", "Financial Analyst", "Controller"),
        ("CFO", "Chief Financial Officer", "cfo"),
    ),
    (
        0.06,
        -0.45,
        ("HR", "Human Resources", "People", "Talent Acquisition"),
        ("Recruiter", "HR Generalist", "HR Coordinator"),
        ("CHRO", "Chief People Officer"),
    ),
    (
        0.07,
        0.0,
        ("Product", "Product Management", "Product Marketing"),
        ("Product Owner", "Product Analyst", "UX Designer"),
        ("CPO", "Chief Product Officer"),
    ),
    (
        0.06,
        -0.25,
        ("Customer Success", "Support", "Legal", "Procurement"),
        ("Customer Success Rep", "Support Agent", "Paralegal", "Buyer"),
        ("Owner", "Managing Partner"),
    ),
)
_FREE_MAIL = ("gmail.com", "yahoo.com", "hotmail.com", "outlook.com", "icloud.com", "aol.com")
_FIRST = (
    "jane", "john", "maria", "wei", "aisha", "carlos", "emma", "liam", "noah", "olivia", "raj",
    "sofia", "lucas", "mia", "yuki", "ahmed", "anna", "david", "sara", "tom", "lena", "omar",
    "chloe", "ivan", "priya", "ben", "nina", "paul", "fatima", "leo",
)  # fmt: skip
_LAST = (
    "doe", "smith", "garcia", "chen", "khan", "silva", "muller", "brown", "rossi", "patel",
    "kim", "nguyen", "martin", "lopez", "schmidt", "wilson", "tanaka", "novak", "costa", "berg",
)  # fmt: skip
_COMPANY_A = (
    "acme", "globex", "initech", "umbrella", "stark", "wayne", "hooli", "vandelay", "soylent",
    "cyberdyne", "tyrell", "wonka", "aperture", "massive", "blue", "north", "bright", "nimbus",
    "vertex", "quantum", "apex", "summit", "pioneer", "atlas", "orbit", "lumen", "cedar", "falcon",
)  # fmt: skip
_COMPANY_B = ("", "-corp", "-labs", "-tech", "-group", "soft", "-systems", "-data", "io", "-inc")
_TLD = (".com", ".com", ".com", ".io", ".de", ".co.uk", ".net", ".fr")

_MONTH_FACTOR = np.array([1.3, 1.2, 1.2, 1.0, 1.0, 0.95, 0.85, 0.6, 1.25, 1.1, 1.0, 0.6])
_WEEKDAY_FACTOR = np.array([1.1, 1.1, 1.05, 1.0, 0.85, 0.3, 0.25])  # Monday first

# Standardisation of the raw fit score (measured once on a large sample; keeps chunks identical).
_FIT_MEAN = 0.367
_FIT_SD = 0.978
_PROPENSITY_BIAS = -3.9
_FIT_WEIGHT = 2.4
_INTENT_WEIGHT = 2.0


@dataclass(frozen=True)
class _Period:
    start_us: int
    end_us: int
    day_us: np.ndarray  # start of each day (µs), for lead creation
    day_p: np.ndarray  # creation probability per day
    month_starts_us: np.ndarray  # month boundaries, for campaign names
    month_names: tuple[str, ...]


@dataclass(frozen=True)
class _Chunk:
    leads: pa.Table
    events: pa.Table
    outcomes: pa.Table
    latent: pa.Table
    n_won: int


def generate_demo(
    out_dir: Path, params: GenerateParams, *, progress: bool = False
) -> dict[str, float]:
    """Simulate a B2B funnel into out_dir/{leads,events,outcomes,latent}.parquet.

    Written in chunks of ``params.chunk_leads`` leads into a temporary directory that replaces
    ``out_dir`` only once complete. Returns a summary (counts, rates, seconds).
    """
    started = time.perf_counter()
    out_dir = Path(out_dir)
    period = _make_period(params)
    n_chunks = -(-params.n_leads // params.chunk_leads)
    counts = {"n_leads": 0, "n_events": 0, "n_outcomes": 0, "n_won": 0}
    propensity_sum = 0.0
    with atomic_dir(out_dir) as tmp:
        writers = {
            "leads": pq.ParquetWriter(tmp / "leads.parquet", LEADS_SCHEMA),
            "events": pq.ParquetWriter(tmp / "events.parquet", EVENTS_SCHEMA),
            "outcomes": pq.ParquetWriter(tmp / "outcomes.parquet", OUTCOMES_SCHEMA),
            "latent": pq.ParquetWriter(tmp / "latent.parquet", LATENT_SCHEMA),
        }
        try:
            with _progress_bar(enabled=progress, total=n_chunks) as advance:
                for i in range(n_chunks):
                    first = i * params.chunk_leads
                    n = min(params.chunk_leads, params.n_leads - first)
                    rng = np.random.default_rng([params.seed, i])
                    chunk = _simulate_chunk(
                        rng=rng, first=first, n=n, period=period, params=params
                    )
                    writers["leads"].write_table(chunk.leads)
                    writers["events"].write_table(chunk.events)
                    writers["outcomes"].write_table(chunk.outcomes)
                    writers["latent"].write_table(chunk.latent)
                    counts["n_leads"] += chunk.leads.num_rows
                    counts["n_events"] += chunk.events.num_rows
                    counts["n_outcomes"] += chunk.outcomes.num_rows
                    counts["n_won"] += chunk.n_won
                    propensity_sum += float(pc.sum(chunk.latent["propensity"]).as_py())
                    advance()
        finally:
            for writer in writers.values():
                writer.close()
    n_leads = counts["n_leads"]
    summary = {
        "n_leads": float(n_leads),
        "n_events": float(counts["n_events"]),
        "n_outcomes": float(counts["n_outcomes"]),
        "events_per_lead": counts["n_events"] / n_leads,
        "conversion_rate": counts["n_won"] / n_leads,
        "mean_propensity": propensity_sum / n_leads,
        "seconds": time.perf_counter() - started,
    }
    logger.info(
        "generated %d leads, %d events, %d outcomes (%.1f%% won) into %s in %.1f s",
        n_leads,
        counts["n_events"],
        counts["n_outcomes"],
        100 * summary["conversion_rate"],
        out_dir,
        summary["seconds"],
    )
    return summary


@contextmanager
def _progress_bar(*, enabled: bool, total: int) -> Iterator[Callable[[], None]]:
    """A rich progress bar over chunks when enabled, a no-op otherwise."""
    if not enabled:
        yield lambda: None
        return
    from rich.progress import Progress

    with Progress(transient=False) as bar:
        task = bar.add_task("simulating leads", total=total)
        yield lambda: bar.advance(task)


def _make_period(params: GenerateParams) -> _Period:
    start = _period_start(params)
    return _period(start, start + pd.DateOffset(months=params.months))


def _period_start(params: GenerateParams) -> pd.Timestamp:
    try:
        start = pd.Timestamp(params.start)
    except ValueError as exc:
        raise ConfigError(
            f"generate.start: cannot parse {params.start!r} as a date; use YYYY-MM-DD"
        ) from exc
    return start.tz_localize("UTC") if start.tzinfo is None else start.tz_convert("UTC")


def _days(start: pd.Timestamp, end: pd.Timestamp) -> pd.DatetimeIndex:
    days = pd.date_range(start.normalize(), end, freq="D", inclusive="left")
    return days[days >= start.normalize()]


def _day_weights(days: pd.DatetimeIndex, origin: pd.Timestamp) -> np.ndarray:
    """Relative lead volume per day: season, weekday, and 20% a year of growth since origin."""
    months_since = (days.year - origin.year) * 12 + days.month - origin.month
    return np.asarray(
        _MONTH_FACTOR[days.month.to_numpy() - 1]
        * _WEEKDAY_FACTOR[days.day_of_week.to_numpy()]
        * (1.0 + 0.2 * months_since.to_numpy() / 12.0)
    )


def _period(
    start: pd.Timestamp,
    end: pd.Timestamp,
    *,
    origin: pd.Timestamp | None = None,
    until: pd.Timestamp | None = None,
) -> _Period:
    """Leads created in [start, end), growth counted from origin (default start); their events
    and outcomes simulated until ``until`` (default end), so a later until holds their future."""
    until = end if until is None else until
    days = _days(start, end)
    weight = _day_weights(days, start if origin is None else origin)
    month_starts = pd.date_range(start.normalize().replace(day=1), until, freq="MS")
    return _Period(
        start_us=_to_us(start),
        end_us=_to_us(until),
        day_us=np.array([_to_us(d) for d in days], dtype=np.int64),
        day_p=weight / weight.sum(),
        month_starts_us=np.array([_to_us(m) for m in month_starts], dtype=np.int64),
        month_names=tuple(m.strftime("%Y-%m") for m in month_starts),
    )


def _to_us(ts: pd.Timestamp) -> int:
    return int(ts.value // 1000)


@cache
def _title_table() -> tuple[tuple[str, ...], np.ndarray, np.ndarray]:
    """All job-title spellings, with for each (seniority, function) the offset and count."""
    titles: list[str] = []
    offsets = np.zeros((len(_SENIORITY), len(_FUNCTIONS)), dtype=np.int64)
    sizes = np.zeros_like(offsets)
    for s, (_, _, templates) in enumerate(_SENIORITY):
        for f, (_, _, names, roles, chiefs) in enumerate(_FUNCTIONS):
            offsets[s, f] = len(titles)
            if s == 0:
                variants = list(chiefs)
            else:
                variants = []
                for template in templates:
                    if "{R}" in template or "{r}" in template:
                        variants += [template.format(R=r, r=r.lower()) for r in roles]
                    else:
                        variants += [template.format(F=n, f=n.lower()) for n in names]
            titles += variants
            sizes[s, f] = len(variants)
    return tuple(titles), offsets, sizes


def _dict_array(codes: np.ndarray, values: tuple[str, ...] | list[str]) -> pa.Array:
    """Plain string array from integer codes into values; negative codes are null."""
    indices = pa.array(codes.astype(np.int32), mask=codes < 0)
    return pa.DictionaryArray.from_arrays(indices, pa.array(values, pa.string())).cast(pa.string())


def _choice(rng: np.random.Generator, p: np.ndarray, size: int) -> np.ndarray:
    return rng.choice(len(p), size=size, p=p / p.sum())


def _with_missing(rng: np.random.Generator, codes: np.ndarray, rate: float) -> np.ndarray:
    return np.where(rng.random(codes.shape[0]) < rate, -1, codes)


def _simulate_chunk(
    *,
    rng: np.random.Generator,
    first: int,
    n: int,
    period: _Period,
    params: GenerateParams,
    sources: tuple[tuple[str, float, float, float], ...] = _SOURCES,
) -> _Chunk:
    """Simulate n leads (ids first+1 ... first+n) with their events, outcomes and latent truth.

    ``sources`` (name, probability, fit effect, intent effect) is the lead-source mix.
    """
    lead_ids = pa.array([f"L{i:08d}" for i in range(first + 1, first + n + 1)], pa.string())

    # --- creation time: seasonal day, business-hours time of day
    day = rng.choice(len(period.day_p), size=n, p=period.day_p)
    hour = np.clip(rng.normal(14.0, 3.5, n), 0.0, 23.999)
    created = period.day_us[day] + (hour * 3_600_000_000).astype(np.int64)
    created = np.clip(created, period.start_us, period.end_us - _US_PER_DAY)
    horizon = (period.end_us - created) / _US_PER_DAY  # days until the end of the data

    # --- firmographics and fit
    industry = _choice(rng, np.array([x[1] for x in _INDUSTRIES]), n)
    fit_raw = np.array([x[2] for x in _INDUSTRIES])[industry]
    log_emp = np.clip(rng.normal(2.2, 0.9, n), 0.0, 5.3)
    employees = np.maximum(1, np.round(10**log_emp)).astype(np.int64)
    fit_raw += 0.45 - 0.22 * (log_emp - 2.9) ** 2
    revenue = employees * np.exp(rng.normal(np.log(150_000.0), 0.6, n))
    country_group = _choice(rng, np.array([x[1] for x in _COUNTRIES]), n)
    fit_raw += np.array([x[2] for x in _COUNTRIES])[country_group]
    seniority = _choice(rng, np.array([x[0] for x in _SENIORITY]), n)
    function = _choice(rng, np.array([x[0] for x in _FUNCTIONS]), n)
    fit_raw += np.array([x[1] for x in _SENIORITY])[seniority]
    fit_raw += np.array([x[1] for x in _FUNCTIONS])[function]
    source = _choice(rng, np.array([x[1] for x in sources]), n)
    fit_raw += np.array([x[2] for x in sources])[source]
    free_mail = rng.random(n) < np.clip(0.45 - 0.1 * log_emp, 0.03, 0.5)
    fit_raw += np.where(free_mail, -0.45, 0.1)
    fit = (fit_raw + rng.normal(0.0, 0.3, n) - _FIT_MEAN) / _FIT_SD

    intent = 1.5 * np.array([x[3] for x in sources])[source] + rng.normal(0.0, 1.0, n)
    propensity = 1.0 / (
        1.0 + np.exp(-(_PROPENSITY_BIAS + _FIT_WEIGHT * fit + _INTENT_WEIGHT * intent))
    )
    won = rng.random(n) < propensity

    # --- funnel timeline (days after creation; may run past the end, then it is cut off)
    stage_t = _simulate_stages(rng=rng, n=n, fit=fit, intent=intent, won=won)

    leads = _leads_table(
        rng=rng,
        lead_ids=lead_ids,
        created=created,
        industry=industry,
        employees=employees,
        revenue=revenue,
        country_group=country_group,
        seniority=seniority,
        function=function,
        source=source,
        source_names=[x[0] for x in sources],
        free_mail=free_mail,
    )
    events = _events_table(
        rng=rng,
        lead_ids=lead_ids,
        created=created,
        horizon=horizon,
        intent=intent,
        source=source,
        source_names=[x[0] for x in sources],
        stage_t=stage_t,
        period=period,
        scale=params.events_per_lead / 50.0,
    )
    outcomes = _outcomes_table(
        rng=rng,
        lead_ids=lead_ids,
        created=created,
        horizon=horizon,
        stage_t=stage_t,
        employees=employees,
    )
    latent = pa.table(
        {"lead_id": lead_ids, "fit": fit, "intent": intent, "propensity": propensity},
        schema=LATENT_SCHEMA,
    )
    n_won = int(np.sum(stage_t[:, 3] < horizon))
    return _Chunk(leads=leads, events=events, outcomes=outcomes, latent=latent, n_won=n_won)


def _simulate_stages(
    *, rng: np.random.Generator, n: int, fit: np.ndarray, intent: np.ndarray, won: np.ndarray
) -> np.ndarray:
    """Days after creation of mql, sql, opportunity, won, lost per lead (inf: never reached)."""
    t = np.full((n, 5), np.inf)
    # Time to the final outcome: faster for high intent.
    final = np.exp(rng.normal(np.log(60.0) - 0.25 * intent, 0.5, n)) + 2.0
    u = np.sort(rng.random((n, 3)), axis=1)
    frac = np.column_stack([0.02 + 0.3 * u[:, 0], 0.3 + 0.35 * u[:, 1], 0.6 + 0.35 * u[:, 2]])
    steps = final[:, None] * frac
    # Non-won leads: how deep they get in the funnel depends on fit and intent.
    depth_score = 0.6 * fit + 0.6 * intent + rng.normal(0.0, 1.0, n)
    p_mql = 1.0 / (1.0 + np.exp(-(depth_score - 0.9)))
    reach = np.zeros(n, dtype=np.int64)  # number of stages reached among mql/sql/opportunity
    r = rng.random((n, 3))
    reach += r[:, 0] < p_mql
    reach += (reach == 1) & (r[:, 1] < 0.45)
    reach += (reach == 2) & (r[:, 2] < 0.5)
    reach = np.where(won, 3, reach)
    for k in range(3):
        t[:, k] = np.where(reach > k, steps[:, k], np.inf)
    t[:, 3] = np.where(won, final, np.inf)
    # Lost: always after an opportunity that is not won; sometimes after mql/sql (disqualified);
    # rarely straight away for a lead that never qualified.
    p_lost = np.array([0.12, 0.55, 0.7, 0.95])[reach]
    lost = ~won & (rng.random(n) < p_lost)
    t[:, 4] = np.where(lost, final, np.inf)
    return t


def _leads_table(
    *,
    rng: np.random.Generator,
    lead_ids: pa.Array,
    created: np.ndarray,
    industry: np.ndarray,
    employees: np.ndarray,
    revenue: np.ndarray,
    country_group: np.ndarray,
    seniority: np.ndarray,
    function: np.ndarray,
    source: np.ndarray,
    source_names: list[str],
    free_mail: np.ndarray,
) -> pa.Table:
    n = created.shape[0]
    # Country spellings: a group code plus a spelling index, flattened.
    spellings = [name for names, _, _ in _COUNTRIES for name in names]
    group_offset = np.cumsum([0] + [len(names) for names, _, _ in _COUNTRIES])[:-1]
    group_size = np.array([len(names) for names, _, _ in _COUNTRIES])
    spelling = np.minimum(
        (rng.random(n) ** 2.5 * group_size[country_group]).astype(np.int64),
        group_size[country_group] - 1,
    )
    country = group_offset[country_group] + spelling

    titles, offsets, sizes = _title_table()
    title_code = offsets[seniority, function] + (
        rng.random(n) * sizes[seniority, function]
    ).astype(np.int64)
    job_title = _dict_array(_with_missing(rng, title_code, 0.12), titles)
    case = rng.random(n)
    job_title = pc.if_else(pa.array(case < 0.12), pc.utf8_lower(job_title), job_title)
    job_title = pc.if_else(pa.array(case > 0.975), pc.utf8_upper(job_title), job_title)
    padded = pc.binary_join_element_wise(" ", job_title, "  ", "")
    job_title = pc.if_else(pa.array((case > 0.5) & (case < 0.53)), padded, job_title)

    first_idx = rng.integers(0, len(_FIRST), n)
    first_name = np.array(_FIRST)[first_idx]
    last_name = np.array(_LAST)[rng.integers(0, len(_LAST), n)]
    initial_last = np.char.add(np.array([f[0] for f in _FIRST])[first_idx], last_name)
    style = rng.random(n)
    local = np.where(
        style < 0.6,
        np.char.add(np.char.add(first_name, "."), last_name),
        np.where(style < 0.85, initial_last, first_name),
    )
    digits = rng.integers(1, 999, n).astype(str)
    local = np.where(free_mail & (rng.random(n) < 0.5), np.char.add(local, digits), local)
    company = np.char.add(
        np.char.add(
            np.array(_COMPANY_A)[rng.integers(0, len(_COMPANY_A), n)],
            np.array(_COMPANY_B)[rng.integers(0, len(_COMPANY_B), n)],
        ),
        np.array(_TLD)[rng.integers(0, len(_TLD), n)],
    )
    domain = np.where(
        free_mail, np.array(_FREE_MAIL)[rng.integers(0, len(_FREE_MAIL), n)], company
    )
    email = np.char.add(np.char.add(local, "@"), domain)
    email_arr = pa.array(email.tolist(), pa.string(), mask=rng.random(n) < 0.06)

    return pa.table(
        {
            "lead_id": lead_ids,
            "created_at": pa.array(created, _TS),
            "industry": _dict_array(
                _with_missing(rng, industry, 0.15), [x[0] for x in _INDUSTRIES]
            ),
            "employees": pa.array(employees, pa.int64(), mask=rng.random(n) < 0.10),
            "annual_revenue": pa.array(revenue, pa.float64(), mask=rng.random(n) < 0.20),
            "country": _dict_array(_with_missing(rng, country, 0.08), spellings),
            "job_title": job_title,
            "lead_source": _dict_array(_with_missing(rng, source, 0.05), source_names),
            "email": email_arr,
        },
        schema=LEADS_SCHEMA,
    )


def _events_table(
    *,
    rng: np.random.Generator,
    lead_ids: pa.Array,
    created: np.ndarray,
    horizon: np.ndarray,
    intent: np.ndarray,
    source: np.ndarray,
    source_names: list[str],
    stage_t: np.ndarray,
    period: _Period,
    scale: float,
) -> pa.Table:
    """Engagement events from five components, each vectorised over leads."""
    n = created.shape[0]
    parts_lead: list[np.ndarray] = []
    parts_t: list[np.ndarray] = []
    parts_type: list[np.ndarray] = []
    n_types = len(EVENT_TYPES)

    def add(lead: np.ndarray, t: np.ndarray, types: np.ndarray) -> None:
        parts_lead.append(lead)
        parts_t.append(t)
        parts_type.append(types)

    def draw_types(lead: np.ndarray, mix: np.ndarray, tilt: float) -> np.ndarray:
        # High-intent leads lean towards the rarer, hotter event types (tilt on log-odds).
        hot = np.log(mix.max() / mix)  # 0 for the commonest type
        hot = hot / hot.max()
        logits = np.log(mix)[None, :] + tilt * intent[:, None] * hot[None, :]
        cdf = np.cumsum(np.exp(logits - logits.max(axis=1, keepdims=True)), axis=1)
        # One sorted array over all leads (row r lives in [r, r + 1]) so one searchsorted
        # draws every event's type in O(events) memory.
        flat = (cdf / cdf[:, -1:] + np.arange(n)[:, None]).ravel()
        u = np.minimum(rng.random(lead.shape[0]), 1.0 - 1e-12)
        pos = np.searchsorted(flat, lead + u, side="right") - lead * n_types
        return np.asarray(np.minimum(pos, n_types - 1), dtype=np.int64)

    activity = np.exp(rng.normal(0.0, 0.35, n))  # personal click-happiness, unrelated to intent

    # 1. Interest that decays after creation.
    rate0 = scale * 0.36 * np.exp(1.0 * intent) * activity
    tau = 25.0 * np.exp(0.25 * intent + rng.normal(0.0, 0.3, n))
    mass = 1.0 - np.exp(-horizon / tau)
    count = rng.poisson(rate0 * tau * mass)
    lead = np.repeat(np.arange(n), count)
    u = rng.random(lead.shape[0])
    t = -tau[lead] * np.log1p(-u * mass[lead])
    add(lead, t, draw_types(lead, _MIX_BROWSE, 0.5))

    # 2. Re-activation bursts: a few days of activity at random times.
    n_burst = rng.poisson(scale * 1.6 * horizon / 365.0 * np.exp(0.3 * intent))
    burst_lead = np.repeat(np.arange(n), n_burst)
    burst_t = rng.random(burst_lead.shape[0]) * horizon[burst_lead]
    size = 1 + rng.poisson(4.0 * activity[burst_lead])
    lead = np.repeat(burst_lead, size)
    t = np.repeat(burst_t, size) + rng.exponential(2.5, lead.shape[0])
    add(lead, t, draw_types(lead, _MIX_BROWSE, 0.5))

    # 3. Ramp-up before funnel stages (also before sql/opportunity of leads that are lost later),
    #    plus evaluation episodes that lead nowhere.
    ramp_lead = [np.repeat(np.arange(n), 0)]
    ramp_end = [np.zeros(0)]
    for k, strength in ((0, 2.0), (1, 4.0), (2, 4.0), (3, 5.0)):
        has = np.isfinite(stage_t[:, k])
        c = np.where(has, rng.poisson(scale * strength * activity), 0)
        ramp_lead.append(np.repeat(np.arange(n), c))
        ramp_end.append(np.repeat(np.where(has, stage_t[:, k], 0.0), c))
    n_false = rng.poisson(0.5 * horizon / 365.0 * np.exp(0.2 * intent))
    false_lead = np.repeat(np.arange(n), n_false)
    false_t = rng.random(false_lead.shape[0]) * horizon[false_lead]
    c = rng.poisson(scale * 3.5, false_lead.shape[0])
    ramp_lead.append(np.repeat(false_lead, c))
    ramp_end.append(np.repeat(false_t, c))
    lead = np.concatenate(ramp_lead)
    t = np.concatenate(ramp_end) - rng.exponential(12.0, lead.shape[0])
    add(lead, t, draw_types(lead, _MIX_HOT, 0.3))

    # 4. Noise: newsletters and stray visits for everyone.
    count = rng.poisson(scale * 0.03 * horizon * activity)
    lead = np.repeat(np.arange(n), count)
    add(lead, rng.random(lead.shape[0]) * horizon[lead], draw_types(lead, _MIX_NOISE, 0.0))

    # 5. Bots: bursts of opens (some clicks) within seconds, unrelated to intent.
    is_bot = rng.random(n) < 0.05
    n_bb = np.where(is_bot, 1 + rng.poisson(1.5, n), 0)
    bb_lead = np.repeat(np.arange(n), n_bb)
    bb_t = rng.random(bb_lead.shape[0]) * horizon[bb_lead]
    size = rng.integers(8, 60, bb_lead.shape[0])
    lead = np.repeat(bb_lead, size)
    t = np.repeat(bb_t, size) + rng.exponential(6.0, lead.shape[0]) / 86_400.0
    bot_type = np.where(rng.random(lead.shape[0]) < 0.85, _ET["email_open"], _ET["email_click"])
    add(lead, t, bot_type)

    # Source-specific first touch at creation (a trade-show badge scan, a form, a registration).
    src_names = np.array(source_names)[source]
    first_type = np.full(n, -1)
    first_type[np.isin(src_names, _INBOUND)] = _ET["form_submit"]
    first_type[src_names == "trade_show"] = _ET["trade_show_visit"]
    first_type[src_names == "webinar"] = _ET["webinar_registered"]
    lead = np.flatnonzero(first_type >= 0)
    add(lead, np.zeros(lead.shape[0]), first_type[lead])

    lead = np.concatenate(parts_lead)
    t = np.concatenate(parts_t)
    etype = np.concatenate(parts_type).astype(np.int64)
    keep = (t >= 0.0) & (t < horizon[lead])
    lead, t, etype = lead[keep], t[keep], etype[keep]
    ts = created[lead] + (t * _US_PER_DAY).astype(np.int64)
    keep = ts < period.end_us
    lead, ts, etype = lead[keep], ts[keep], etype[keep]
    order = np.lexsort((ts, lead))
    lead, ts, etype = lead[order], ts[order], etype[order]
    return pa.table(
        {
            "lead_id": lead_ids.take(pa.array(lead)),
            "ts": pa.array(ts, _TS),
            "event_type": _dict_array(etype, EVENT_TYPES),
            **_event_details(rng=rng, etype=etype, ts=ts, period=period),
        },
        schema=EVENTS_SCHEMA,
    )


def _event_details(
    *, rng: np.random.Generator, etype: np.ndarray, ts: np.ndarray, period: _Period
) -> dict[str, pa.Array]:
    """Channel, content id and campaign, each depending on the event type (null where n/a)."""
    m = etype.shape[0]
    channels: tuple[str, ...] = ("organic_search", "paid_search", "direct", "social", "referral")
    channels += ("email", "web", "webinar", "event")
    ch = np.full(m, -1)
    web = np.isin(etype, [_ET["web_visit"], _ET["pricing_page_view"], _ET["content_download"]])
    ch[web] = _choice(rng, np.array([0.35, 0.2, 0.2, 0.1, 0.07, 0.08]), int(web.sum()))
    ch[np.isin(etype, [_ET["form_submit"], _ET["demo_request"], _ET["contact_sales"]])] = 6
    ch[np.isin(etype, [_ET["email_open"], _ET["email_click"]])] = 5
    ch[np.isin(etype, [_ET["webinar_registered"], _ET["webinar_attended"]])] = 7
    ch[etype == _ET["trade_show_visit"]] = 8
    ch = _with_missing(rng, ch, 0.05)

    contents = [f"wp-{i:03d}" for i in range(40)] + [f"webinar-{i:02d}" for i in range(24)]
    contents += [f"expo-{i:02d}" for i in range(8)]
    content = np.full(m, -1)
    is_dl = etype == _ET["content_download"]
    content[is_dl] = rng.zipf(1.6, int(is_dl.sum())).clip(max=40) - 1
    is_web = np.isin(etype, [_ET["webinar_registered"], _ET["webinar_attended"]])
    content[is_web] = 40 + rng.integers(0, 24, int(is_web.sum()))
    is_ts = etype == _ET["trade_show_visit"]
    content[is_ts] = 64 + rng.integers(0, 8, int(is_ts.sum()))

    month = np.searchsorted(period.month_starts_us, ts, side="right") - 1
    campaigns = [f"newsletter-{name}" for name in period.month_names]
    campaigns += ["ppc-brand", "ppc-generic", "ppc-competitor", "abm-q1", "abm-q3"]
    n_months = len(period.month_names)
    campaign = np.full(m, -1)
    is_mail = np.isin(etype, [_ET["email_open"], _ET["email_click"]])
    campaign[is_mail] = month[is_mail]
    is_paid = ch == 1
    campaign[is_paid] = n_months + rng.integers(0, 3, int(is_paid.sum()))
    is_abm = (etype == _ET["web_visit"]) & (ch == 2) & (rng.random(m) < 0.1)
    campaign[is_abm] = n_months + 3 + rng.integers(0, 2, int(is_abm.sum()))
    return {
        "channel": _dict_array(ch, channels),
        "content_id": _dict_array(content, contents),
        "campaign": _dict_array(campaign, campaigns),
    }


def _outcomes_table(
    *,
    rng: np.random.Generator,
    lead_ids: pa.Array,
    created: np.ndarray,
    horizon: np.ndarray,
    stage_t: np.ndarray,
    employees: np.ndarray,
) -> pa.Table:
    """One row per stage reached before the end of the data, in time order per lead."""
    n = created.shape[0]
    lead, stage = np.nonzero(stage_t < horizon[:, None])
    t = stage_t[lead, stage]
    ts = created[lead] + np.maximum((t * _US_PER_DAY).astype(np.int64), 1_000_000)
    amount_all = np.exp(rng.normal(np.log(12_000.0) + 0.35 * np.log10(employees), 0.5, n))
    amount = np.where(stage == 3, np.round(amount_all[lead], 2), np.nan)
    return pa.table(
        {
            "lead_id": lead_ids.take(pa.array(lead)),
            "stage": _dict_array(stage, _STAGES),
            "ts": pa.array(ts, _TS),
            "amount": pa.array(amount, pa.float64(), mask=stage != 3),
        },
        schema=OUTCOMES_SCHEMA,
    )


_atomic_dir = atomic_dir  # the name simulate.py imports
