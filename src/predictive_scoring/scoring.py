"""The scorer: the model bundle on disk and the one scoring path behind every consumer.

Every input reaches it through :mod:`predictive_scoring.ingress` (:meth:`Scorer.admit`), and the
service, the CRM file scorer and the MLflow pyfunc all call :meth:`Scorer.score_batch` (or
:meth:`Scorer.score_batch_with_features`, which also returns the feature matrix for the score log),
which runs the online executor, the LightGBM booster, the calibrator, the thresholds and the
reasons.
Its bundle on disk (the format) is :mod:`predictive_scoring.bundle`'s.
"""

from __future__ import annotations

import hashlib
import json
import math
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import lightgbm as lgb
import numpy as np
import pandas as pd

from predictive_scoring.bundle import BundleParts, read_bundle, write_bundle
from predictive_scoring.calibration import Calibrator
from predictive_scoring.errors import BundleError, ScoringInputError
from predictive_scoring.explain import feature_describers
from predictive_scoring.features import FeatureDefinition
from predictive_scoring.ingress import (
    Admitted,
    InputWarning,
    LeadInput,
    Limits,
    ModelInputs,
    RawLeads,
    admit,
    raw_from_lead_inputs,
    raw_from_nested,
)
from predictive_scoring.online import LeadBatch, OnlineExecutor
from predictive_scoring.rowpredict import RowPredictor
from predictive_scoring.thresholds import (
    Thresholds,
    assign_grade,
    assign_stage,
    grade_of,
    stage_of,
)
from predictive_scoring.treeshap import TreeShap

__all__ = [
    "FRAME_LIMITS",
    "LeadInput",
    "Reason",
    "ScoreResult",
    "Scorer",
    "probability_to_score",
    "results_frame",
    "score_nested",
    "score_of",
]

# Up to this many rows LightGBM predicts on the calling thread: for a request of a few leads,
# waking OpenMP workers costs more than the trees (and much more on a busy machine).
SINGLE_THREAD_ROWS = 64
# Files and frames are scored in chunks: no limit on leads or events, ids need not be unique.
FRAME_LIMITS = Limits(max_leads=None, max_events_per_lead=None, unique_ids=False)
# Reason sentences kept per loaded model (feature, value) before the memo starts afresh.
_MAX_TEXTS = 100_000


@dataclass(frozen=True)
class Reason:
    """One signed factor behind a score; impact is in log-odds (SHAP, LightGBM pred_contrib)."""

    feature: str
    text: str
    impact: float


@dataclass(frozen=True)
class ScoreResult:
    lead_id: str
    probability: float
    score: int
    stage: str
    grade: str
    positive: list[Reason]
    negative: list[Reason]
    warnings: list[InputWarning] = field(default_factory=list)


def probability_to_score(p: np.ndarray) -> np.ndarray:
    """1-99 integer score from a probability."""
    return np.clip(np.rint(np.asarray(p) * 100.0), 1, 99).astype(np.int64)


def score_of(p: float) -> int:
    """:func:`probability_to_score` for one finite probability, without arrays.

    ``round`` rounds half to even as ``np.rint`` does, on the same product ``p * 100.0``.
    """
    return min(max(round(p * 100.0), 1), 99)


class Scorer:
    """A loaded model: definition, booster, calibrator, thresholds and metadata."""

    def __init__(
        self,
        *,
        definition: FeatureDefinition,
        levels: Mapping[str, Sequence[str]],
        booster: lgb.Booster,
        calibrator: Calibrator,
        thresholds: Thresholds,
        metadata: Mapping[str, Any] | None = None,
    ) -> None:
        self.definition = definition
        self.levels = {k: list(v) for k, v in levels.items()}
        self.booster = booster
        self.calibrator = calibrator
        self.thresholds = thresholds
        self.metadata: dict[str, Any] = dict(metadata or {})
        self.executor = OnlineExecutor(definition, self.levels)
        self.feature_names = definition.feature_names
        self._describers = feature_describers(definition, self.levels)
        self._texts: dict[tuple[int, float | None], str] = {}
        self.inputs = ModelInputs.of(definition, self.levels, self.metadata.get("inputs"))
        self.input_columns = list(self.inputs.columns)
        # Exact SHAP from per-leaf tables; None (pred_contrib) for models they don't cover.
        self.tree_shap = TreeShap.from_booster(booster)
        self._row_predictor = RowPredictor.for_booster(booster)
        if booster.num_feature() != len(self.feature_names):
            raise BundleError(
                f"the model expects {booster.num_feature()} features but the definition has "
                f"{len(self.feature_names)}; re-export the bundle"
            )

    # --- identity -----------------------------------------------------------------------------
    @property
    def name(self) -> str:
        return str(self.metadata.get("name", "lead-scoring"))

    @property
    def version(self) -> str:
        return str(self.metadata.get("version", "unregistered"))

    @property
    def lineage(self) -> dict[str, str]:
        """What produced a score: the registry version, the model's checksum, hashes of the
        feature definition and of the thresholds, and the training data's DVC hash."""
        return {
            "model_name": self.name,
            "model_version": self.version,
            "model_sha256": str(self.metadata.get("model_sha256", "")),
            "definition_hash": _digest(self.definition.to_dict()),
            "thresholds_version": _digest(self.thresholds.to_dict()),
            "data_hash": str(self.metadata.get("data_md5", "unknown")),
        }

    def with_metadata(self, **updates: Any) -> Scorer:
        """A copy with updated metadata (for example the registry version once registered)."""
        return Scorer(
            definition=self.definition,
            levels=self.levels,
            booster=self.booster,
            calibrator=self.calibrator,
            thresholds=self.thresholds,
            metadata={**self.metadata, **updates},
        )

    # --- persistence (the format is bundle.py's) ----------------------------------------------
    def save(self, path: str | Path) -> Path:
        """Write the bundle atomically (:func:`bundle.write_bundle`)."""
        return write_bundle(
            path,
            BundleParts(
                definition=self.definition,
                levels=self.levels,
                booster=self.booster,
                calibrator=self.calibrator,
                thresholds=self.thresholds,
                metadata=self.metadata,
            ),
        )

    @classmethod
    def load(cls, path: str | Path) -> Scorer:
        """Load a bundle folder (:func:`bundle.read_bundle`); errors name the file and part."""
        parts = read_bundle(path)
        return cls(
            definition=parts.definition,
            levels=parts.levels,
            booster=parts.booster,
            calibrator=parts.calibrator,
            thresholds=parts.thresholds,
            metadata=parts.metadata,
        )

    # --- scoring ------------------------------------------------------------------------------
    def predict_matrix(self, X: np.ndarray) -> np.ndarray:
        """Calibrated probabilities for a feature matrix in definition order."""
        X = np.ascontiguousarray(X, dtype=np.float64)
        raw: Any
        if X.shape[0] == 1 and self._row_predictor is not None:
            raw = [self._row_predictor.predict(X[0])]
        else:
            raw = self.booster.predict(X, num_threads=_threads_for(X))
        return self.calibrator.transform(np.asarray(raw, dtype=np.float64))

    def contributions(self, X: np.ndarray) -> np.ndarray:
        """Exact SHAP values per feature, without the bias column.

        The precomputed tables of :mod:`predictive_scoring.treeshap` when they cover the model
        (LightGBM ``pred_contrib``'s values, several times faster), else ``pred_contrib``.
        """
        X = np.ascontiguousarray(X, dtype=np.float64)
        if self.tree_shap is not None:
            return self.tree_shap.contributions(X)
        contrib = self.booster.predict(X, pred_contrib=True, num_threads=_threads_for(X))
        return np.asarray(contrib)[:, :-1]

    def admit(self, raw: RawLeads, *, now: int | None = None, limits: Limits) -> Admitted:
        """Raw leads through the input rules (:func:`ingress.admit`) against this model."""
        return admit(raw, self.inputs, limits=limits, now=int(time.time()) if now is None else now)

    def score_batch(
        self,
        batch: LeadBatch,
        lead_ids: Sequence[str],
        *,
        n_reasons: int = 3,
        warnings: Sequence[list[InputWarning]] | None = None,
    ) -> list[ScoreResult]:
        """Score a columnar batch: one vectorised pass for features, model and reasons."""
        return self.score_batch_with_features(
            batch, lead_ids, n_reasons=n_reasons, warnings=warnings
        )[0]

    def score_admitted_with_features(
        self, admitted: Admitted, *, n_reasons: int = 3
    ) -> tuple[list[ScoreResult], np.ndarray]:
        """:meth:`score_admitted`, and the feature matrix the model saw: what the score log
        records."""
        return self.score_batch_with_features(
            admitted.batch, admitted.lead_ids, n_reasons=n_reasons, warnings=admitted.warnings
        )

    def score_batch_with_features(
        self,
        batch: LeadBatch,
        lead_ids: Sequence[str],
        *,
        n_reasons: int = 3,
        warnings: Sequence[list[InputWarning]] | None = None,
    ) -> tuple[list[ScoreResult], np.ndarray]:
        """:meth:`score_batch`, and its feature matrix (leads x :attr:`feature_names`, float64,
        categories as level codes, NaN for missing) exactly as the model saw it."""
        if len(lead_ids) != batch.size:
            raise ScoringInputError(
                f"{len(lead_ids)} lead ids for {batch.size} leads", field="lead_id"
            )
        X = self.executor.transform(batch)
        contrib: np.ndarray | None = None
        if n_reasons > 0 and self.tree_shap is not None and self.tree_shap.sigmoid > 0:
            # One pass over the trees: the exact SHAP values and Booster.predict's probabilities
            # (bit for bit, tested), so the booster is not walked a second time.
            contrib, raw = self.tree_shap.explain(X)
            p = self.calibrator.transform(raw)
        else:
            p = self.predict_matrix(X)
        if batch.size == 1 and math.isfinite(p[0]):  # one lead: the same rules on a float
            one = float(p[0])
            stages, grades = [stage_of(one, self.thresholds)], [grade_of(one, self.thresholds)]
            scores = [score_of(one)]
        else:
            stages = assign_stage(p, self.thresholds).tolist()
            grades = assign_grade(p, self.thresholds).tolist()
            scores = probability_to_score(p).tolist()
        if n_reasons > 0:
            if contrib is None:
                contrib = self.contributions(X)
            positives, negatives = self._reasons(X, contrib, n_reasons)
        else:
            positives = [[] for _ in range(batch.size)]
            negatives = [[] for _ in range(batch.size)]
        probs = p.tolist()
        results = [
            ScoreResult(
                lead_id=str(lead_ids[i]),
                probability=probs[i],
                score=scores[i],
                stage=stages[i],
                grade=grades[i],
                positive=positives[i],
                negative=negatives[i],
                warnings=warnings[i] if warnings is not None else [],
            )
            for i in range(batch.size)
        ]
        return results, X

    def score(
        self,
        leads: Sequence[LeadInput],
        *,
        now: int | None = None,
        n_reasons: int = 3,
        limits: Limits = FRAME_LIMITS,
    ) -> list[ScoreResult]:
        """Score leads given in Python, through the same input rules as every other path."""
        return self.score_admitted(
            self.admit(raw_from_lead_inputs(leads), now=now, limits=limits), n_reasons=n_reasons
        )

    def score_admitted(self, admitted: Admitted, *, n_reasons: int = 3) -> list[ScoreResult]:
        """Score leads that passed the input rules; each result carries its lead's warnings."""
        return self.score_batch(
            admitted.batch, admitted.lead_ids, n_reasons=n_reasons, warnings=admitted.warnings
        )

    def _reasons(
        self, X: np.ndarray, contrib: np.ndarray, k: int
    ) -> tuple[list[list[Reason]], list[list[Reason]]]:
        """Top ``k`` positive and negative factors of every row, ordered by one argsort per row.

        Only the chosen cells are turned into text, each through its feature's precompiled
        describer (memoised per value); a row's order is exactly that of ``np.argsort`` on the
        row alone.
        """
        n, n_features = contrib.shape
        if n == 0:
            return [], []
        k = min(k, n_features)
        names, text = self.feature_names, self._text
        if n == 1:  # one lead: the same order and cells on plain lists, a tenth of the numpy calls
            ranked = np.argsort(contrib[0]).tolist()
            impact, x = contrib[0].tolist(), X[0].tolist()
            ups = [f for f in ranked[::-1][:k] if impact[f] > 0]
            downs = [f for f in ranked[:k] if impact[f] < 0]
            return (
                [[Reason(names[f], text(f, x[f]), round(impact[f], 6)) for f in ups]],
                [[Reason(names[f], text(f, x[f]), round(impact[f], 6)) for f in downs]],
            )
        order = np.argsort(contrib, axis=1)
        rows = np.arange(n)[:, None]
        picked: list[list[list[Reason]]] = []
        for cols, positive in ((order[:, ::-1][:, :k], True), (order[:, :k], False)):
            impacts = contrib[rows, cols]
            keep = impacts > 0 if positive else impacts < 0
            r, c = np.nonzero(keep)  # row by row, each row in rank order
            j = cols[r, c]
            cells = zip(j.tolist(), X[r, j].tolist(), impacts[r, c].tolist(), strict=True)
            reasons = [
                Reason(feature=names[f], text=text(f, x), impact=round(v, 6)) for f, x, v in cells
            ]
            ends = np.cumsum(keep.sum(axis=1)).tolist()
            picked.append([reasons[a:b] for a, b in zip([0, *ends[:-1]], ends, strict=True)])
        return picked[0], picked[1]

    def _text(self, feature: int, value: float) -> str:
        """The describer's sentence for a feature value, memoised (NaN shares one key)."""
        value += 0.0  # -0.0 becomes 0.0, so the text never depends on which came first
        key = (feature, value if value == value else None)
        found = self._texts.get(key)
        if found is None:
            if len(self._texts) >= _MAX_TEXTS:
                self._texts.clear()
            found = self._texts[key] = self._describers[feature](value)
        return found


def _digest(data: Any) -> str:
    """A short, stable hash of JSON-ready data (keys sorted)."""
    text = json.dumps(data, sort_keys=True, separators=(",", ":"), default=str)
    return hashlib.sha256(text.encode()).hexdigest()[:12]


def _threads_for(X: np.ndarray) -> int:
    """LightGBM ``num_threads`` for a matrix: 1 for a few rows, else its default (0)."""
    return 1 if X.shape[0] <= SINGLE_THREAD_ROWS else 0


def score_nested(scorer: Scorer, leads: pd.DataFrame, *, now: int | None = None) -> pd.DataFrame:
    """The pyfunc's scoring: one frame with a nested events column in, the results table out."""
    admitted = scorer.admit(raw_from_nested(leads), now=now, limits=FRAME_LIMITS)
    return results_frame(scorer.score_admitted(admitted), version=scorer.version)


def results_frame(results: Sequence[ScoreResult], *, version: str) -> pd.DataFrame:
    """Score results as a flat table a CRM can import."""

    def text(reasons: list[Reason]) -> str:
        return "; ".join(f"{r.text} ({r.impact:+.2f})" for r in reasons)

    def warned(warnings: list[InputWarning]) -> str:
        return "; ".join(f"{w.field}={w.value!r}: {w.action}" for w in warnings)

    return pd.DataFrame(
        {
            "lead_id": [r.lead_id for r in results],
            "probability": [r.probability for r in results],
            "score": [r.score for r in results],
            "stage": [r.stage for r in results],
            "grade": [r.grade for r in results],
            "top_positive_reasons": [text(r.positive) for r in results],
            "top_negative_reasons": [text(r.negative) for r in results],
            "warnings": [warned(r.warnings) for r in results],
            "model_version": version,
        }
    )
