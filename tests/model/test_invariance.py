"""What must not move a score: the lead's id, the order of its events, anything at or after
``as_of``, and the other leads in the same call."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import replace

import numpy as np
import pytest
from tests.demo_leads import NOW, days_before, lead, varied_leads

from predictive_scoring.scoring import LeadInput
from predictive_scoring.synth import EVENT_TYPES

pytestmark = [pytest.mark.model, pytest.mark.slow]

Probabilities = Callable[[Sequence[LeadInput]], list[float]]
LEADS = varied_leads(60, seed=7)


def test_the_varied_leads_get_varied_scores(probabilities: Probabilities) -> None:
    """The leads below are a fair test: the model tells them apart."""
    p = probabilities(LEADS)
    assert len(set(p)) > 50
    assert max(p) > 5 * min(p)


def test_the_lead_id_does_not_change_the_score(probabilities: Probabilities) -> None:
    ids = ["L-1", "00000042", "Jane Doe <jane@acme.io>", "x" * 200, "ä-é-中"]
    for one in LEADS[:20]:
        got = [probabilities([replace(one, lead_id=i)])[0] for i in ids]
        assert got == [got[0]] * len(ids), one.lead_id


def test_the_order_of_the_events_does_not_change_the_score(
    probabilities: Probabilities,
) -> None:
    rng = np.random.default_rng(3)
    busy = [one for one in LEADS if len(one.events) >= 5]
    assert len(busy) > 20
    want = probabilities(busy)
    for _ in range(3):
        shuffled = [
            replace(one, events=[one.events[k] for k in rng.permutation(len(one.events))])
            for one in busy
        ]
        assert probabilities(shuffled) == want
    assert probabilities([replace(one, events=one.events[::-1]) for one in busy]) == want


def test_events_at_or_after_as_of_change_nothing(probabilities: Probabilities) -> None:
    rng = np.random.default_rng(4)
    # Every event type at as_of itself and at times between as_of and the clock.
    later = [(t, days_before(0)) for t in EVENT_TYPES] + [
        (str(rng.choice(EVENT_TYPES)), days_before(-float(rng.uniform(0, 29)))) for _ in range(30)
    ]
    assert max(ts for _, ts in later) <= NOW
    want = probabilities(LEADS)
    with_later = [replace(one, events=[*one.events, *later]) for one in LEADS]
    assert probabilities(with_later) == want
    # The same events a second earlier are seen: the cut is at as_of, not somewhere before.
    earlier = [(t, ts - 1) for t, ts in later if ts == days_before(0)]
    moved = probabilities([replace(one, events=[*one.events, *earlier]) for one in LEADS])
    assert sum(m != w for m, w in zip(moved, want, strict=True)) > len(LEADS) // 2


def test_a_lead_alone_gets_what_it_gets_inside_a_batch(probabilities: Probabilities) -> None:
    together = probabilities(LEADS)
    alone = [probabilities([one])[0] for one in LEADS]
    assert alone == together
    assert probabilities(LEADS[::-1]) == together[::-1]
    # With neighbours that share nothing with it, a typical lead keeps its score too.
    typical = lead(events=[("web_visit", days_before(3)), ("pricing_page_view", days_before(1))])
    assert probabilities([*LEADS[:30], typical, *LEADS[30:]])[30] == probabilities([typical])[0]
