"""Label-leakage checks on lead attributes: columns that are only known once the outcome is known.

A column leaks when it is filled mostly for one class (a field sales fills in after the deal),
when it separates the classes almost perfectly on its own, or when it holds a date that falls
after the lead's outcome (a ``closed_date``). These are certain leaks.

A second, weaker class is flagged for review, not as a leak: a column that sales may fill in after
contact (a rating, a status, tags, a reason). Its fill rate differs clearly by class and it
separates the classes fairly well on its own (AUC from ``_REVIEW_AUC``) without reaching
``leakage_auc``; whether it is known before contact is for a person to decide.

The checks work on the canonical frames that ``schema.load_raw`` returns (``lead_id``, ``stage``,
``ts``). They log nothing: the ``validate`` stage logs each flag once.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass
from typing import Any, Literal

import numpy as np
import pandas as pd

from predictive_scoring.config import DataParams
from predictive_scoring.errors import LeakageError

__all__ = [
    "FUNNEL_ORDER",
    "LeakageFlag",
    "LeakageReason",
    "detect_leakage",
    "ever_reached",
    "raise_if_strict",
    "rank_auc",
    "reached_at",
    "review_post_contact",
]

logger = logging.getLogger(__name__)

LeakageReason = Literal[
    "missing_by_label", "separates_classes", "timestamp_after_outcome", "post_contact"
]
FlagKind = Literal["leak", "review"]

# Reaching a later stage implies having passed the earlier ones; "lost" is terminal, not a rung.
FUNNEL_ORDER: tuple[str, ...] = ("mql", "sql", "opportunity", "won")

_MIN_CLASS_ROWS = 5  # below this many leads in either class the checks say nothing useful
_ONE_SIDED_MIN_ROWS = 10  # a column filled only for one class needs this many filled rows
_ONE_SIDED_MAX_OTHER = 0.002  # ...and at most this fill rate in the other class
_OOF_FOLDS = 5
_OOF_SMOOTHING = 5.0
_AFTER_OUTCOME_SHARE = 0.5
_REVIEW_AUC = 0.7  # a post-contact column separates at least this well on its own...
_REVIEW_MISSING_GAP = 0.2  # ...and its fill rate differs at least this much between classes


@dataclass(frozen=True)
class LeakageFlag:
    """One attribute column suspected of leaking the label, and why."""

    column: str
    reason: LeakageReason
    detail: str
    statistic: float
    kind: FlagKind = "leak"
    evidence: dict[str, float] | None = None

    def message(self) -> str:
        """One line naming the column, the reason and the fix."""
        if self.kind == "review":
            return (
                f"column '{self.column}' may be filled in after contact (review, not a certain "
                f"leak): {self.detail}; if sales sets it after contacting the lead (a rating, "
                f"status, tag or reason), add it to exclude_columns in the data section of "
                f"params.yaml, otherwise keep it"
            )
        return (
            f"column '{self.column}' likely leaks the label ({self.reason}): {self.detail}; "
            f"if it is only known after the outcome, add it to exclude_columns in the data "
            f"section of params.yaml"
        )

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready form for the stage output and MLflow."""
        return asdict(self)


def _reached_mask(outcomes: pd.DataFrame, stage: str) -> pd.Series:
    if stage not in FUNNEL_ORDER:
        raise ValueError(f"target stage must be one of {FUNNEL_ORDER}, got {stage!r}")
    later = set(FUNNEL_ORDER[FUNNEL_ORDER.index(stage) :])
    return outcomes["stage"].isin(later)


def ever_reached(outcomes: pd.DataFrame, leads: pd.DataFrame, stage: str) -> pd.Series:
    """1 for each lead that ever reaches ``stage`` or a later funnel stage; aligned with leads."""
    reached = set(outcomes.loc[_reached_mask(outcomes, stage), "lead_id"])
    return pd.Series(
        leads["lead_id"].isin(reached).to_numpy().astype("int8"),
        index=leads.index,
        name="label",
    )


def reached_at(outcomes: pd.DataFrame, leads: pd.DataFrame, stage: str) -> pd.Series:
    """When each lead first reaches ``stage`` or a later stage (NaT: never); aligned with leads."""
    hits = outcomes.loc[_reached_mask(outcomes, stage)]
    first = hits.groupby("lead_id", sort=False)["ts"].min()
    # reindex keeps the time dtype even when no lead reaches the stage (map would cast to float)
    times = first.reindex(leads["lead_id"].to_numpy()).array
    return pd.Series(times, index=leads.index, name="reached_at")


def rank_auc(scores: np.ndarray[Any, Any], label: np.ndarray[Any, Any]) -> float:
    """ROC AUC of ``scores`` for a 0/1 ``label`` by ranks (ties count a half); 0.5 if one class."""
    pos = label == 1
    n_pos = int(pos.sum())
    n_neg = len(label) - n_pos
    if n_pos == 0 or n_neg == 0:
        return 0.5
    ranks = pd.Series(scores).rank(method="average").to_numpy()
    return float((ranks[pos].sum() - n_pos * (n_pos + 1) / 2) / (n_pos * n_neg))


def _two_sided(auc: float) -> float:
    return max(auc, 1.0 - auc)


def _numeric_scores(values: pd.Series) -> np.ndarray[Any, Any]:
    x = pd.to_numeric(values, errors="coerce").astype("float64").to_numpy()
    finite = x[~np.isnan(x)]
    low = (finite.min() - 1.0) if finite.size else 0.0
    # Missing becomes its own value below every real one, so "missing" can separate too.
    return np.where(np.isnan(x), low, x)


def _out_of_fold_rates(values: pd.Series, label: np.ndarray[Any, Any], seed: int) -> np.ndarray:
    """Each row's level target rate, learned on the other folds (a unique level gets no credit)."""
    levels = values.astype("object").where(values.notna(), "\x00missing").to_numpy()
    n = len(levels)
    folds = np.random.default_rng(seed).permutation(n) % _OOF_FOLDS
    out = np.empty(n, dtype="float64")
    frame = pd.DataFrame({"level": levels, "y": label.astype("float64"), "fold": folds})
    for k in range(_OOF_FOLDS):
        train = frame[frame["fold"] != k]
        prior = float(train["y"].mean()) if len(train) else 0.5
        stats = train.groupby("level", sort=False)["y"].agg(["sum", "count"])
        rate = (stats["sum"] + prior * _OOF_SMOOTHING) / (stats["count"] + _OOF_SMOOTHING)
        test = frame["fold"].to_numpy() == k
        out[test] = frame.loc[test, "level"].map(rate).fillna(prior).to_numpy(dtype="float64")
    return out


def _fill_flags(
    column: str, filled: np.ndarray, label: np.ndarray, params: DataParams
) -> list[LeakageFlag]:
    pos = label == 1
    fill_pos = float(filled[pos].mean())
    fill_neg = float(filled[~pos].mean())
    gap = abs(fill_pos - fill_neg)
    rates = f"filled for {fill_pos:.1%} of converted leads and {fill_neg:.1%} of the others"
    if gap >= params.leakage_missing_gap:
        return [LeakageFlag(column, "missing_by_label", rates, gap)]
    # Filled only for one class, even if rarely: a field that exists only after the outcome.
    for mine, other, n_mine, who in (
        (fill_pos, fill_neg, int(filled[pos].sum()), "converted"),
        (fill_neg, fill_pos, int(filled[~pos].sum()), "non-converted"),
    ):
        if n_mine >= _ONE_SIDED_MIN_ROWS and other <= _ONE_SIDED_MAX_OTHER and mine > 0:
            detail = f"{rates}: filled (almost) only for {who} leads ({n_mine} rows)"
            return [LeakageFlag(column, "missing_by_label", detail, gap)]
    return []


def _separation(values: pd.Series, kind: str, label: np.ndarray) -> tuple[float, str]:
    """How well the column alone separates the classes (two-sided AUC) and by what."""
    if kind == "numeric":
        value_auc = _two_sided(rank_auc(_numeric_scores(values), label))
        how = "its value"
    else:
        value_auc = _two_sided(rank_auc(_out_of_fold_rates(values, label, seed=0), label))
        how = f"its levels (out-of-fold target rate over {_OOF_FOLDS} folds)"
    missing_auc = _two_sided(rank_auc(values.isna().to_numpy().astype("float64"), label))
    if missing_auc > value_auc:
        value_auc, how = missing_auc, "whether it is missing"
    return value_auc, how


def _separation_flag(
    column: str, values: pd.Series, kind: str, label: np.ndarray, params: DataParams
) -> LeakageFlag | None:
    value_auc, how = _separation(values, kind, label)
    if value_auc >= params.leakage_auc:
        detail = f"{how} alone separates the classes with AUC {value_auc:.3f}"
        return LeakageFlag(column, "separates_classes", detail, value_auc)
    return None


def _after_outcome_flag(
    column: str, values: pd.Series, outcome_time: pd.Series
) -> LeakageFlag | None:
    both = values.notna() & outcome_time.notna()
    n = int(both.sum())
    if n < _MIN_CLASS_ROWS:
        return None
    after = float((values[both] >= outcome_time[both]).mean())
    if after >= _AFTER_OUTCOME_SHARE:
        detail = (
            f"on or after the lead's outcome time for {after:.1%} of the {n} leads that have both"
        )
        return LeakageFlag(column, "timestamp_after_outcome", detail, after)
    return None


def detect_leakage(
    leads: pd.DataFrame,
    label: pd.Series,
    attribute_types: Mapping[str, str],
    params: DataParams,
    *,
    outcome_time: pd.Series | None = None,
    datetime_columns: Sequence[str] = (),
) -> list[LeakageFlag]:
    """Flag attribute and datetime columns that leak ``label`` (0/1, aligned with ``leads``).

    ``outcome_time`` (aligned with ``leads``, NaT where there is none) enables the check for dates
    that fall after the outcome. Returns an empty list when either class has under 5 leads.
    """
    if len(label) != len(leads):
        raise ValueError(f"label has {len(label)} rows but leads has {len(leads)}")
    y = pd.to_numeric(label, errors="coerce").to_numpy(dtype="float64")
    known = ~np.isnan(y)
    y_known = y[known].astype("int8")
    n_pos = int(y_known.sum())
    if n_pos < _MIN_CLASS_ROWS or len(y_known) - n_pos < _MIN_CLASS_ROWS:
        logger.warning(
            "leakage checks skipped: %d converted and %d other leads", n_pos, len(y_known) - n_pos
        )
        return []
    frame = leads.loc[known]
    flags: list[LeakageFlag] = []
    for column, kind in attribute_types.items():
        if column not in frame.columns:
            continue
        values = frame[column]
        flags += _fill_flags(column, values.notna().to_numpy(), y_known, params)
        flag = _separation_flag(column, values, kind, y_known, params)
        if flag is not None:
            flags.append(flag)
    times = outcome_time.loc[known] if outcome_time is not None else None
    for column in datetime_columns:
        if column not in frame.columns:
            continue
        values = frame[column]
        flags += _fill_flags(column, values.notna().to_numpy(), y_known, params)
        if times is not None:
            flag = _after_outcome_flag(column, values, times)
            if flag is not None:
                flags.append(flag)
    return flags


def review_post_contact(
    leads: pd.DataFrame,
    label: pd.Series,
    attribute_types: Mapping[str, str],
    *,
    skip: Sequence[str] = (),
) -> list[LeakageFlag]:
    """Review flags for attribute columns that look filled in after contact (see the module
    docstring), with the evidence: fill rate per class and the column's own AUC. Columns in
    ``skip`` (already flagged as certain leaks) are left out."""
    y = pd.to_numeric(label, errors="coerce").to_numpy(dtype="float64")
    known = ~np.isnan(y)
    y_known = y[known].astype("int8")
    n_pos = int(y_known.sum())
    if n_pos < _MIN_CLASS_ROWS or len(y_known) - n_pos < _MIN_CLASS_ROWS:
        return []
    frame = leads.loc[known]
    pos = y_known == 1
    flags: list[LeakageFlag] = []
    for column, kind in attribute_types.items():
        if column not in frame.columns or column in skip:
            continue
        values = frame[column]
        filled = values.notna().to_numpy()
        fill_pos, fill_neg = float(filled[pos].mean()), float(filled[~pos].mean())
        if abs(fill_pos - fill_neg) < _REVIEW_MISSING_GAP:
            continue
        auc, how = _separation(values, kind, y_known)
        if auc < _REVIEW_AUC:
            continue
        detail = (
            f"missing for {1 - fill_pos:.1%} of converted leads and {1 - fill_neg:.1%} of the "
            f"others; {how} alone separates the classes with AUC {auc:.3f}"
        )
        evidence = {
            "missing_rate_converted": round(1 - fill_pos, 4),
            "missing_rate_other": round(1 - fill_neg, 4),
            "auc": round(auc, 4),
        }
        flags.append(LeakageFlag(column, "post_contact", detail, auc, "review", evidence))
    return flags


def raise_if_strict(flags: Sequence[LeakageFlag], params: DataParams) -> None:
    """Raise LeakageError listing every certain leak when ``params.strict`` is set; review flags
    never fail the build."""
    leaks = [flag for flag in flags if flag.kind == "leak"]
    if params.strict and leaks:
        raise LeakageError([f"{params.leads}: {flag.message()}" for flag in leaks])
