"""MQL/SQL policies, stage and grade assignment, and the threshold table."""

from __future__ import annotations

import json

import numpy as np
import pytest

from predictive_scoring.config import ThresholdParams
from predictive_scoring.errors import BundleError, ConfigError, DataValidationError
from predictive_scoring.scoring import probability_to_score, score_of
from predictive_scoring.thresholds import (
    Thresholds,
    assign_grade,
    assign_stage,
    choose_thresholds,
    grade_of,
    stage_of,
    threshold_table,
)

# ten leads, four positives; cut-off -> (leads at or above, positives at or above):
# 0.9 (1, 1), 0.8 (2, 2), 0.7 (3, 2), 0.6 (4, 3), 0.5 (5, 3), 0.4 (6, 4), ...
P = np.array([0.9, 0.8, 0.7, 0.6, 0.5, 0.4, 0.3, 0.2, 0.1, 0.05])
Y = np.array([1, 1, 0, 1, 0, 1, 0, 0, 0, 0])


def choose(
    y: np.ndarray = Y, p: np.ndarray = P, weeks: float = 2.0, **params: float
) -> Thresholds:
    return choose_thresholds(y, p, weeks=weeks, params=ThresholdParams(**params))


def test_fixed_cutoffs_are_used_as_given() -> None:
    t = choose(mql=0.15, sql=0.4)
    assert (t.mql, t.sql) == (0.15, 0.4)
    assert t.base_rate == pytest.approx(0.4)
    assert t.method == {"sql": "fixed sql=0.4", "mql": "fixed mql=0.15"}


@pytest.mark.parametrize(
    ("capacity", "expected_sql"), [(0.5, 0.9), (1.0, 0.8), (1.5, 0.7), (1.9, 0.7), (100.0, 0.05)]
)
def test_capacity_takes_the_most_leads_that_fit_per_week(
    capacity: float, expected_sql: float
) -> None:
    t = choose(capacity_per_week=capacity, mql=0.01)
    assert t.sql == expected_sql
    assert (t.sql <= P).sum() / 2.0 <= capacity
    assert "capacity_per_week" in t.method["sql"]


def test_min_precision_takes_the_lowest_cutoff_meeting_the_target() -> None:
    # precision 1, 1, 2/3, 3/4, 3/5, 4/6: the lowest cut-off with >= 0.75 is 0.6, not 0.8
    assert choose(min_precision=0.75, mql=0.01).sql == 0.6
    assert choose(min_precision=1.0, mql=0.01).sql == 0.8


def test_unreachable_precision_uses_the_best_and_warns() -> None:
    y = np.array([0, 1, 0, 1, 0])
    p = np.array([0.9, 0.8, 0.7, 0.6, 0.5])
    t = choose(y, p, min_precision=0.9, mql=0.1)
    assert t.sql == 0.6  # best precision 2/4 = 0.5 is first reached at 0.8 and again at 0.6
    assert "WARNING" in t.method["sql"]


def test_min_recall_takes_the_highest_cutoff_meeting_the_target() -> None:
    assert choose(min_recall=0.75, sql=0.95).mql == 0.6
    assert choose(min_recall=0.5, sql=0.95).mql == 0.8
    assert choose(min_recall=1.0, sql=0.95).mql == 0.4


def test_mql_is_lowered_below_sql_when_the_policy_crosses_it() -> None:
    t = choose(min_precision=0.75, min_recall=0.5)  # sql 0.6, recall policy says 0.8
    assert t.sql == 0.6
    assert t.mql == 0.5  # the next distinct score below the SQL cut-off
    assert "WARNING" in t.method["mql"]
    fixed = choose(capacity_per_week=0.5, mql=0.95)  # sql 0.9 below the fixed mql
    assert fixed.mql == 0.8 < fixed.sql == 0.9


def test_one_lead_rules_equal_the_vectorised_ones() -> None:
    # The one-lead path (stage_of, grade_of, score_of on a float) against the arrays a batch uses,
    # on each cut-off, one ulp either side, the score's rounding halves and random values.
    t = Thresholds(mql=0.3, sql=0.7, base_rate=0.1)
    edges = [0.0, 1.0, t.mql / 2, t.mql, t.sql, 0.005, 0.015, 0.125, 0.985, 0.995]
    near = [np.nextafter(e, d) for e in edges for d in (-np.inf, np.inf)]
    p = np.clip(np.concatenate([edges, near, np.random.default_rng(0).random(10_000)]), 0, 1)
    assert [stage_of(x, t) for x in p.tolist()] == assign_stage(p, t).tolist()
    assert [grade_of(x, t) for x in p.tolist()] == assign_grade(p, t).tolist()
    assert [score_of(x) for x in p.tolist()] == probability_to_score(p).tolist()
    assert {stage_of(x, t) for x in p.tolist()} == {"SQL", "MQL", "nurture"}


def test_tied_scores_share_a_stage() -> None:
    p = np.array([0.9, 0.9, 0.9, 0.5, 0.5, 0.1])
    y = np.array([1, 0, 1, 0, 1, 0])
    assert choose(y, p, weeks=1.0, capacity_per_week=4, mql=0.01).sql == 0.9
    assert choose(y, p, weeks=1.0, capacity_per_week=5, mql=0.01).sql == 0.5
    short = choose(y, p, weeks=1.0, capacity_per_week=2, mql=0.01)
    assert short.sql == 0.9
    assert "WARNING" in short.method["sql"]
    assert choose(y, p, weeks=1.0, min_recall=0.7, sql=0.95).mql == 0.5


def test_policies_need_positives_but_fixed_cutoffs_do_not() -> None:
    y = np.zeros(5)
    p = np.linspace(0.1, 0.5, 5)
    with pytest.raises(DataValidationError, match="no positive labels"):
        choose(y, p, min_recall=0.8, capacity_per_week=1)
    assert choose(y, p, mql=0.2, capacity_per_week=1).base_rate == 0.0


@pytest.mark.parametrize(
    ("y", "p", "weeks", "message"),
    [
        ([1, 0], [0.5], 1.0, "2 labels but 1 probabilities"),
        ([], [], 1.0, "empty"),
        ([1, 2], [0.5, 0.5], 1.0, "0 or 1"),
        ([1, 0], [0.5, np.nan], 1.0, "within"),
        ([1, 0], [0.5, 0.4], 0.0, "weeks"),
    ],
)
def test_bad_inputs_are_named(y: list[float], p: list[float], weeks: float, message: str) -> None:
    with pytest.raises(DataValidationError, match=message):
        choose(np.array(y), np.array(p), weeks=weeks, mql=0.1, sql=0.2)


def test_thresholds_round_trip_and_validation() -> None:
    t = Thresholds(mql=0.1, sql=0.4, base_rate=0.05, method={"sql": "fixed"})
    assert Thresholds.from_dict(json.loads(json.dumps(t.to_dict()))) == t
    with pytest.raises(BundleError, match="base_rate"):
        Thresholds.from_dict({"mql": 0.1, "sql": 0.4})
    with pytest.raises(ConfigError, match="below the SQL"):
        Thresholds(mql=0.4, sql=0.4, base_rate=0.1)


T = Thresholds(mql=0.2, sql=0.5, base_rate=0.1)


def test_stage_boundaries_are_inclusive() -> None:
    p = [1.0, 0.5, 0.4999, 0.2, 0.1999, 0.0]
    assert assign_stage(p, T).tolist() == ["SQL", "SQL", "MQL", "MQL", "nurture", "nurture"]


def test_grade_boundaries_are_inclusive() -> None:
    p = [0.5, 0.4999, 0.2, 0.1999, 0.1, 0.0999, float("nan")]
    assert assign_grade(p, T).tolist() == ["A", "B", "B", "C", "C", "D", "D"]
    assert assign_grade(0.3, T).tolist() == "B"  # a scalar gives a 0-d array


def test_threshold_table_adds_up() -> None:
    t = Thresholds(mql=0.4, sql=0.7, base_rate=0.4)
    rows = threshold_table(Y, P, weeks=2.0, thresholds=t, split="valid")
    by_stage = {r["stage"]: r for r in rows}
    assert [r["stage"] for r in rows] == ["SQL", "MQL", "nurture"]
    assert sum(r["leads"] for r in rows) == len(P)  # type: ignore[misc]
    assert sum(r["share"] for r in rows) == pytest.approx(1.0)  # type: ignore[misc]
    assert sum(r["actual_conversions"] for r in rows) == Y.sum()  # type: ignore[misc]
    assert sum(r["expected_conversions"] for r in rows) == pytest.approx(P.sum())  # type: ignore[misc]
    assert by_stage["SQL"]["leads"] == 3
    assert by_stage["SQL"]["leads_per_week"] == 1.5
    assert by_stage["SQL"]["precision"] == pytest.approx(2 / 3)
    assert by_stage["SQL"]["recall"] == pytest.approx(0.5)
    assert by_stage["MQL"]["precision"] == pytest.approx(2 / 3)
    assert by_stage["MQL"]["recall"] == pytest.approx(1.0)
    assert by_stage["nurture"]["recall"] == 1.0
    assert all(r["split"] == "valid" for r in rows)


def test_threshold_table_reports_empty_stage_precision_as_none() -> None:
    t = Thresholds(mql=0.95, sql=0.99, base_rate=0.4)
    rows = threshold_table(Y, P, weeks=1.0, thresholds=t, split="test")
    assert rows[0]["leads"] == 0
    assert rows[0]["precision"] is None
    assert rows[0]["recall"] == 0.0
    assert json.dumps(rows)
