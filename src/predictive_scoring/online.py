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


def _category_value(value: object) -> str | None:
    if value is None:
        return None
    if isinstance(value, str):
        return value
    if isinstance(value, float) and math.isnan(value):
        return None
    return str(value)


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
        missing = [c for c in definition.categorical_features if c not in self.levels]
        if missing:
            raise ValueError(f"no category levels for {missing}")

    def _encode(self, name: str, values: Sequence[object]) -> np.ndarray:
        index = self._level_index[name]
        out = np.empty(len(values), dtype=np.float64)
        for i, v in enumerate(values):
            key = _category_value(v)
            out[i] = index.get(key, math.nan) if key is not None else math.nan
        return out

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
                X[:, j] = self._encode(name, values)
            else:
                X[:, j] = [_as_float(v) for v in values]
        self._derived(batch, X)
        return X

    def _derived(self, batch: LeadBatch, X: np.ndarray) -> None:
        d = self.definition
        titles = batch.attributes.get(d.job_title_column or "")
        if d.job_title_column and titles is not None:
            X[:, self._col[SENIORITY_FEATURE]] = self._encode(
                SENIORITY_FEATURE, [title_seniority(t) for t in titles]
            )
            X[:, self._col[FUNCTION_FEATURE]] = self._encode(
                FUNCTION_FEATURE, [title_function(t) for t in titles]
            )
        emails = batch.attributes.get(d.email_column or "")
        if d.email_column and emails is not None:
            X[:, self._col[EMAIL_FEATURE]] = [email_is_free(e) for e in emails]
        employees = batch.attributes.get(d.employees_column or "")
        if d.employees_column and employees is not None:
            X[:, self._col[BAND_FEATURE]] = self._encode(
                BAND_FEATURE, [employees_band(e) for e in employees]
            )

    def _engagement(self, batch: LeadBatch, X: np.ndarray) -> None:
        d = self.definition
        n = batch.size
        T = len(d.event_types)
        W = len(d.windows_days)
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
        lead = batch.event_lead.astype(np.int64, copy=False)
        ts = batch.event_ts.astype(np.int64, copy=False)
        keep = tidx >= 0
        if keep.any():
            keep &= ts < as_of[lead]
        lead, tidx, ts = lead[keep], tidx[keep], ts[keep]
        age = as_of[lead] - ts
        age_days = age.astype(np.float64) / float(SECONDS_PER_DAY)
        key = lead * T + tidx

        X[:, self._col["n_events_total"]] = np.bincount(lead, minlength=n)
        in_active = age <= d.active_days_window * SECONDS_PER_DAY
        if in_active.any():
            # Distinct (lead, day) pairs as one int64 key each: a 1-D unique is several times
            # cheaper than np.unique(axis=0) over stacked pairs, and the count is the same.
            day = ts[in_active] // SECONDS_PER_DAY
            first_day = day.min()
            span = day.max() - first_day + 1
            pairs = np.unique(lead[in_active] * span + (day - first_day))
            active = np.bincount(pairs // span, minlength=n).astype(np.float64)
        else:
            active = np.zeros(n, dtype=np.float64)
        X[:, self._col[d.active_days_name]] = active

        counts = np.empty((n, T, W), dtype=np.float64)
        for w, window in enumerate(self._windows):
            m = age <= window
            counts[:, :, w] = np.bincount(key[m], minlength=n * T).reshape(n, T)
        first = self._col[d.count_name(d.event_types[0], d.windows_days[0])] if T else 0
        X[:, first : first + T * W] = counts.reshape(n, T * W)

        recency = np.full(n * T, math.inf)
        np.minimum.at(recency, key, age_days)
        recency[np.isinf(recency)] = math.nan
        if T:
            r0 = self._col[d.recency_name(d.event_types[0])]
            X[:, r0 : r0 + T] = recency.reshape(n, T)
            decayed = np.bincount(
                key, weights=np.exp(-d.decay_rate * age_days), minlength=n * T
            ).reshape(n, T)
            d0 = self._col[d.decay_name(d.event_types[0])]
            X[:, d0 : d0 + T] = decayed
