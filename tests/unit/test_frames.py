"""Frames into batches: a nested events column gives the same batch as a separate events frame."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest

from predictive_scoring.errors import ScoringInputError
from predictive_scoring.features import build_definition
from predictive_scoring.ingress import (
    ModelInputs,
    RawLeads,
    admit,
    raw_from_frames,
    raw_from_nested,
)
from predictive_scoring.online import LeadBatch
from predictive_scoring.scoring import FRAME_LIMITS
from predictive_scoring.timestamps import read_seconds

NOW = 1_750_000_000
TYPES = ["web_visit", "pricing_page_view", "demo_request", "noise"]
INPUTS = ModelInputs.of(
    build_definition(
        event_types=TYPES[:3],
        attribute_types={"industry": "categorical", "employees": "numeric"},
        windows_days=[7],
        half_life_days=7,
        active_days_window=7,
        job_title_column=None,
        email_column=None,
        employees_column=None,
        has_events=True,
        has_created_at=True,
    ),
    {"industry": ["software", "retail"]},
)


def _admitted(raw: RawLeads) -> tuple[LeadBatch, list[str]]:
    got = admit(raw, INPUTS, limits=FRAME_LIMITS, now=NOW)
    return got.batch, got.lead_ids


def _iso(seconds: int) -> str:
    return str(pd.Timestamp(seconds, unit="s", tz="UTC").strftime("%Y-%m-%dT%H:%M:%SZ"))


def funnel(seed: int, n: int = 40) -> tuple[pd.DataFrame, pd.DataFrame]:
    rng = np.random.default_rng(seed)
    leads = pd.DataFrame(
        {
            "lead_id": [f"L{i}" for i in range(n)],
            "created_at": [_iso(NOW - int(d) * 86_400) for d in rng.integers(1, 300, n)],
            "as_of": [None if i % 5 == 0 else _iso(NOW - i * 3_600) for i in range(n)],
            "industry": rng.choice(np.array(["software", "retail", None], dtype=object), n),
            "employees": rng.choice([5.0, 250.0, np.nan], n),
        }
    )
    sizes = rng.integers(0, 12, n)
    events = pd.DataFrame(
        {
            "lead_id": np.repeat(leads["lead_id"].to_numpy(), sizes),
            "event_type": rng.choice(TYPES, int(sizes.sum())),
            "ts": [_iso(NOW - int(s)) for s in rng.integers(0, 200 * 86_400, int(sizes.sum()))],
        }
    )
    return leads, events


def nest(leads: pd.DataFrame, events: pd.DataFrame, *, as_lists: bool) -> pd.DataFrame:
    per_lead = {
        lead: group[["event_type", "ts"]].to_dict("records")
        for lead, group in events.groupby("lead_id", sort=False)
    }
    cells = [per_lead.get(lead, []) for lead in leads["lead_id"]]
    return leads.assign(events=cells if as_lists else [json.dumps(c) for c in cells])


def assert_same(a: LeadBatch, b: LeadBatch) -> None:
    assert a.attributes.keys() == b.attributes.keys()
    for name in a.attributes:
        assert list(a.attributes[name]) == list(b.attributes[name]), name
    np.testing.assert_array_equal(a.as_of, b.as_of)
    np.testing.assert_array_equal(a.created, b.created)
    np.testing.assert_array_equal(a.event_lead, b.event_lead)
    assert list(a.event_type) == list(b.event_type)
    np.testing.assert_array_equal(a.event_ts, b.event_ts)


@pytest.mark.parametrize("as_lists", [False, True])
@pytest.mark.parametrize("seed", [0, 1])
def test_nested_events_give_the_batch_of_an_events_frame(seed: int, as_lists: bool) -> None:
    leads, events = funnel(seed)
    want, want_ids = _admitted(raw_from_frames(leads, events))
    got, got_ids = _admitted(raw_from_nested(nest(leads, events, as_lists=as_lists)))
    assert got_ids == want_ids
    assert len(got.event_type) == (events["event_type"] != "noise").sum() > 0
    assert_same(got, want)


def test_empty_and_missing_cells_are_leads_without_events() -> None:
    frame = pd.DataFrame(
        {
            "lead_id": ["a", "b", "c", "d"],
            "events": ["[]", None, "", '[{"event_type": "web_visit", "ts": 1749990000}]'],
        }
    )
    batch, ids = _admitted(raw_from_nested(frame))
    assert ids == ["a", "b", "c", "d"]
    assert batch.event_lead.tolist() == [3] and batch.event_ts.tolist() == [1_749_990_000]
    assert batch.as_of.tolist() == [NOW] * 4
    assert "events" not in batch.attributes


@pytest.mark.parametrize(
    ("cell", "why"),
    [
        ('[{"event_type": "web_visit", "ts": ', "unexpected"),
        ('{"event_type": "web_visit"}', "not a list"),
        ('["web_visit"]', "list of objects"),
    ],
)
def test_a_malformed_events_cell_names_the_column_and_row(cell: str, why: str) -> None:
    frame = pd.DataFrame({"lead_id": ["a", "b"], "events": ["[]", cell]})
    with pytest.raises(ScoringInputError, match=r"column 'events' row 2") as info:
        raw_from_nested(frame)
    assert info.value.loc == [2, "events"]
    assert why in str(info.value).lower()


def test_a_bad_event_timestamp_names_the_field() -> None:
    frame = pd.DataFrame(
        {"lead_id": ["a"], "events": ['[{"event_type": "web_visit", "ts": "last tuesday"}]']}
    )
    with pytest.raises(ScoringInputError, match=r"'events' row 1.*ISO 8601") as info:
        _admitted(raw_from_nested(frame))
    assert info.value.field == "events"


@pytest.mark.parametrize("dtype", ["Int64", "int64[pyarrow]", "float64"])
def test_nullable_epoch_columns_keep_their_gaps(dtype: str) -> None:
    got, bad = read_seconds(pd.Series([1_700_000_000, None], dtype=dtype))
    assert got[0] == 1_700_000_000 and np.isnan(got[1]) and not bad.any()
