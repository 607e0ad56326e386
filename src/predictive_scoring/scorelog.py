"""The score log: every lead scored, with its lineage and its features as served, in the store.

Whoever scores (a service worker, the file scorer, the MLflow pyfunc) hands each call's scores
over as one :class:`ScoredBatch`: the results, the feature matrix the model saw, the leads'
``as_of``, the source and the scorer's lineage. :class:`ScoreLog` keeps the request path free of
any writing: :meth:`ScoreLog.submit` only appends the batch to a bounded in-memory queue, and a
background thread turns what is queued into one Parquet part of the store
(:func:`records.write_part`) every ``flush_seconds``, or sooner when many leads wait. When the
queue is full the batch is dropped, counted and warned about: scoring never waits for the log.
:meth:`ScoreLog.close` writes everything still queued; a crash loses at most what was queued
since the last flush. :func:`read_scores` reads the log back with DuckDB.
"""

from __future__ import annotations

import atexit
import logging
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pyarrow as pa

from predictive_scoring import records
from predictive_scoring.ingress import Admitted
from predictive_scoring.scoring import Scorer, ScoreResult

__all__ = [
    "SOURCES",
    "ScoreLog",
    "ScoredBatch",
    "process_score_log",
    "read_scores",
    "score_records",
    "scored_batch",
    "write_scores",
]

logger = logging.getLogger(__name__)

SOURCES = frozenset({"api", "file", "pyfunc"})
# The lineage columns of the score log, in Scorer.lineage's keys.
LINEAGE_KEYS = (
    "model_name",
    "model_version",
    "model_sha256",
    "definition_hash",
    "thresholds_version",
    "data_hash",
)
_MICROS = 1_000_000

DropHook = Callable[[int, str], None]
WriteHook = Callable[[int], None]


@dataclass(frozen=True, slots=True)
class ScoredBatch:
    """One call's scores as the log records them: the columns of all its leads.

    Built on the request path, so it holds what the scorer returned (the feature matrix and the
    ``as_of`` array are not copied); the writer builds the table.
    """

    lead_ids: Sequence[str]
    probability: Sequence[float]
    score: Sequence[int]
    stage: Sequence[str]
    grade: Sequence[str]
    features: np.ndarray  # leads x feature_names, float64: the matrix the model saw
    feature_names: tuple[str, ...]
    as_of: np.ndarray  # epoch seconds per lead
    source: str  # api, file or pyfunc
    lineage: Mapping[str, str]  # Scorer.lineage
    scored_at: float  # epoch seconds

    def __post_init__(self) -> None:
        n = len(self.lead_ids)
        if self.features.shape != (n, len(self.feature_names)) or len(self.as_of) != n:
            raise ValueError(
                f"a scored batch of {n} leads needs {n} x {len(self.feature_names)} features "
                f"and {n} as_of, got {self.features.shape} and {len(self.as_of)}"
            )

    @classmethod
    def of(
        cls,
        results: Sequence[ScoreResult],
        features: np.ndarray,
        *,
        feature_names: tuple[str, ...],
        as_of: np.ndarray,
        source: str,
        lineage: Mapping[str, str],
        scored_at: float,
    ) -> ScoredBatch:
        """The columns of ``results`` (their reasons and warnings are not kept)."""
        return cls(
            lead_ids=[r.lead_id for r in results],
            probability=[r.probability for r in results],
            score=[r.score for r in results],
            stage=[r.stage for r in results],
            grade=[r.grade for r in results],
            features=features,
            feature_names=feature_names,
            as_of=as_of,
            source=source,
            lineage=lineage,
            scored_at=scored_at,
        )

    @property
    def size(self) -> int:
        return len(self.lead_ids)


def scored_batch(
    scorer: Scorer,
    admitted: Admitted,
    results: Sequence[ScoreResult],
    features: np.ndarray,
    *,
    source: str,
    lineage: Mapping[str, str] | None = None,
    scored_at: float | None = None,
) -> ScoredBatch:
    """The log's item for leads scored by :meth:`Scorer.score_admitted_with_features`.

    ``lineage`` defaults to ``scorer.lineage`` (which hashes the definition: pass it in when
    scoring many calls with one model).
    """
    if source not in SOURCES:
        raise ValueError(f"a score log source is one of {sorted(SOURCES)}, got {source!r}")
    return ScoredBatch.of(
        results,
        features,
        feature_names=tuple(scorer.feature_names),
        as_of=admitted.batch.as_of,
        source=source,
        lineage=scorer.lineage if lineage is None else lineage,
        scored_at=time.time() if scored_at is None else scored_at,
    )


def _repeated(values: Sequence[str], sizes: np.ndarray) -> pa.Array:
    """Each batch's value once per lead; one value for all (the usual case) is one repeat."""
    first = values[0]
    if all(v == first for v in values):
        return pa.repeat(pa.scalar(first, type=pa.string()), int(sizes.sum()))
    return pa.array(np.repeat(np.array(values, dtype=object), sizes), type=pa.string())


def score_records(batches: Sequence[ScoredBatch]) -> pa.Table:
    """The score log's rows of batches that share one feature list.

    The columns are :data:`records.SCORE_COLUMNS`, then one float64 column per model input
    (:func:`records.feature_column`) in the model's order; a missing input is null.
    """
    if not batches:
        return records.empty_table(records.SCORE_COLUMNS)
    names = batches[0].feature_names
    if any(b.feature_names != names for b in batches):
        raise ValueError("score_records takes batches of one feature list; group them first")
    sizes = np.fromiter((b.size for b in batches), dtype=np.int64, count=len(batches))
    n = int(sizes.sum())
    micros = pa.timestamp("us", tz="UTC")
    scored_at = np.repeat(
        np.array([round(b.scored_at * _MICROS) for b in batches], dtype=np.int64), sizes
    )
    as_of = np.concatenate([np.asarray(b.as_of, dtype=np.int64) for b in batches]) * _MICROS
    columns: dict[str, pa.Array] = {
        "lead_id": pa.array([x for b in batches for x in b.lead_ids], type=pa.string()),
        "scored_at": pa.array(scored_at, type=micros),
        "as_of": pa.array(as_of, type=micros),
        "source": _repeated([b.source for b in batches], sizes),
    }
    for key in LINEAGE_KEYS:
        columns[key] = _repeated([str(b.lineage.get(key, "")) for b in batches], sizes)
    columns["probability"] = pa.array(
        np.fromiter((x for b in batches for x in b.probability), dtype=np.float64, count=n)
    )
    columns["score"] = pa.array(
        np.fromiter((x for b in batches for x in b.score), dtype=np.int64, count=n)
    )
    columns["stage"] = pa.array([x for b in batches for x in b.stage], type=pa.string())
    columns["grade"] = pa.array([x for b in batches for x in b.grade], type=pa.string())
    matrix = (
        np.concatenate([b.features for b in batches]) if len(batches) > 1 else batches[0].features
    )
    by_feature = np.ascontiguousarray(np.asarray(matrix, dtype=np.float64).T)
    for j, name in enumerate(names):
        columns[records.feature_column(name)] = pa.array(by_feature[j], from_pandas=True)
    return pa.table(columns)


def _by_features(batches: Sequence[ScoredBatch]) -> list[list[ScoredBatch]]:
    """Batches grouped by feature list (several only around a model swap), in arrival order."""
    groups: dict[tuple[str, ...], list[ScoredBatch]] = {}
    for b in batches:
        if b.size:
            groups.setdefault(b.feature_names, []).append(b)
    return list(groups.values())


def write_scores(store: str | Path, batches: Sequence[ScoredBatch]) -> list[str]:
    """Write batches to the store now, one part per feature list; returns the parts' paths."""
    return [
        records.write_part(store, records.SCORES, score_records(group))
        for group in _by_features(batches)
    ]


class ScoreLog:
    """A bounded queue of :class:`ScoredBatch` and the thread that writes it to the store.

    Args:
        store: a folder or an fsspec URL (:mod:`predictive_scoring.records`).
        flush_seconds: the longest a queued lead waits to be written (and what a crash loses).
        max_rows: leads the queue holds at most; a batch that would not fit is dropped.
        flush_rows: write early once this many leads wait.
        on_drop: called with (leads, reason) when records are dropped (``queue_full``,
            ``write_error``, ``closed``).
        on_write: called with the number of leads in each part written.
        warn_every_seconds: drops are logged at most this often, with the count since.
    """

    def __init__(
        self,
        store: str | Path,
        *,
        flush_seconds: float = 1.0,
        max_rows: int = 100_000,
        flush_rows: int = 20_000,
        on_drop: DropHook | None = None,
        on_write: WriteHook | None = None,
        warn_every_seconds: float = 10.0,
    ) -> None:
        if flush_seconds <= 0 or max_rows < 1:
            raise ValueError(
                f"need flush_seconds > 0 and max_rows >= 1: {flush_seconds=} {max_rows=}"
            )
        self.store = store
        self.flush_seconds = flush_seconds
        self.max_rows = max_rows
        self.flush_rows = max(1, min(flush_rows, max_rows))
        self.on_drop = on_drop
        self.on_write = on_write
        self.warn_every_seconds = warn_every_seconds
        self.written = 0
        self.dropped = 0
        self.parts = 0
        self._queue: list[ScoredBatch] = []
        self._queued_rows = 0
        self._lock = threading.Lock()  # guards the queue; never held while writing
        self._drop_lock = threading.Lock()  # drops come from request threads and the writer
        self._write_lock = threading.Lock()  # one flush at a time
        self._wake = threading.Event()
        self._closed = False
        self._thread: threading.Thread | None = None
        self._unwarned: dict[str, int] = {}
        self._warned_at = -float("inf")

    # --- the request path ----------------------------------------------------------------------
    def submit(self, batch: ScoredBatch) -> bool:
        """Queue a call's scores for the next flush; never blocks. False when they were dropped."""
        n = batch.size
        with self._lock:
            if self._closed:
                reason = "closed"
            elif self._queued_rows + n > self.max_rows:
                reason = "queue_full"
            else:
                self._queue.append(batch)
                self._queued_rows += n
                if self._queued_rows >= self.flush_rows:
                    self._wake.set()
                return True
        self._drop(n, reason)
        return False

    # --- the writer ----------------------------------------------------------------------------
    def start(self) -> ScoreLog:
        """Start the background writer (a daemon thread: :meth:`close` is what flushes)."""
        if self._thread is None:
            pa.repeat(pa.scalar("", type=pa.string()), 1)  # Arrow's first repeat takes ~0.2 s
            self._thread = threading.Thread(target=self._run, name="score-log", daemon=True)
            self._thread.start()
        return self

    def flush(self) -> int:
        """Write what is queued now, one part per feature list; returns the leads written."""
        with self._write_lock:
            with self._lock:
                batches, self._queue, self._queued_rows = self._queue, [], 0
            written = 0
            for group in _by_features(batches):
                rows = sum(b.size for b in group)
                try:
                    records.write_part(self.store, records.SCORES, score_records(group))
                except Exception as exc:  # the service goes on scoring; the loss is counted
                    logger.error(
                        "score log: cannot write %d record(s) to %s: %s", rows, self.store, exc
                    )
                    self._drop(rows, "write_error")
                    continue
                written += rows
                self.parts += 1
                if self.on_write is not None:
                    self.on_write(rows)
            self.written += written
            return written

    @property
    def closed(self) -> bool:
        return self._closed

    def close(self, timeout: float | None = None) -> None:
        """Refuse new batches, stop the writer and write everything queued."""
        with self._lock:
            self._closed = True
        self._wake.set()
        if self._thread is not None:
            self._thread.join(timeout)
        self.flush()

    def _run(self) -> None:
        while True:
            self._wake.wait(self.flush_seconds)
            self._wake.clear()
            with self._lock:
                closing = self._closed
            if closing:
                return  # close() writes the rest on its own thread
            try:
                self.flush()
            except Exception:  # never let the writer die; flush already counts what it lost
                logger.exception("score log: flush failed")

    def _drop(self, n: int, reason: str) -> None:
        if self.on_drop is not None:
            self.on_drop(n, reason)
        with self._drop_lock:
            self.dropped += n
            self._unwarned[reason] = self._unwarned.get(reason, 0) + n
            now = time.monotonic()
            if now - self._warned_at < self.warn_every_seconds:
                return
            self._warned_at = now
            counts = ", ".join(f"{k} {v}" for k, v in sorted(self._unwarned.items()))
            self._unwarned = {}
        logger.warning(
            "score log: records dropped since the last warning (%s); scoring goes on. "
            "queue_full means the writer to %s falls behind: raise log_queue_size or "
            "lower log_flush_seconds",
            counts,
            self.store,
        )

    def __enter__(self) -> ScoreLog:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.close()


_PROCESS_LOGS: dict[str, ScoreLog] = {}
_PROCESS_LOCK = threading.Lock()


def process_score_log(store: str | Path, *, flush_seconds: float = 1.0) -> ScoreLog:
    """One started :class:`ScoreLog` per store for this process, closed (flushed) at exit.

    For scorers without a lifespan of their own, such as the MLflow pyfunc.
    """
    key = str(store)
    with _PROCESS_LOCK:
        log = _PROCESS_LOGS.get(key)
        if log is None or log.closed:
            log = _PROCESS_LOGS[key] = ScoreLog(store, flush_seconds=flush_seconds).start()
            atexit.register(log.close)
        return log


def read_scores(
    store: str | Path,
    *,
    columns: Sequence[str] | None = None,
    where: str | None = None,
    con: Any = None,
) -> pd.DataFrame:
    """The score log (or the ``columns`` asked for, rows matching the SQL ``where``) via DuckDB.

    Times come back in UTC. Empty, with the fixed columns, when nothing was logged yet.
    """
    import duckdb

    con = con if con is not None else duckdb.connect()
    con.execute("SET TimeZone = 'UTC'")
    relation = records.scan(con, store, records.SCORES)
    if relation is None:
        wanted = columns or list(records.SCORE_COLUMNS)
        kinds = records.SCORE_COLUMNS
        return records.empty_table({c: kinds.get(c, pa.float64()) for c in wanted}).to_pandas()
    if where:
        relation = relation.filter(where)
    if columns:  # DuckDB reads only these (and where's) columns from the parts
        relation = relation.project(", ".join(f'"{c}"' for c in columns))
    frame: pd.DataFrame = relation.df()
    return frame
