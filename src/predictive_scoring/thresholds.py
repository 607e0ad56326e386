"""MQL / SQL cut-offs from the marketing-sales agreement, and what they imply (DESIGN section 6).

A lead is SQL when its probability is at or above the SQL cut-off, MQL when it is at or above the
MQL cut-off, nurture below. Policies are solved on the distinct scores of the valid split, so
tied scores always land in the same stage.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import numpy.typing as npt

from predictive_scoring.config import ThresholdParams
from predictive_scoring.errors import BundleError, ConfigError, DataValidationError

__all__ = [
    "GRADES",
    "STAGE_NAMES",
    "CutoffCurve",
    "Thresholds",
    "assign_grade",
    "assign_stage",
    "check_labels_and_scores",
    "choose_thresholds",
    "cutoff_curve",
    "grade_of",
    "stage_of",
    "threshold_table",
]

logger = logging.getLogger(__name__)

STAGE_NAMES: tuple[str, ...] = ("SQL", "MQL", "nurture")
GRADES: tuple[str, ...] = ("A", "B", "C", "D")

FloatArray = npt.NDArray[np.float64]


@dataclass(frozen=True)
class Thresholds:
    """The agreed cut-offs; ``base_rate`` is the positive rate on valid, used for grade C/D."""

    mql: float
    sql: float
    base_rate: float
    method: dict[str, str] = field(default_factory=dict)

    def __post_init__(self) -> None:
        values = {"mql": self.mql, "sql": self.sql, "base_rate": self.base_rate}
        for name, value in values.items():
            if not math.isfinite(value):
                raise ConfigError(f"thresholds: '{name}' must be a finite number, got {value!r}")
        if not self.mql < self.sql:
            raise ConfigError(
                f"thresholds: the MQL cut-off must sit below the SQL cut-off, "
                f"got mql={self.mql!r} sql={self.sql!r}; lower 'mql' or raise 'sql'"
            )

    def to_dict(self) -> dict[str, object]:
        """Plain JSON-ready mapping, the content of thresholds.json."""
        return {
            "mql": float(self.mql),
            "sql": float(self.sql),
            "base_rate": float(self.base_rate),
            "method": dict(self.method),
        }

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> Thresholds:
        """Rebuild from :meth:`to_dict` output (thresholds.json or a bundle)."""
        missing = [k for k in ("mql", "sql", "base_rate") if k not in d]
        if missing:
            raise BundleError(
                f"thresholds: missing key(s) {missing}; re-run the 'thresholds' stage "
                "to write a complete thresholds.json"
            )
        try:
            mql, sql, base_rate = float(d["mql"]), float(d["sql"]), float(d["base_rate"])
        except (TypeError, ValueError) as exc:
            raise BundleError(
                f"thresholds: 'mql', 'sql' and 'base_rate' must be numbers: {exc}"
            ) from exc
        method = d.get("method") or {}
        if not isinstance(method, Mapping):
            raise BundleError("thresholds: 'method' must be a mapping of strings")
        return cls(
            mql=mql,
            sql=sql,
            base_rate=base_rate,
            method={str(k): str(v) for k, v in method.items()},
        )


def check_labels_and_scores(
    y: npt.ArrayLike, p: npt.ArrayLike, *, context: str = "predictions"
) -> tuple[FloatArray, FloatArray]:
    """Return ``y`` (0/1) and ``p`` as float arrays, or raise naming what is wrong."""
    y_arr = np.asarray(y, dtype=np.float64).ravel()
    p_arr = np.asarray(p, dtype=np.float64).ravel()
    problems: list[str] = []
    if y_arr.shape != p_arr.shape:
        problems.append(f"{context}: {y_arr.size} labels but {p_arr.size} probabilities")
    if y_arr.size == 0:
        problems.append(f"{context}: no rows; the split is empty")
    if not np.isin(y_arr, (0.0, 1.0)).all():
        problems.append(f"{context}: labels must be 0 or 1 (found other values or missing)")
    if not (np.isfinite(p_arr).all() and ((p_arr >= 0) & (p_arr <= 1)).all()):
        problems.append(f"{context}: probabilities must be finite and within [0, 1]")
    if problems:
        raise DataValidationError(problems)
    return y_arr, p_arr


@dataclass(frozen=True)
class CutoffCurve:
    """Counts at each distinct score used as a cut-off, highest first (ties share a cut-off)."""

    cutoffs: FloatArray  # distinct scores, descending
    selected: FloatArray  # leads with p >= cutoff
    true_positives: FloatArray  # positives with p >= cutoff
    n: int
    n_positive: int


def cutoff_curve(y: FloatArray, p: FloatArray) -> CutoffCurve:
    """Cumulative lead and positive counts at or above every distinct score."""
    order = np.argsort(-p, kind="stable")
    p_sorted, y_sorted = p[order], y[order]
    cum_n = np.arange(1, p.size + 1, dtype=np.float64)
    cum_tp = np.cumsum(y_sorted)
    # the last index of each run of equal scores closes that cut-off
    last = np.r_[np.flatnonzero(np.diff(p_sorted) != 0), p.size - 1]
    return CutoffCurve(
        cutoffs=p_sorted[last],
        selected=cum_n[last],
        true_positives=cum_tp[last],
        n=int(p.size),
        n_positive=int(y.sum()),
    )


def _sql_by_capacity(curve: CutoffCurve, *, capacity: float, weeks: float) -> tuple[float, str]:
    per_week = curve.selected / weeks
    ok = np.flatnonzero(per_week <= capacity)
    if ok.size == 0:
        cut = float(curve.cutoffs[0])
        logger.warning(
            "capacity_per_week=%g cannot be met: %.1f leads/week tie at the top score",
            capacity,
            per_week[0],
        )
        return cut, (
            f"capacity_per_week={capacity:g}; WARNING: unreachable, {per_week[0]:.1f} "
            "leads/week share the top score; used the top score"
        )
    i = int(ok[-1])  # lowest cut-off (most leads) still within capacity
    return float(curve.cutoffs[i]), (
        f"capacity_per_week={capacity:g} ({per_week[i]:.1f} leads/week over {weeks:.1f} weeks)"
    )


def _sql_by_precision(curve: CutoffCurve, *, target: float) -> tuple[float, str]:
    precision = curve.true_positives / curve.selected
    ok = np.flatnonzero(precision >= target)
    if ok.size == 0:
        best = float(precision.max())
        i = int(np.flatnonzero(precision == best)[-1])
        logger.warning("min_precision=%g is unreachable; best achievable is %.3f", target, best)
        return float(curve.cutoffs[i]), (
            f"min_precision={target:g}; WARNING: unreachable, used the best achievable "
            f"precision {best:.3f}"
        )
    i = int(ok[-1])  # lowest cut-off that still meets the target: the most leads
    return float(curve.cutoffs[i]), f"min_precision={target:g} (precision {precision[i]:.3f})"


def _mql_by_recall(curve: CutoffCurve, *, target: float) -> tuple[float, str]:
    recall = curve.true_positives / curve.n_positive
    # recall grows as the cut-off falls, so the first index reaching the target is the highest
    i = int(np.flatnonzero(recall >= target - 1e-12)[0])
    return float(curve.cutoffs[i]), f"min_recall={target:g} (recall {recall[i]:.3f})"


def choose_thresholds(
    y: npt.ArrayLike,
    p: npt.ArrayLike,
    *,
    weeks: float,
    params: ThresholdParams,
    split: str = "valid",
) -> Thresholds:
    """Solve the MQL/SQL agreement in ``params`` on one split (valid), spanning ``weeks``."""
    y_arr, p_arr = check_labels_and_scores(y, p, context=f"thresholds on {split}")
    if not (math.isfinite(weeks) and weeks > 0):
        raise DataValidationError(
            [f"thresholds on {split}: the split must span a positive number of weeks, got {weeks}"]
        )
    curve = cutoff_curve(y_arr, p_arr)
    needs_positives = params.min_precision is not None or params.min_recall is not None
    if needs_positives and curve.n_positive == 0:
        raise DataValidationError(
            [
                f"thresholds on {split}: no positive labels, so 'min_precision'/'min_recall' "
                "cannot be solved; use a longer valid period or fixed 'mql'/'sql' cut-offs"
            ]
        )
    method: dict[str, str] = {}
    if params.sql is not None:
        sql, method["sql"] = float(params.sql), f"fixed sql={params.sql:g}"
    elif params.capacity_per_week is not None:
        sql, method["sql"] = _sql_by_capacity(
            curve, capacity=params.capacity_per_week, weeks=weeks
        )
    else:
        assert params.min_precision is not None  # guaranteed by ThresholdParams
        sql, method["sql"] = _sql_by_precision(curve, target=params.min_precision)

    if params.mql is not None:
        mql, method["mql"] = float(params.mql), f"fixed mql={params.mql:g}"
    else:
        assert params.min_recall is not None  # guaranteed by ThresholdParams
        mql, method["mql"] = _mql_by_recall(curve, target=params.min_recall)

    if mql >= sql:
        below = curve.cutoffs[curve.cutoffs < sql]
        new = float(below[0]) if below.size else float(np.nextafter(sql, -np.inf))
        method["mql"] += f"; WARNING: gave {mql:.4g} >= sql, lowered to {new:.4g} just below sql"
        logger.warning("MQL cut-off %.4g is not below SQL %.4g; lowered to %.4g", mql, sql, new)
        mql = new

    thresholds = Thresholds(mql=mql, sql=sql, base_rate=float(y_arr.mean()), method=method)
    logger.info("thresholds on %s: sql=%.4f mql=%.4f (%s)", split, sql, mql, method)
    return thresholds


def assign_stage(p: npt.ArrayLike, t: Thresholds) -> npt.NDArray[np.str_]:
    """'SQL' at or above the SQL cut-off, 'MQL' at or above the MQL cut-off, else 'nurture'."""
    p_arr = np.asarray(p, dtype=np.float64)
    return np.where(p_arr >= t.sql, "SQL", np.where(p_arr >= t.mql, "MQL", "nurture"))


# Grades by how many cut-offs a probability passes (0 to 3).
_GRADE_NAMES = GRADES[::-1]
_GRADES = np.array(_GRADE_NAMES)


def stage_of(p: float, t: Thresholds) -> str:
    """:func:`assign_stage` for one probability, without arrays (the one-lead path)."""
    return "SQL" if p >= t.sql else "MQL" if p >= t.mql else "nurture"


def grade_of(p: float, t: Thresholds) -> str:
    """:func:`assign_grade` for one probability, without arrays (the one-lead path)."""
    return _GRADE_NAMES[(p >= t.mql / 2) + (p >= t.mql) + (p >= t.sql)]


def assign_grade(p: npt.ArrayLike, t: Thresholds) -> npt.NDArray[np.str_]:
    """'A' at or above SQL, 'B' at or above MQL, 'C' at or above half the MQL cut-off, 'D' below.

    C marks the nurture leads closest to MQL, the ones worth a marketing touch next.
    """
    p_arr = np.asarray(p, dtype=np.float64)
    # Cut-offs passed (a probability equal to one belongs above it; NaN passes none).
    passed = (p_arr >= t.mql / 2).astype(np.int64) + (p_arr >= t.mql) + (p_arr >= t.sql)
    return _GRADES[passed]


def threshold_table(
    y: npt.ArrayLike,
    p: npt.ArrayLike,
    *,
    weeks: float,
    thresholds: Thresholds,
    split: str,
    per: str = "week",
) -> list[dict[str, float | int | str | None]]:
    """One row per stage: volume, precision, cumulative recall, expected and actual conversions.

    ``leads_per_week`` is the volume per ``per``, which the row states (``volume_per``): a week,
    or for data without dates (``weeks`` 1) the scored batch, e.g. "batch of 1,850 leads".
    ``precision`` is the conversion rate within the stage (None when the stage is empty);
    ``recall`` is the share of all positives at or above the stage's cut-off (None without
    positives).
    """
    y_arr, p_arr = check_labels_and_scores(y, p, context=f"threshold table on {split}")
    if not (math.isfinite(weeks) and weeks > 0):
        raise DataValidationError(
            [f"threshold table on {split}: the split must span a positive number of weeks"]
        )
    stages = assign_stage(p_arr, thresholds)
    n, n_pos = p_arr.size, float(y_arr.sum())
    cutoffs = {"SQL": thresholds.sql, "MQL": thresholds.mql, "nurture": 0.0}
    rows: list[dict[str, float | int | str | None]] = []
    for stage in STAGE_NAMES:
        mask = stages == stage
        leads = int(mask.sum())
        actual = float(y_arr[mask].sum())
        at_or_above = float(y_arr[p_arr >= cutoffs[stage]].sum())
        rows.append(
            {
                "split": split,
                "stage": stage,
                "cutoff": float(cutoffs[stage]),
                "leads": leads,
                "leads_per_week": leads / weeks,
                "volume_per": per,
                "share": leads / n,
                "precision": actual / leads if leads else None,
                "recall": at_or_above / n_pos if n_pos else None,
                "expected_conversions": float(p_arr[mask].sum()),
                "actual_conversions": actual,
            }
        )
    return rows
