"""Leads shaped like the demo funnel's (``predictive_scoring.synth``), to score with a model
trained on it: a typical profile, events placed relative to a fixed ``as_of``, and a varied set.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import UTC, datetime

import numpy as np

from predictive_scoring.scoring import LeadInput
from predictive_scoring.synth import EVENT_TYPES

DAY = 86_400
# The demo runs from 2024-01-01 for 24 months; leads are scored late in it, with the clock a
# month later so that events after ``as_of`` are still in the past.
AS_OF = int(datetime(2025, 10, 1, tzinfo=UTC).timestamp())
NOW = AS_OF + 30 * DAY
TYPICAL: dict[str, object] = {
    "industry": "Healthcare",
    "employees": 150,
    "annual_revenue": 20_000_000.0,
    "country": "US",
    "job_title": "Marketing Manager",
    "lead_source": "organic_search",
    "email": "jane.doe@acme-corp.com",
}


def days_before(days: float) -> int:
    """Epoch seconds ``days`` before ``AS_OF`` (negative: after it)."""
    return AS_OF - round(days * DAY)


def lead(
    lead_id: str = "L-1",
    *,
    attributes: Mapping[str, object] | None = None,
    events: Sequence[tuple[str, int]] = (),
    age_days: float = 30,
) -> LeadInput:
    """A lead scored as of ``AS_OF``, created ``age_days`` before it; ``TYPICAL`` profile."""
    return LeadInput(
        lead_id=lead_id,
        attributes=dict(TYPICAL if attributes is None else attributes),
        events=list(events),
        created_at=days_before(age_days),
        as_of=AS_OF,
    )


def varied_leads(n: int, *, seed: int) -> list[LeadInput]:
    """``n`` leads unlike each other: profiles with gaps, ages from a day to most of a year, and
    0-40 events of every type between creation and ``AS_OF``, in time order."""
    rng = np.random.default_rng(seed)
    options: dict[str, list[object]] = {
        "industry": ["Software", "Retail", "Government", "Media", None],
        "employees": [3, 40, 250, 1_200, 20_000, None],
        "annual_revenue": [5e5, 8e6, 1.2e8, None],
        "country": ["US", "Germany", "IN", "BR", None],
        "job_title": ["VP of Sales", "cto", "Marketing Intern", "Accountant", "Owner", None],
        "lead_source": ["referral", "outbound", "webinar", "social", None],
        "email": ["a.b@gmail.com", "a.b@globex-labs.io", None],
    }
    leads = []
    for i in range(n):
        attributes = {
            name: value
            for name, values in options.items()
            if (value := values[int(rng.integers(len(values)))]) is not None
        }
        created = days_before(float(rng.uniform(1, 300)))
        times = np.sort(rng.integers(created, AS_OF, size=int(rng.integers(0, 41))))
        kinds = rng.choice(EVENT_TYPES, size=times.size)
        leads.append(
            LeadInput(
                lead_id=f"V{i:03d}",
                attributes=attributes,
                events=[(str(k), int(t)) for k, t in zip(kinds, times, strict=True)],
                created_at=created,
                as_of=AS_OF,
            )
        )
    return leads
