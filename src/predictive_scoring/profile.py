"""The reference profile in the bundle: what the model saw at export, for the monitor to compare.

At export the held-out split is scored by the exported scorer, and every model input and the
probability are summarised as bins plus proportions: quantile bins for numbers (right-closed,
their upper bounds stored as ``edges``), one bin per level for categoricals (the score log
stores level codes, so the bins are codes), and a missing bin. The same bins binned again in
DuckDB over the score log give the Population Stability Index (:func:`psi`). The bundle also
records the capacity agreement: what the thresholds stage promised per week and per stage.
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Literal

import numpy as np
import numpy.typing as npt
import pandas as pd

if TYPE_CHECKING:
    from predictive_scoring.scoring import Scorer

__all__ = [
    "DEFAULT_BINS",
    "PSI_EPSILON",
    "REFERENCE_FORMAT",
    "Distribution",
    "Reference",
    "auc_from_counts",
    "average_precision_from_counts",
    "build_reference",
    "capacity_agreement",
    "expected_metrics",
    "monitor_metadata",
    "psi",
]

REFERENCE_FORMAT = 1
DEFAULT_BINS = 10
# Empty bins get this proportion on either side, so PSI stays finite (Evidently's choice).
PSI_EPSILON = 1e-4
# Probabilities are grouped to this many decimals for AUCs from counts (DuckDB groups the same).
PROBABILITY_DECIMALS = 3

FloatArray = npt.NDArray[np.float64]


@dataclass(frozen=True)
class Distribution:
    """One variable's reference distribution: bins, their proportions, and the missing share.

    Numeric bins are right-closed: ``(-inf, e0], (e0, e1], ..., (e_last, inf)``, so there are
    ``len(edges) + 1`` of them (DuckDB's ``histogram(x, edges)`` bins the same way).
    Categorical bins are the level codes ``0 .. len(labels) - 1``. Proportions are shares of all
    rows, so they sum to ``1 - missing``.
    """

    kind: Literal["numeric", "categorical"]
    proportions: tuple[float, ...]
    missing: float
    edges: tuple[float, ...] = ()
    labels: tuple[str, ...] = ()

    @property
    def n_bins(self) -> int:
        return len(self.proportions)

    def bin_labels(self) -> list[str]:
        """Readable names of the bins, then ``missing``."""
        if self.kind == "categorical":
            names = list(self.labels)
        else:
            bounds = ["-inf", *(f"{e:.4g}" for e in self.edges), "inf"]
            names = [f"({lo}, {hi}]" for lo, hi in itertools.pairwise(bounds)]
            names[-1] = names[-1].replace("inf]", "inf)")
        return [*names, "missing"]

    def counts(self, values: npt.ArrayLike) -> tuple[FloatArray, float]:
        """Counts per bin and of missing values (NaN; for categoricals also unknown codes)."""
        x = np.asarray(values, dtype=np.float64)
        present = ~np.isnan(x)
        if self.kind == "categorical":
            codes = x[present]
            known = (codes >= 0) & (codes < self.n_bins) & (codes == np.floor(codes))
            counts = np.bincount(codes[known].astype(np.int64), minlength=self.n_bins)
            return counts.astype(np.float64), float(x.size - known.sum())
        index = np.searchsorted(np.asarray(self.edges, dtype=np.float64), x[present], "left")
        counts = np.bincount(index, minlength=self.n_bins)
        return counts.astype(np.float64), float(x.size - present.sum())

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {
            "kind": self.kind,
            "proportions": list(self.proportions),
            "missing": self.missing,
        }
        if self.kind == "numeric":
            out["edges"] = list(self.edges)
        else:
            out["labels"] = list(self.labels)
        return out

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Distribution:
        kind = data["kind"]
        if kind not in ("numeric", "categorical"):
            raise ValueError(f"unknown distribution kind {kind!r}")
        dist = cls(
            kind=kind,
            proportions=tuple(float(v) for v in data["proportions"]),
            missing=float(data["missing"]),
            edges=tuple(float(v) for v in data.get("edges", ())),
            labels=tuple(str(v) for v in data.get("labels", ())),
        )
        expected = len(dist.edges) + 1 if kind == "numeric" else len(dist.labels)
        if dist.n_bins != expected:
            raise ValueError(f"{dist.n_bins} proportions for {expected} bins")
        return dist


def _numeric_edges(values: FloatArray, bins: int) -> tuple[float, ...]:
    """Quantile cut points that are data values; none at or above the maximum, so every
    reference bin holds at least one row (a binary feature gets one edge, a constant none)."""
    if values.size == 0:
        return ()
    qs = np.quantile(values, np.arange(1, bins) / bins, method="inverted_cdf")
    top = float(values.max())
    return tuple(float(e) for e in np.unique(qs) if e < top)


def distribution_of(
    values: npt.ArrayLike, *, labels: Sequence[str] | None = None, bins: int = DEFAULT_BINS
) -> Distribution:
    """The reference distribution of one column (``labels`` given: categorical level codes)."""
    x = np.asarray(values, dtype=np.float64)
    n = max(x.size, 1)
    if labels is not None:
        dist = Distribution(
            kind="categorical", proportions=(0.0,) * len(labels), missing=0.0, labels=tuple(labels)
        )
    else:
        edges = _numeric_edges(x[~np.isnan(x)], bins)
        dist = Distribution(
            kind="numeric", proportions=(0.0,) * (len(edges) + 1), missing=0.0, edges=edges
        )
    counts, missing = dist.counts(x)
    return Distribution(
        kind=dist.kind,
        proportions=tuple(float(c) / n for c in counts),
        missing=missing / n,
        edges=dist.edges,
        labels=dist.labels,
    )


@dataclass(frozen=True)
class Reference:
    """The model inputs' and the probability's distributions on held-out training data."""

    score: Distribution
    features: dict[str, Distribution]
    rows: int
    split: str = "test"
    label: dict[str, Any] = field(default_factory=dict)  # target_stage, horizon_days
    # what the probabilities alone imply on the reference (CBPE): mean, ROC-AUC, PR-AUC
    expected: dict[str, float] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        # features as a list: the bundle's JSON sorts keys, and definition order reads better
        return {
            "format": REFERENCE_FORMAT,
            "split": self.split,
            "rows": self.rows,
            "label": dict(self.label),
            "expected": dict(self.expected),
            "score": self.score.to_dict(),
            "features": [{"name": k, **v.to_dict()} for k, v in self.features.items()],
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Reference:
        if data.get("format") != REFERENCE_FORMAT:
            raise ValueError(
                f"reference profile format {data.get('format')!r}, this version reads "
                f"{REFERENCE_FORMAT}"
            )
        return cls(
            score=Distribution.from_dict(data["score"]),
            features={f["name"]: Distribution.from_dict(f) for f in data["features"]},
            rows=int(data["rows"]),
            split=str(data.get("split", "test")),
            label=dict(data.get("label") or {}),
            expected={k: float(v) for k, v in (data.get("expected") or {}).items()},
        )


def build_reference(
    X: npt.ArrayLike,
    probabilities: npt.ArrayLike,
    *,
    feature_names: Sequence[str],
    levels: Mapping[str, Sequence[str]],
    split: str = "test",
    label: Mapping[str, Any] | None = None,
    bins: int = DEFAULT_BINS,
) -> Reference:
    """Profile a model matrix (definition order, categoricals as level codes, as the score log
    stores them) and its calibrated probabilities."""
    matrix = np.asarray(X, dtype=np.float64)
    if matrix.ndim != 2 or matrix.shape[1] != len(feature_names):
        raise ValueError(f"X has shape {matrix.shape}, expected (n, {len(feature_names)})")
    features = {
        name: distribution_of(matrix[:, i], labels=levels.get(name), bins=bins)
        for i, name in enumerate(feature_names)
    }
    return Reference(
        score=distribution_of(probabilities, bins=bins),
        features=features,
        rows=int(matrix.shape[0]),
        split=split,
        label=dict(label or {}),
        expected=expected_metrics(probabilities),
    )


def _grouped(probabilities: npt.ArrayLike) -> tuple[FloatArray, FloatArray]:
    """Expected positives and negatives per probability group, lowest group first."""
    p = np.asarray(probabilities, dtype=np.float64)
    p = p[~np.isnan(p)]
    groups, index = np.unique(np.round(p, PROBABILITY_DECIMALS), return_inverse=True)
    pos = np.bincount(index, weights=p, minlength=groups.size).astype(np.float64)
    neg = np.bincount(index, weights=1.0 - p, minlength=groups.size).astype(np.float64)
    return pos, neg


def auc_from_counts(pos: npt.ArrayLike, neg: npt.ArrayLike) -> float:
    """ROC-AUC from positives and negatives per score group (lowest score first): the chance a
    positive outranks a negative, ties counting half. Counts may be expected (fractional)
    ones, which is CBPE's estimate (NannyML): each probability a Bernoulli label."""
    P, N = np.asarray(pos, dtype=np.float64), np.asarray(neg, dtype=np.float64)
    total_pos, total_neg = P.sum(), N.sum()
    if total_pos <= 0 or total_neg <= 0:
        return math.nan
    below = np.cumsum(N) - N  # negatives in lower groups
    return float(np.sum(P * (below + 0.5 * N)) / (total_pos * total_neg))


def average_precision_from_counts(pos: npt.ArrayLike, neg: npt.ArrayLike) -> float:
    """PR-AUC as average precision (scikit-learn's step sum, one step per score group) from
    positives and negatives per group, lowest score first."""
    P = np.asarray(pos, dtype=np.float64)[::-1]
    N = np.asarray(neg, dtype=np.float64)[::-1]
    if P.sum() <= 0:
        return math.nan
    tp, fp = np.cumsum(P), np.cumsum(N)
    precision = np.divide(tp, tp + fp, out=np.zeros_like(tp), where=(tp + fp) > 0)
    return float(np.sum(precision * P) / P.sum())


def expected_metrics(probabilities: npt.ArrayLike) -> dict[str, float]:
    """What calibrated probabilities imply with no label at all (CBPE): the conversion rate,
    ROC-AUC and PR-AUC."""
    p = np.asarray(probabilities, dtype=np.float64)
    pos, neg = _grouped(p)
    return {
        "mean_probability": float(np.nanmean(p)) if p.size else math.nan,
        "roc_auc": auc_from_counts(pos, neg),
        "pr_auc": average_precision_from_counts(pos, neg),
    }


def psi(reference: Distribution, counts: npt.ArrayLike, missing: float) -> float:
    """Population Stability Index of current counts (per bin, plus missing) against the
    reference: sum over bins of (current - reference) * ln(current / reference), proportions
    floored at :data:`PSI_EPSILON`. NaN when there is no current row."""
    current = np.append(np.asarray(counts, dtype=np.float64), float(missing))
    total = current.sum()
    if total <= 0:
        return math.nan
    expected = np.append(np.asarray(reference.proportions, dtype=np.float64), reference.missing)
    if expected.size != current.size:
        raise ValueError(f"{current.size - 1} current bins for {reference.n_bins} reference bins")
    actual = np.maximum(current / total, PSI_EPSILON)
    expected = np.maximum(expected, PSI_EPSILON)
    return float(np.sum((actual - expected) * np.log(actual / expected)))


def capacity_agreement(table: pd.DataFrame, *, split: str = "valid") -> dict[str, Any]:
    """What the thresholds stage promised, per stage: leads per week, their share, the expected
    conversion rate (precision) and conversions, from its table (reports/thresholds.csv).

    ``split`` is where the cut-offs were chosen (valid); the other splits are kept for context.
    """
    columns = {"split", "stage", "cutoff", "leads_per_week", "share", "precision"}
    missing = columns - set(table.columns)
    if missing:
        raise ValueError(f"the thresholds table lacks the columns {sorted(missing)}")

    def stages(rows: pd.DataFrame) -> dict[str, dict[str, float | None]]:
        out: dict[str, dict[str, float | None]] = {}
        for row in rows.to_dict("records"):
            out[str(row["stage"])] = {
                key: (None if pd.isna(row.get(key)) else float(row[key]))
                for key in (
                    "cutoff",
                    "leads",
                    "leads_per_week",
                    "share",
                    "precision",
                    "expected_conversions",
                )
                if key in row
            }
        return out

    by_split = {str(s): stages(rows) for s, rows in table.groupby("split", sort=False)}
    if split not in by_split:
        raise ValueError(f"the thresholds table has no rows for the split {split!r}")
    return {"split": split, "stages": by_split[split], "splits": by_split}


def monitor_metadata(
    scorer: Scorer, test: pd.DataFrame, table: pd.DataFrame, *, label: Mapping[str, Any]
) -> dict[str, Any]:
    """What the bundle carries for the monitor: the reference profile of the featurised test
    split as ``scorer`` sees it (level codes, calibrated probabilities), and the capacity
    agreement of the thresholds table. ``label`` is the target stage and horizon."""
    from predictive_scoring.train import encode_frame

    X = encode_frame(test, scorer.definition, scorer.levels)
    reference = build_reference(
        X,
        scorer.predict_matrix(X),
        feature_names=scorer.feature_names,
        levels=scorer.levels,
        split="test",
        label=label,
    )
    return {"reference": reference.to_dict(), "capacity": capacity_agreement(table)}
