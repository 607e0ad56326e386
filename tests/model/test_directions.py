"""What the demo's ground truth makes better, all else equal, and the trained model learns.

Each check runs over a panel of leads that differ in profile, engagement and age, and holds
for every lead in it. Only directions that ``predictive_scoring.synth`` builds in and that
models trained on other seeds of the demo learn too are asserted.
"""

from __future__ import annotations

import itertools
from collections.abc import Callable, Sequence

import numpy as np
import pytest
from tests.demo_leads import days_before, lead

from predictive_scoring.scoring import LeadInput

pytestmark = [pytest.mark.model, pytest.mark.slow]

Probabilities = Callable[[Sequence[LeadInput]], list[float]]

PROFILES = [
    {
        "industry": industry,
        "job_title": title,
        "lead_source": source,
        "employees": employees,
        "email": email,
        "country": "US",
    }
    for industry, title, source, employees, email in itertools.product(
        ["Software", "Healthcare", "Retail", None],
        ["VP of Marketing", "Marketing Manager", "Software Engineer", None],
        ["organic_search", "outbound", "webinar"],
        [40, 300, 3_000],
        ["jane.doe@acme-corp.com", "jane.doe@gmail.com"],
    )
]
ENGAGEMENT = {
    "none": [],
    "light": [("web_visit", 3), ("email_open", 10), ("web_visit", 20)],
    "busy": [("web_visit", d) for d in (1, 2, 4, 8, 15, 25)]
    + [("email_click", 5), ("content_download", 12)],
}
AGES_DAYS = (5, 30, 120)


def panel(
    *, change: dict[str, object] | None = None, extra: Sequence[tuple[str, float]] = ()
) -> list[LeadInput]:
    """Every profile x engagement x age, with ``change`` applied to the attributes and the
    ``extra`` events ((type, days before as_of)) added."""
    return [
        lead(
            f"P{i}",
            attributes={k: v for k, v in {**profile, **(change or {})}.items() if v is not None},
            events=[(t, days_before(d)) for t, d in [*events, *extra]],
            age_days=age,
        )
        for i, (profile, events, age) in enumerate(
            itertools.product(PROFILES, ENGAGEMENT.values(), AGES_DAYS)
        )
    ]


def raised(probabilities: Probabilities, worse: list[LeadInput], better: list[LeadInput]) -> None:
    """Each lead of ``better`` scores above its twin in ``worse``; else names the first."""
    low, high = np.array(probabilities(worse)), np.array(probabilities(better))
    fails = np.flatnonzero(high <= low)
    assert fails.size == 0, (
        f"{fails.size} of {low.size} leads do not score higher, e.g. {better[fails[0]]}: "
        f"{high[fails[0]]:.4f} against {low[fails[0]]:.4f}"
    )


def test_a_recent_demo_request_raises_the_score(probabilities: Probabilities) -> None:
    # Two days back; ten days back raises the mean but not every lead on every seed.
    raised(probabilities, panel(), panel(extra=[("demo_request", 2)]))


@pytest.mark.parametrize("views", [3, 6])
def test_pricing_page_views_raise_the_score(probabilities: Probabilities, views: int) -> None:
    extra = [("pricing_page_view", d + 1.0) for d in range(views)]
    raised(probabilities, panel(), panel(extra=extra))


def test_more_pricing_page_views_never_lower_the_panel_mean(
    probabilities: Probabilities,
) -> None:
    """One view a day over the last 0-6 days: the mean over the panel never falls.

    Lead by lead one more view can lower a score a little (the trees are not constrained to be
    monotone), so the step-by-step claim is made for the mean; 3 or 6 views against none hold
    lead by lead above.
    """
    views = [[("pricing_page_view", d + 1.0) for d in range(k)] for k in range(7)]
    means = [float(np.mean(probabilities(panel(extra=extra)))) for extra in views]
    assert all(b >= a for a, b in itertools.pairwise(means)), means
    assert means[-1] > 1.2 * means[0], means


@pytest.mark.parametrize(
    ("attribute", "worse", "better"),
    [
        ("job_title", "Marketing Intern", "VP of Marketing"),  # seniority: -1.2 -> +0.7
        ("industry", "Government", "Software"),  # -0.6 -> +0.55
        ("lead_source", "outbound", "referral"),  # fit and intent both higher
        ("employees", 2, 800),  # fit peaks near 800 employees
        ("country", "IN", "US"),  # -0.4 -> +0.2
        # Not here: a company e-mail domain over a free-mail one (fit -0.45 -> +0.1) is built
        # in, but the seed-42 model ranks 5% of the panel the other way.
    ],
)
def test_a_better_fit_raises_the_score(
    probabilities: Probabilities, attribute: str, worse: object, better: object
) -> None:
    raised(probabilities, panel(change={attribute: worse}), panel(change={attribute: better}))
