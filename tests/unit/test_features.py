"""The feature definition: hand-computed values, the point-in-time rule, batch/online parity."""

from __future__ import annotations

import math

import ibis
import numpy as np
import pandas as pd
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from tests.levels import LEVELS

from predictive_scoring.batch import build_snapshots, connect_duckdb, featurize_expr
from predictive_scoring.errors import FeatureError
from predictive_scoring.features import (
    FeatureDefinition,
    build_definition,
    email_is_free,
    employees_band,
    encode_categories,
    title_function,
    title_seniority,
)
from predictive_scoring.online import LeadBatch, OnlineExecutor

DAY = 86_400
T0 = 1_700_000_000
TYPES = ("demo_request", "email_open", "web_visit")


def make_definition(**overrides: object) -> FeatureDefinition:
    kwargs: dict[str, object] = {
        "event_types": TYPES,
        "attribute_types": {"industry": "categorical", "employees": "numeric"},
        "windows_days": [7, 30],
        "half_life_days": 14.0,
        "active_days_window": 30,
        "job_title_column": "job_title",
        "email_column": "email",
        "employees_column": "employees",
        "has_events": True,
        "has_created_at": True,
    }
    kwargs.update(overrides)
    return build_definition(**kwargs)  # type: ignore[arg-type]


def one_lead(events: list[tuple[str, int]], *, as_of: int, **attrs: object) -> LeadBatch:
    base: dict[str, object] = {
        "industry": "software",
        "employees": 120,
        "job_title": "VP of Marketing",
        "email": "jane@acme.io",
    }
    base.update(attrs)
    return LeadBatch(
        attributes={k: [v] for k, v in base.items()},
        as_of=np.array([as_of]),
        created=np.array([float(T0)]),
        event_lead=np.zeros(len(events), dtype=np.int64),
        event_type=[e[0] for e in events],
        event_ts=np.array([e[1] for e in events], dtype=np.int64),
    )


def test_hand_computed_features() -> None:
    d = make_definition()
    ex = OnlineExecutor(d, LEVELS)
    as_of = T0 + 40 * DAY
    events = [
        ("web_visit", as_of - 1 * DAY),  # in 7d and 30d
        ("web_visit", as_of - 1 * DAY + 60),  # same day
        ("web_visit", as_of - 20 * DAY),  # 30d only
        ("demo_request", as_of - 7 * DAY),  # exactly on the 7-day boundary: counted
        ("email_open", as_of - 35 * DAY),  # outside both windows
        ("email_open", as_of),  # at as_of: not seen
        ("email_open", as_of + DAY),  # future: not seen
        ("unknown_type", as_of - DAY),  # not in the definition: ignored
    ]
    x = dict(zip(d.feature_names, ex.transform(one_lead(events, as_of=as_of))[0], strict=True))
    assert x["lead_age_days"] == 40.0
    assert x["n_events_total"] == 5
    assert x["active_days_30d"] == 3  # days -1, -7, -20 (-35 is outside the window)
    assert (x["n_web_visit_7d"], x["n_web_visit_30d"]) == (2, 3)
    assert (x["n_demo_request_7d"], x["n_demo_request_30d"]) == (1, 1)
    assert (x["n_email_open_7d"], x["n_email_open_30d"]) == (0, 0)
    assert x["days_since_web_visit"] == pytest.approx(1 - 60 / DAY)
    assert x["days_since_email_open"] == 35.0
    half = 0.5 ** (1 / 14)
    assert x["decayed_demo_request"] == pytest.approx(half**7)
    assert x["decayed_web_visit"] == pytest.approx(half ** (1 - 60 / DAY) + half**1 + half**20)
    assert x["industry"] == 0.0 and x["employees"] == 120.0
    assert LEVELS["title_seniority"][int(x["title_seniority"])] == "vp"
    assert LEVELS["title_function"][int(x["title_function"])] == "marketing"
    assert x["email_is_free"] == 0.0
    assert LEVELS["employees_band"][int(x["employees_band"])] == "51-200"


def test_no_events_means_zero_counts_and_missing_recency() -> None:
    d = make_definition()
    x = dict(
        zip(
            d.feature_names,
            OnlineExecutor(d, LEVELS).transform(one_lead([], as_of=T0))[0],
            strict=True,
        )
    )
    assert x["n_events_total"] == 0 and x["decayed_web_visit"] == 0
    assert math.isnan(x["days_since_web_visit"])


def test_online_features_do_not_depend_on_event_order() -> None:
    """Leads interleaved in the event list, in any order, give the features of each lead alone."""
    d = make_definition()
    ex = OnlineExecutor(d, LEVELS)
    rng = np.random.default_rng(7)
    n, m = 5, 300
    as_of = T0 + rng.integers(30 * DAY, 60 * DAY, n)
    event_lead = rng.integers(0, n, m)
    event_type = rng.choice([*TYPES, "noise"], m).tolist()
    event_ts = T0 + rng.integers(0, 70 * DAY, m)

    def batch(rows: np.ndarray) -> LeadBatch:
        return LeadBatch(
            attributes={"industry": ["software"] * n},
            as_of=as_of,
            created=np.full(n, float(T0)),
            event_lead=event_lead[rows],
            event_type=[event_type[r] for r in rows],
            event_ts=event_ts[rows],
        )

    grouped = ex.transform(batch(np.argsort(event_lead, kind="stable")))
    shuffled = ex.transform(batch(rng.permutation(m)))
    np.testing.assert_allclose(shuffled, grouped, rtol=1e-12, atol=0)
    for lead in range(n):
        mine = np.flatnonzero(event_lead == lead)
        alone = ex.transform(
            LeadBatch(
                attributes={"industry": ["software"]},
                as_of=as_of[lead : lead + 1],
                created=np.array([float(T0)]),
                event_lead=np.zeros(mine.size, dtype=np.int64),
                event_type=[event_type[r] for r in mine],
                event_ts=event_ts[mine],
            )
        )
        np.testing.assert_allclose(alone[0], grouped[lead], rtol=1e-12, atol=0)
    assert grouped[:, d.feature_names.index("n_events_total")].sum() > 0


def test_missing_and_unseen_attributes_are_nan() -> None:
    d = make_definition()
    batch = one_lead(
        [], as_of=T0, industry="aerospace", employees=None, job_title=None, email=None
    )
    x = dict(zip(d.feature_names, OnlineExecutor(d, LEVELS).transform(batch)[0], strict=True))
    for name in ("industry", "employees", "title_seniority", "email_is_free", "employees_band"):
        assert math.isnan(x[name]), name


@pytest.mark.parametrize(
    ("title", "seniority", "function"),
    [
        ("Chief Marketing Officer", "c_level", "marketing"),
        ("Director of IT", "director", "it"),
        ("sr. software engineer", "senior", "engineering"),
        ("Head of Sales Ops", "director", "sales"),
        ("VP, Finance", "vp", "finance"),
        ("analyst", "individual", "other"),
    ],
)
def test_title_rules(title: str, seniority: str, function: str) -> None:
    assert title_seniority(title) == seniority
    assert title_function(title) == function


def test_derived_helpers() -> None:
    assert email_is_free("A@Gmail.com ") == 1.0
    assert email_is_free("a@company.de") == 0.0
    assert math.isnan(email_is_free("not-an-email"))
    assert employees_band(10) == "1-10" and employees_band(11) == "11-50"
    assert employees_band(100_000) == "5000+" and employees_band(None) is None
    assert encode_categories(["b", "z", None], ["a", "b"]).tolist()[0] == 1.0


def test_definition_round_trips_and_rejects_collisions() -> None:
    d = make_definition()
    assert FeatureDefinition.from_dict(d.to_dict()) == d
    assert FeatureDefinition.from_dict(d.to_dict()).feature_names == d.feature_names
    with pytest.raises(FeatureError, match="collide"):
        make_definition(attribute_types={"n_events_total": "numeric"})


# --- the point-in-time rule ----------------------------------------------------------------
event_st = st.tuples(st.sampled_from([*TYPES, "other"]), st.integers(-200 * DAY, 200 * DAY))


@settings(max_examples=200, deadline=None)
@given(
    past=st.lists(event_st, max_size=25),
    later=st.lists(event_st, max_size=25),
    moved=st.lists(st.integers(0, 400 * DAY), max_size=25),
)
def test_events_at_or_after_as_of_never_change_a_feature(
    past: list[tuple[str, int]], later: list[tuple[str, int]], moved: list[int]
) -> None:
    d = make_definition()
    ex = OnlineExecutor(d, LEVELS)
    as_of = T0 + 100 * DAY
    before = [(t, as_of - 1 - abs(off)) for t, off in past]
    after = [(t, as_of + abs(off)) for t, off in later]
    base = ex.transform(one_lead(before, as_of=as_of))
    with_future = ex.transform(one_lead(before + after, as_of=as_of))
    # move the future events elsewhere in the future, and drop some
    shuffled = [(t, as_of + m) for (t, _), m in zip(after, moved, strict=False)]
    moved_x = ex.transform(one_lead(before + shuffled, as_of=as_of))
    np.testing.assert_array_equal(base, with_future)
    np.testing.assert_array_equal(base, moved_x)


@pytest.mark.slow
@settings(max_examples=12, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(later=st.lists(event_st, min_size=1, max_size=15))
def test_batch_executor_ignores_events_at_or_after_as_of(later: list[tuple[str, int]]) -> None:
    d = make_definition()
    con = connect_duckdb()
    as_of = T0 + 100 * DAY
    leads = pd.DataFrame(
        {
            "lead_id": ["a"],
            "created_s": [T0],
            "industry": ["software"],
            "employees": [50.0],
            "job_title": ["CTO"],
            "email": ["x@gmail.com"],
        }
    )
    snaps = pd.DataFrame({"lead_id": ["a"], "created_s": [T0], "as_of_s": [as_of]})
    base_events = pd.DataFrame(
        {
            "lead_id": ["a", "a"],
            "event_type": ["web_visit", "demo_request"],
            "ts_s": [as_of - DAY, as_of - 9 * DAY],
        }
    )
    extra = pd.DataFrame(
        {
            "lead_id": "a",
            "event_type": [t for t, _ in later],
            "ts_s": [as_of + abs(off) for _, off in later],
        }
    )

    def run(events: pd.DataFrame) -> pd.DataFrame:
        expr = featurize_expr(ibis.memtable(snaps), ibis.memtable(leads), ibis.memtable(events), d)
        return con.to_pandas(expr)[d.feature_names]

    pd.testing.assert_frame_equal(run(base_events), run(pd.concat([base_events, extra])))


# --- parity ----------------------------------------------------------------------------------
def random_funnel(seed: int, n: int = 60, m: int = 1500) -> tuple[pd.DataFrame, ...]:
    rng = np.random.default_rng(seed)
    leads = pd.DataFrame(
        {
            "lead_id": [f"L{i:03d}" for i in range(n)],
            "created_s": T0 + rng.integers(0, 200 * DAY, n),
            # spellings of one value: case and surrounding spaces never count, on either executor
            "industry": rng.choice(["software", " Software", "RETAIL\t", "mining", None], n),
            "employees": rng.choice([3.0, 40.0, 300.0, 7000.0, np.nan], n),
            "job_title": rng.choice(["VP of Marketing", "Director IT", "cto", None, "intern"], n),
            "email": rng.choice(["a@gmail.com", "b@acme.com", None, "bad"], n),
        }
    )
    events = pd.DataFrame(
        {
            "lead_id": rng.choice(leads["lead_id"], m),
            "event_type": rng.choice([*TYPES, "noise"], m),
            "ts_s": T0 + rng.integers(-10 * DAY, 400 * DAY, m),
        }
    )
    k = n // 2
    outcomes = pd.DataFrame(
        {
            "lead_id": leads["lead_id"][:k],
            "stage": rng.choice(["won", "lost", "sql"], k),
            "ts_s": leads["created_s"][:k] + rng.integers(0, 120 * DAY, k),
        }
    )
    return leads, events, outcomes


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_batch_and_online_executors_agree(seed: int) -> None:
    leads, events, outcomes = random_funnel(seed)
    d = make_definition()
    con = connect_duckdb()
    snaps = build_snapshots(
        ibis.memtable(leads[["lead_id", "created_s"]]),
        ibis.memtable(outcomes),
        offsets_days=[0, 7, 30, 60],
        target_stage="won",
        horizon_days=90,
        data_end_s=T0 + 400 * DAY,
    )
    table = con.to_pandas(
        featurize_expr(snaps, ibis.memtable(leads), ibis.memtable(events), d)
    ).reset_index(drop=True)
    assert len(table) > 50
    levels = {c: sorted(table[c].dropna().unique().tolist()) for c in d.categorical_features}
    ex = OnlineExecutor(d, levels)
    row_of = {lid: i for i, lid in enumerate(leads["lead_id"])}
    lead_rows = table["lead_id"].map(row_of).to_numpy()
    ev_rows = events["lead_id"].map(row_of).to_numpy()
    # each snapshot is a lead in the online batch, with all of its lead's events
    ev_lead, ev_type, ev_ts = [], [], []
    for s, r in enumerate(lead_rows):
        mask = ev_rows == r
        ev_lead += [s] * int(mask.sum())
        ev_type += events["event_type"][mask].tolist()
        ev_ts += events["ts_s"][mask].tolist()
    batch = LeadBatch(
        attributes={c: leads[c].to_numpy()[lead_rows].tolist() for c in leads.columns[2:]},
        as_of=table["as_of_s"].to_numpy(),
        created=table["created_s"].to_numpy(dtype=np.float64),
        event_lead=np.array(ev_lead, dtype=np.int64),
        event_type=ev_type,
        event_ts=np.array(ev_ts, dtype=np.int64),
    )
    online = ex.transform(batch)
    offline = np.column_stack(
        [
            encode_categories(table[c].tolist(), levels[c])
            if c in levels
            else table[c].to_numpy(dtype=np.float64)
            for c in d.feature_names
        ]
    )
    np.testing.assert_array_equal(np.isnan(online), np.isnan(offline))
    np.testing.assert_allclose(np.nan_to_num(online), np.nan_to_num(offline), rtol=1e-9, atol=1e-9)


def test_snapshots_respect_censoring_and_closure() -> None:
    leads = pd.DataFrame(
        {"lead_id": ["won_early", "open", "late"], "created_s": [T0, T0, T0 + 300 * DAY]}
    )
    outcomes = pd.DataFrame(
        {
            "lead_id": ["won_early", "open"],
            "stage": ["won", "sql"],
            "ts_s": [T0 + 10 * DAY, T0 + 5 * DAY],
        }
    )
    snaps = (
        connect_duckdb()
        .to_pandas(
            build_snapshots(
                ibis.memtable(leads),
                ibis.memtable(outcomes),
                offsets_days=[0, 7, 30],
                target_stage="won",
                horizon_days=90,
                data_end_s=T0 + 330 * DAY,
            )
        )
        .sort_values(["lead_id", "offset_days"])
    )
    got = {(r.lead_id, r.offset_days): r.label for r in snaps.itertuples()}
    # won at day 10: open at 0 and 7 (label 1), closed at 30; "late" is censored entirely
    assert got == {
        ("won_early", 0): 1,
        ("won_early", 7): 1,
        ("open", 0): 0,
        ("open", 7): 0,
        ("open", 30): 0,
    }
