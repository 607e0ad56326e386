"""The online executor: the feature definition evaluated with numpy for leads in a request.

It is vectorised over a batch of leads (one lead is a batch of one), so the service's single and
batch endpoints, the CRM file scorer and the MLflow pyfunc all run this same code. The batch
executor (:mod:`predictive_scoring.batch`) must agree with it; a parity test holds them together.
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import numpy as np

from predictive_scoring.features import (
    BAND_FEATURE,
    EMAIL_FEATURE,
    FUNCTION_FEATURE,
    SECONDS_PER_DAY,
    SENIORITY_FEATURE,
    FeatureDefinition,
    _as_float,
    email_is_free,
    employees_band,
    title_function,
    title_seniority,
)
from predictive_scoring.jit import compiled

__all__ = ["LeadBatch", "OnlineExecutor"]


@dataclass(frozen=True)
class LeadBatch:
    """Leads to featurise: attribute columns, times in epoch seconds, and a flat event list.

    ``event_lead`` holds, for each event, the row of its lead in this batch.
    """

    attributes: Mapping[str, Sequence[object]]
    as_of: np.ndarray
    created: np.ndarray
    event_lead: np.ndarray
    event_type: Sequence[str]
    event_ts: np.ndarray

    @property
    def size(self) -> int:
        return int(self.as_of.shape[0])

    def rows(self, start: int, stop: int) -> LeadBatch:
        """Leads ``start:stop`` with their events; the events must be in lead order."""
        first, last = np.searchsorted(self.event_lead, [start, stop])
        return LeadBatch(
            attributes={k: v[start:stop] for k, v in self.attributes.items()},
            as_of=self.as_of[start:stop],
            created=self.created[start:stop],
            event_lead=self.event_lead[first:last] - start,
            event_type=self.event_type[first:last],
            event_ts=self.event_ts[first:last],
        )


class OnlineExecutor:
    """Compiles a definition and its category levels once; ``transform`` is then cheap."""

    def __init__(self, definition: FeatureDefinition, levels: Mapping[str, Sequence[str]]) -> None:
        self.definition = definition
        self.levels = {name: list(values) for name, values in levels.items()}
        self.feature_names_ = definition.feature_names
        self._col = {name: i for i, name in enumerate(self.feature_names_)}
        self._type_index = {t: i for i, t in enumerate(definition.event_types)}
        self._level_index = {
            name: {level: float(i) for i, level in enumerate(values)}
            for name, values in self.levels.items()
        }
        self._windows = np.asarray(definition.windows_days, dtype=np.int64) * SECONDS_PER_DAY
        self._engagement_at = self._engagement_columns_at() if definition.has_events else None
        missing = [c for c in definition.categorical_features if c not in self.levels]
        if missing:
            raise ValueError(f"no category levels for {missing}")

    def _engagement_columns_at(self) -> tuple[int, int, int, int, int]:
        """Where the engagement columns live: the first count (counts follow in (type, window)
        order), the first recency and decay (by type), the total and the active days."""
        d = self.definition
        T, W = len(d.event_types), len(d.windows_days)
        return (
            self._col[d.count_name(d.event_types[0], d.windows_days[0])] if T and W else -1,
            self._col[d.recency_name(d.event_types[0])] if T else -1,
            self._col[d.decay_name(d.event_types[0])] if T else -1,
            self._col["n_events_total"],
            self._col[d.active_days_name],
        )

    def _encode(self, name: str, values: Sequence[object]) -> list[float]:
        """Level codes of a categorical column (NaN for missing or unseen)."""
        index = self._level_index[name]
        key = self.definition.category_key
        texts = [key(name, v) for v in values]
        return [math.nan if text is None else index.get(text, math.nan) for text in texts]

    def transform(self, batch: LeadBatch) -> np.ndarray:
        """Feature matrix (n_leads x n_features, float64, categoricals as level codes)."""
        d = self.definition
        n = batch.size
        X = np.full((n, len(self.feature_names_)), math.nan, dtype=np.float64)
        if d.has_events:
            self._engagement(batch, X)
        for name, kind in d.attributes:
            values = batch.attributes.get(name)
            if values is None:
                continue
            j = self._col[name]
            if kind == "categorical":
                _put(X, j, self._encode(name, values))
            else:
                _put(X, j, [_as_float(v) for v in values])
        self._derived(batch, X)
        return X

    def _derived(self, batch: LeadBatch, X: np.ndarray) -> None:
        d = self.definition
        titles = batch.attributes.get(d.job_title_column or "")
        if d.job_title_column and titles is not None:
            seniority = [title_seniority(t) for t in titles]
            _put(X, self._col[SENIORITY_FEATURE], self._encode(SENIORITY_FEATURE, seniority))
            function = [title_function(t) for t in titles]
            _put(X, self._col[FUNCTION_FEATURE], self._encode(FUNCTION_FEATURE, function))
        emails = batch.attributes.get(d.email_column or "")
        if d.email_column and emails is not None:
            _put(X, self._col[EMAIL_FEATURE], [email_is_free(e) for e in emails])
        employees = batch.attributes.get(d.employees_column or "")
        if d.employees_column and employees is not None:
            bands = [employees_band(e) for e in employees]
            _put(X, self._col[BAND_FEATURE], self._encode(BAND_FEATURE, bands))

    def _engagement(self, batch: LeadBatch, X: np.ndarray) -> None:
        d = self.definition
        T = len(d.event_types)
        as_of = batch.as_of.astype(np.int64, copy=False)
        if d.has_created_at:
            # float64 holds whole epoch seconds exactly, so this equals the batch executor's
            # int64 difference, and a missing created_at (NaN) gives a missing age.
            X[:, self._col["lead_age_days"]] = (
                as_of.astype(np.float64) - batch.created.astype(np.float64)
            ) / float(SECONDS_PER_DAY)
        tidx = np.fromiter(
            map(self._type_index.get, batch.event_type, itertools.repeat(-1)),
            dtype=np.int64,
            count=len(batch.event_type),
        )
        assert self._engagement_at is not None  # built whenever the definition has events
        counts0, recency0, decay0, total, active = self._engagement_at
        _engagement_columns(
            X,
            batch.event_lead.astype(np.int64, copy=False),
            tidx,
            batch.event_ts.astype(np.int64, copy=False),
            as_of,
            self._windows,
            d.active_days_window * SECONDS_PER_DAY,
            d.decay_rate,
            T,
            total,
            active,
            counts0,
            recency0,
            decay0,
        )


def _put(X: np.ndarray, j: int, values: Sequence[float]) -> None:
    """Column ``j`` of ``X`` from Python numbers; one lead's value without building an array."""
    if len(values) == 1:
        X[0, j] = values[0]
    else:
        X[:, j] = values


@compiled
def _engagement_columns(
    X: np.ndarray,
    lead: np.ndarray,
    tidx: np.ndarray,
    ts: np.ndarray,
    as_of: np.ndarray,
    windows: np.ndarray,
    active_window: int,
    decay_rate: float,
    n_types: int,
    total_col: int,
    active_col: int,
    counts0: int,
    recency0: int,
    decay0: int,
) -> None:
    """The engagement columns of ``X`` in one pass over the events (any order).

    An event counts when its type is known (``tidx >= 0``) and it happened strictly before its
    lead's ``as_of``. The same quantities as the batch executor's SQL: counts per type and
    window (``age <= window``), days since the latest event of each type (NaN if none),
    ``exp(-rate x age_days)`` summed per type, all events, and distinct days with an event
    within the active window.
    """
    n = X.shape[0]
    n_windows = windows.size
    for i in range(n):
        X[i, total_col] = 0.0
        X[i, active_col] = 0.0
        for t in range(n_types):
            X[i, recency0 + t] = math.inf
            X[i, decay0 + t] = 0.0
            for w in range(n_windows):
                X[i, counts0 + t * n_windows + w] = 0.0
    m = lead.size
    active_lead = np.empty(m, dtype=np.int64)
    active_day = np.empty(m, dtype=np.int64)
    n_active = 0
    for e in range(m):
        t = tidx[e]
        if t < 0:
            continue
        i = lead[e]
        age = as_of[i] - ts[e]
        if age <= 0:
            continue
        age_days = age / float(SECONDS_PER_DAY)
        X[i, total_col] += 1.0
        for w in range(n_windows):
            if age <= windows[w]:
                X[i, counts0 + t * n_windows + w] += 1.0
        if age_days < X[i, recency0 + t]:
            X[i, recency0 + t] = age_days
        X[i, decay0 + t] += math.exp(-decay_rate * age_days)
        if age <= active_window:
            active_lead[n_active] = i
            active_day[n_active] = ts[e] // SECONDS_PER_DAY
            n_active += 1
    for i in range(n):
        for t in range(n_types):
            if X[i, recency0 + t] == math.inf:
                X[i, recency0 + t] = math.nan
    if n_active:
        # Distinct (lead, day) pairs: one int64 key each, sorted, counted where the key changes.
        days = active_day[:n_active]
        first_day = days.min()
        span = days.max() - first_day + 1
        keys = np.sort(active_lead[:n_active] * span + (days - first_day))
        previous = -1
        for k in keys:
            if k != previous:
                X[k // span, active_col] += 1.0
                previous = k
