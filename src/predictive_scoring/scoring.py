"""The scorer: the model bundle on disk and the one scoring path behind every consumer.

The service, the CRM file scorer and the MLflow pyfunc all call :meth:`Scorer.score_batch`, which
runs the online executor, the LightGBM booster, the calibrator, the thresholds and the reasons.
The bundle holds everything needed to score without MLflow (DESIGN section 5), with no pickle.
"""

from __future__ import annotations

import hashlib
import json
import math
import os
import shutil
import tempfile
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import lightgbm as lgb
import numpy as np
import orjson
import pandas as pd

from predictive_scoring.calibration import Calibrator
from predictive_scoring.errors import BundleError, ScoringInputError
from predictive_scoring.explain import feature_describers
from predictive_scoring.features import FeatureDefinition
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
    "BUNDLE_FORMAT",
    "LeadInput",
    "Reason",
    "ScoreResult",
    "Scorer",
    "batch_from_frames",
    "batch_from_nested",
    "epoch_seconds_of",
    "probability_to_score",
    "results_frame",
    "score_of",
    "seconds_of_numbers",
]

BUNDLE_FORMAT = 1
MODEL_FILE = "model.txt"
META_FILE = "bundle.json"
# Up to this many rows LightGBM predicts on the calling thread: for a request of a few leads,
# waking OpenMP workers costs more than the trees (and much more on a busy machine).
SINGLE_THREAD_ROWS = 64
# Pydantic's rule, kept by every path: a numeric timestamp over this magnitude is milliseconds.
MILLISECONDS_ABOVE = 2e10
# Reason sentences kept per loaded model (feature, value) before the memo starts afresh.
_MAX_TEXTS = 100_000


@dataclass(frozen=True)
class LeadInput:
    """One lead to score: attributes, events as (event_type, epoch seconds), times in seconds."""

    lead_id: str
    attributes: Mapping[str, object] = field(default_factory=dict)
    events: Sequence[tuple[str, int]] = ()
    created_at: float | None = None
    as_of: int | None = None


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


def probability_to_score(p: np.ndarray) -> np.ndarray:
    """1-99 integer score from a probability."""
    return np.clip(np.rint(np.asarray(p) * 100.0), 1, 99).astype(np.int64)


def score_of(p: float) -> int:
    """:func:`probability_to_score` for one finite probability, without arrays.

    ``round`` rounds half to even as ``np.rint`` does, on the same product ``p * 100.0``.
    """
    return min(max(round(p * 100.0), 1), 99)


def _file_sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


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
        self.input_columns = _input_columns(definition)
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

    # --- persistence --------------------------------------------------------------------------
    def save(self, path: str | Path) -> Path:
        """Write the bundle atomically: into a temp dir beside ``path``, then rename."""
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = Path(tempfile.mkdtemp(prefix=f".{path.name}.", dir=path.parent))
        try:
            self.booster.save_model(str(tmp / MODEL_FILE))
            meta = {
                "format": BUNDLE_FORMAT,
                "definition": self.definition.to_dict(),
                "levels": self.levels,
                "calibrator": self.calibrator.to_dict(),
                "thresholds": self.thresholds.to_dict(),
                "metadata": {**self.metadata, "model_sha256": _file_sha256(tmp / MODEL_FILE)},
            }
            (tmp / META_FILE).write_text(json.dumps(meta, indent=2, sort_keys=True, default=str))
            if path.exists():
                old = path.with_name(f".{path.name}.old-{os.getpid()}")
                path.rename(old)
                tmp.rename(path)
                shutil.rmtree(old, ignore_errors=True)
            else:
                tmp.rename(path)
        except BaseException:
            shutil.rmtree(tmp, ignore_errors=True)
            raise
        return path

    @classmethod
    def load(cls, path: str | Path) -> Scorer:
        """Load a bundle directory; errors say which file is missing or broken."""
        path = Path(path)
        meta_path, model_path = path / META_FILE, path / MODEL_FILE
        for required in (meta_path, model_path):
            if not required.exists():
                raise BundleError(
                    f"{required}: not found; run `dvc repro` (or the export stage) to build "
                    "the model bundle"
                )
        try:
            meta = json.loads(meta_path.read_text())
        except json.JSONDecodeError as exc:
            raise BundleError(f"{meta_path}: not valid JSON ({exc})") from exc
        if meta.get("format") != BUNDLE_FORMAT:
            raise BundleError(
                f"{meta_path}: bundle format {meta.get('format')!r}, this version reads "
                f"{BUNDLE_FORMAT}; re-export the bundle"
            )
        expected = meta.get("metadata", {}).get("model_sha256")
        if expected and expected != _file_sha256(model_path):
            raise BundleError(f"{model_path}: checksum does not match {meta_path}; re-export")
        try:
            booster = lgb.Booster(model_file=str(model_path))
        except lgb.basic.LightGBMError as exc:
            raise BundleError(f"{model_path}: LightGBM cannot read it ({exc})") from exc
        return cls(
            definition=FeatureDefinition.from_dict(meta["definition"]),
            levels=meta["levels"],
            booster=booster,
            calibrator=Calibrator.from_dict(meta["calibrator"]),
            thresholds=Thresholds.from_dict(meta["thresholds"]),
            metadata=meta.get("metadata", {}),
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

    def to_batch(self, leads: Sequence[LeadInput], *, now: int | None = None) -> LeadBatch:
        """Arrange leads into the executor's columnar batch; as_of defaults to ``now``."""
        now_s = int(time.time()) if now is None else int(now)
        n = len(leads)
        columns: dict[str, list[object]] = {
            name: [lead.attributes.get(name) for lead in leads] for name in self.input_columns
        }
        as_of = np.fromiter(
            (lead.as_of if lead.as_of is not None else now_s for lead in leads),
            dtype=np.int64,
            count=n,
        )
        created = np.fromiter(
            (math.nan if lead.created_at is None else lead.created_at for lead in leads),
            dtype=np.float64,
            count=n,
        )
        sizes = [len(lead.events) for lead in leads]
        event_lead = np.repeat(np.arange(n, dtype=np.int64), sizes)
        event_type = [e[0] for lead in leads for e in lead.events]
        event_ts = np.fromiter(
            (e[1] for lead in leads for e in lead.events), dtype=np.int64, count=sum(sizes)
        )
        return LeadBatch(
            attributes=columns,
            as_of=as_of,
            created=created,
            event_lead=event_lead,
            event_type=event_type,
            event_ts=event_ts,
        )

    def score_batch(
        self,
        batch: LeadBatch,
        lead_ids: Sequence[str],
        *,
        n_reasons: int = 3,
    ) -> list[ScoreResult]:
        """Score a columnar batch: one vectorised pass for features, model and reasons."""
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
        return [
            ScoreResult(
                lead_id=str(lead_ids[i]),
                probability=probs[i],
                score=scores[i],
                stage=stages[i],
                grade=grades[i],
                positive=positives[i],
                negative=negatives[i],
            )
            for i in range(batch.size)
        ]

    def score(
        self, leads: Sequence[LeadInput], *, now: int | None = None, n_reasons: int = 3
    ) -> list[ScoreResult]:
        """Score leads given as :class:`LeadInput` records."""
        batch = self.to_batch(leads, now=now)
        return self.score_batch(batch, [lead.lead_id for lead in leads], n_reasons=n_reasons)

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


def _input_columns(definition: FeatureDefinition) -> list[str]:
    """The attribute names a batch needs: the model's attributes and the derived inputs."""
    wanted = [name for name, _ in definition.attributes]
    for extra in (
        definition.job_title_column,
        definition.email_column,
        definition.employees_column,
    ):
        if extra and extra not in wanted:
            wanted.append(extra)
    return wanted


def _threads_for(X: np.ndarray) -> int:
    """LightGBM ``num_threads`` for a matrix: 1 for a few rows, else its default (0)."""
    return 1 if X.shape[0] <= SINGLE_THREAD_ROWS else 0


def seconds_of_numbers(values: np.ndarray) -> np.ndarray:
    """Whole epoch seconds (floored) of numeric timestamps, by the service's rule.

    The HTTP service reads a number the way pydantic does: epoch seconds, or milliseconds when
    its magnitude is over 2e10 (JavaScript's ``Date.now()`` and several CRMs send milliseconds).
    Every other path reads numbers through this function so a lead scores alike everywhere.
    """
    v = np.asarray(values, dtype=np.float64)
    return np.floor(np.where(np.abs(v) > MILLISECONDS_ABOVE, v / 1000.0, v))


def _numbers(texts: pd.Series) -> np.ndarray:
    """Texts as float64 numbers (NaN where a text is no number), as training's to_numeric."""
    values = pd.to_numeric(texts, errors="coerce")
    return np.asarray(values.to_numpy(dtype=np.float64, na_value=np.nan), dtype=np.float64)


def _is_number(value: object) -> bool:
    return isinstance(value, int | float | np.integer | np.floating) and not isinstance(
        value, bool | np.bool_
    )


def epoch_seconds_of(values: pd.Series, *, field: str, source: str = "input") -> np.ndarray:
    """Whole UTC epoch seconds, floored, of a column of timestamps (NaN where missing).

    Texts are ISO 8601 (naive means UTC); numbers follow :func:`seconds_of_numbers`, also in a
    column that mixes both. Raises :class:`ScoringInputError` naming the field and the first
    bad row.
    """
    if pd.api.types.is_numeric_dtype(values) and not pd.api.types.is_bool_dtype(values):
        return seconds_of_numbers(values.to_numpy(dtype=np.float64, na_value=np.nan))
    n = len(values)
    out = np.full(n, math.nan)
    at = np.arange(n)  # the positions of the texts in ``values``
    if values.dtype == object:
        numeric = np.fromiter(map(_is_number, values), dtype=bool, count=n)
        if numeric.any():
            out[numeric] = seconds_of_numbers(values.to_numpy()[numeric].astype(np.float64))
            at = np.flatnonzero(~numeric)
    texts = values if at.size == n else values.iloc[at]
    # A number written as text is a number, as the service (pydantic) reads it: CSV cells
    # arrive as text, and '20250301' or '-1' would otherwise be taken for ISO dates. Only texts
    # made of number characters go through to_numeric (ISO date-times have a 'T' or ':').
    stripped = texts.astype("string").str.strip()
    given = (stripped != "").to_numpy(dtype=bool, na_value=False)
    spelled = np.flatnonzero(
        (stripped.str.strip("0123456789+-.eE") == "").to_numpy(dtype=bool, na_value=False) & given
    )
    if spelled.size:
        numbers = _numbers(stripped.iloc[spelled])
        found = np.isfinite(numbers)
        out[at[spelled[found]]] = seconds_of_numbers(numbers[found])
        keep = np.ones(at.size, dtype=bool)
        keep[spelled[found]] = False
        at, texts, given = at[keep], texts[keep], given[keep]
    parsed = pd.to_datetime(texts, utc=True, errors="coerce", format="ISO8601")
    missing = parsed.isna().to_numpy()
    bad = np.flatnonzero(missing & given)
    if bad.size:
        row = int(at[bad[0]])
        raise ScoringInputError(
            f"{source}: column '{field}' row {row + 1}: cannot parse {values.iloc[row]!r} as a "
            "timestamp; use ISO 8601 such as 2025-03-01T12:00:00Z or epoch seconds",
            field=field,
            row=row + 1,
        )
    ok = ~missing
    out[at[ok]] = parsed[ok].dt.tz_convert(None).to_numpy(dtype="datetime64[s]").astype(np.int64)
    return out


def _lead_columns(
    leads: pd.DataFrame,
    *,
    now: int | None,
    source: str,
    id_column: str,
    created_column: str,
    as_of_column: str,
    skip: Sequence[str] = (),
) -> tuple[list[str], np.ndarray, np.ndarray, dict[str, list[object]]]:
    """Lead ids, as_of and created_at in epoch seconds, and the attribute columns of a frame."""
    if id_column not in leads.columns:
        raise ScoringInputError(
            f"{source}: required column '{id_column}' is missing", field=id_column
        )
    lead_ids = leads[id_column].astype(str).tolist()
    n = len(leads)
    now_s = int(time.time()) if now is None else int(now)
    if as_of_column in leads.columns:
        as_of_f = epoch_seconds_of(leads[as_of_column], field=as_of_column, source=source)
        as_of = np.where(np.isnan(as_of_f), now_s, as_of_f).astype(np.int64)
    else:
        as_of = np.full(n, now_s, dtype=np.int64)
    if created_column in leads.columns:
        created = epoch_seconds_of(leads[created_column], field=created_column, source=source)
    else:
        created = np.full(n, math.nan)
    attributes = {
        c: leads[c].astype(object).where(leads[c].notna(), None).tolist()
        for c in leads.columns
        if c not in (id_column, created_column, as_of_column, "events", *skip)
    }
    return lead_ids, as_of, created, attributes


def batch_from_frames(
    leads: pd.DataFrame,
    events: pd.DataFrame | None,
    *,
    now: int | None = None,
    source: str = "leads",
    events_source: str = "events",
    id_column: str = "lead_id",
    created_column: str = "created_at",
    as_of_column: str = "as_of",
) -> tuple[LeadBatch, list[str]]:
    """A columnar batch from a leads frame and an optional events frame (vectorised)."""
    lead_ids, as_of, created, attributes = _lead_columns(
        leads,
        now=now,
        source=source,
        id_column=id_column,
        created_column=created_column,
        as_of_column=as_of_column,
    )
    rows, types, ts = np.empty(0), [], np.empty(0)
    if events is not None and len(events):
        for col in ("lead_id", "event_type", "ts"):
            if col not in events.columns:
                raise ScoringInputError(f"events: required column '{col}' is missing", field=col)
        row_of = pd.Series(np.arange(len(lead_ids)), index=pd.Index(lead_ids))
        if not row_of.index.is_unique:
            dupes = row_of.index[row_of.index.duplicated()].unique()[:5].tolist()
            raise ScoringInputError(f"{source}: duplicate lead ids {dupes}", field=id_column)
        rows = row_of.reindex(events["lead_id"].astype(str)).to_numpy(dtype=np.float64)
        types = events["event_type"].astype(str).tolist()
        ts = epoch_seconds_of(events["ts"], field="ts", source=events_source)
    return _assemble(lead_ids, as_of, created, attributes, rows=rows, types=types, ts=ts)


def batch_from_nested(
    leads: pd.DataFrame,
    *,
    events_column: str = "events",
    now: int | None = None,
    source: str = "model input",
    id_column: str = "lead_id",
    created_column: str = "created_at",
    as_of_column: str = "as_of",
) -> tuple[LeadBatch, list[str]]:
    """A columnar batch from one frame whose ``events_column`` holds each lead's own events.

    A cell is JSON text or a list of mappings, each with ``event_type`` and ``ts`` (ISO 8601 or
    epoch seconds); an empty or missing cell is a lead without events. The events are flattened
    in one pass, never through a frame of their own, and stay with their row (so lead ids need
    not be unique). What :func:`batch_from_frames` does with the events frame is done here with
    the same rules: events without a timestamp are left out, unknown types are ignored later.
    """
    lead_ids, as_of, created, attributes = _lead_columns(
        leads,
        now=now,
        source=source,
        id_column=id_column,
        created_column=created_column,
        as_of_column=as_of_column,
        skip=(events_column,),
    )
    sizes: list[int] = []
    types: list[object] = []
    stamps: list[object] = []
    cells = leads[events_column].tolist() if events_column in leads.columns else []
    for row, cell in enumerate(cells):
        try:
            items = _event_items(cell)
            types += [item.get("event_type") for item in items]
            stamps += [item.get("ts") for item in items]
        except (orjson.JSONDecodeError, TypeError, AttributeError) as exc:
            raise ScoringInputError(
                f"{source}: column '{events_column}' row {row + 1}: expected a JSON list of "
                f'objects such as [{{"event_type": "web_visit", "ts": "2025-03-01T12:00:00Z"}}], '
                f"got {str(cell)[:80]!r} ({exc})",
                field=events_column,
                row=row + 1,
            ) from exc
        sizes.append(len(items))
    ts = epoch_seconds_of(pd.Series(stamps), field="ts", source=f"{source} events")
    rows = np.repeat(np.arange(len(sizes), dtype=np.float64), sizes)
    return _assemble(lead_ids, as_of, created, attributes, rows=rows, types=types, ts=ts)


def _assemble(
    lead_ids: list[str],
    as_of: np.ndarray,
    created: np.ndarray,
    attributes: dict[str, list[object]],
    *,
    rows: np.ndarray,
    types: Sequence[object],
    ts: np.ndarray,
) -> tuple[LeadBatch, list[str]]:
    """The batch, keeping the events whose lead row and timestamp are known (not NaN)."""
    known = ~np.isnan(rows) & ~np.isnan(ts)
    batch = LeadBatch(
        attributes=attributes,
        as_of=as_of,
        created=created,
        event_lead=rows[known].astype(np.int64),
        event_type=[str(t) for t, k in zip(types, known.tolist(), strict=True) if k],
        event_ts=ts[known].astype(np.int64),
    )
    return batch, lead_ids


def _event_items(cell: object) -> Sequence[Any]:
    """One cell of a nested events column as a list of mappings ([] when empty or missing)."""
    if cell is None or (isinstance(cell, float) and math.isnan(cell)):
        return []
    if isinstance(cell, str | bytes):
        if not cell.strip():
            return []
        items = orjson.loads(cell)
    else:
        items = list(cell)  # type: ignore[call-overload]
    if not isinstance(items, list):
        raise TypeError(f"a JSON {type(items).__name__}, not a list")
    return items


def results_frame(results: Sequence[ScoreResult], *, version: str) -> pd.DataFrame:
    """Score results as a flat table a CRM can import."""

    def text(reasons: list[Reason]) -> str:
        return "; ".join(f"{r.text} ({r.impact:+.2f})" for r in reasons)

    return pd.DataFrame(
        {
            "lead_id": [r.lead_id for r in results],
            "probability": [r.probability for r in results],
            "score": [r.score for r in results],
            "stage": [r.stage for r in results],
            "grade": [r.grade for r in results],
            "top_positive_reasons": [text(r.positive) for r in results],
            "top_negative_reasons": [text(r.negative) for r in results],
            "model_version": version,
        }
    )
