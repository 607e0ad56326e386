"""Batch scoring of CRM files through the same reader, rules and scorer as everything else.

The files are read as training reads them (:func:`predictive_scoring.read.read_table`, with the
data section's separator), named by the data section's columns, admitted by
:mod:`predictive_scoring.ingress` (which applies the model's missing-value markers) and written
atomically, with a warnings column and the model's lineage; the scores can go to the score log
(:mod:`predictive_scoring.scorelog`) as well. A run killed while writing leaves the previous
output whole and a temp file beside it, which the next run removes.
"""

from __future__ import annotations

import datetime as dt
import fcntl
import logging
import os
import signal
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from types import FrameType

import pandas as pd

from predictive_scoring.config import DataParams
from predictive_scoring.errors import DataValidationError, ScoringInputError
from predictive_scoring.ingress import raw_from_frames, read_time_option
from predictive_scoring.io import atomic_path
from predictive_scoring.read import read_table
from predictive_scoring.scorelog import ScoredBatch, write_scores
from predictive_scoring.scoring import FRAME_LIMITS, Scorer, results_frame
from predictive_scoring.timestamps import SERVING

__all__ = ["FileScoreSummary", "remove_stale_temps", "score_files"]

logger = logging.getLogger(__name__)

CHUNK = 50_000
# The lineage each scored row carries beside model_version (Scorer.lineage's keys).
LINEAGE_COLUMNS = ("definition_hash", "thresholds_version", "data_hash")


@dataclass
class FileScoreSummary:
    """What a file scoring run did: leads per stage and the inputs the model never saw."""

    n_leads: int = 0
    stages: Counter[str] = field(default_factory=Counter)
    warnings: Counter[str] = field(default_factory=Counter)


def _read(path: Path, data: DataParams) -> pd.DataFrame:
    try:
        return read_table(path, sep=data.sep)
    except DataValidationError as exc:  # one line: the reader names the file and the fix
        raise ScoringInputError(exc.problems[0], field=str(path), loc=[str(path)]) from None


def remove_stale_temps(output: Path) -> list[Path]:
    """Delete the temp files of earlier writes to ``output`` that no live process holds: a
    scoring run killed while writing leaves one (``.scored.csv.XXXX.tmp``). Returns them."""
    removed = []
    for tmp in output.parent.glob(f".{output.name}.*.tmp"):
        try:
            fd = os.open(tmp, os.O_RDONLY)
        except OSError:
            continue
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            continue  # a live writer holds it
        else:
            tmp.unlink(missing_ok=True)
            removed.append(tmp)
        finally:
            os.close(fd)
    if removed:
        logger.info("removed %d temp file(s) left by a killed run beside %s", len(removed), output)
    return removed


@contextmanager
def _written(output: Path) -> Iterator[Path]:
    """A temp path that replaces ``output`` when the block succeeds (:func:`atomic_path`),
    locked while this process lives so :func:`remove_stale_temps` leaves it alone, and removed
    on SIGTERM as on SIGINT or an error."""
    with _terminate_as_exit(), atomic_path(output) as tmp:
        fd = os.open(tmp, os.O_RDONLY)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX)
            yield tmp
        finally:
            os.close(fd)


@contextmanager
def _terminate_as_exit() -> Iterator[None]:
    """SIGTERM raises SystemExit inside the block, so clean-up runs as for Ctrl-C."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return

    def exit_on(signum: int, frame: FrameType | None) -> None:
        raise SystemExit(128 + signum)

    previous = signal.signal(signal.SIGTERM, exit_on)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)


def score_files(
    *,
    scorer: Scorer,
    leads: Path,
    events: Path | None,
    output: Path,
    data: DataParams | None = None,
    as_of: str | None = None,
    progress: Callable[[int, int], None] | None = None,
    log_store: str | Path | None = None,
) -> FileScoreSummary:
    """Score every lead in ``leads`` (with ``events``) and write a CRM-importable CSV.

    Column names come from ``data`` (the data section of params.yaml). Every lead is checked
    before anything is scored, so an error names the file's row and nothing is written. Each row
    carries the model's lineage (registry version, definition hash, thresholds version, training
    data hash). With ``log_store``, the scores go to the score log too (source ``file``), once
    the output is written.
    """
    data = data or DataParams()
    remove_stale_temps(output)
    now = int(time.time())
    if as_of is not None:
        now = read_time_option(as_of, name="--as-of", policy=SERVING, now=now)
    raw = raw_from_frames(
        _read(leads, data),
        _read(events, data) if events is not None else None,
        source=str(leads),
        events_source=str(events),
        id_column=data.id_column,
        created_column=data.created_column or "created_at",
        event_id_column=data.id_column,
        event_type_column=data.event_type_column,
        event_time_column=data.event_time_column,
    )
    admitted = scorer.admit(raw, now=now, limits=FRAME_LIMITS)
    summary = FileScoreSummary(n_leads=len(admitted.lead_ids))
    lineage = scorer.lineage
    scored_at = time.time()
    parts, logged = [], []
    for start in range(0, summary.n_leads, CHUNK):
        stop = min(start + CHUNK, summary.n_leads)
        batch = admitted.batch.rows(start, stop)
        results, features = scorer.score_batch_with_features(
            batch, admitted.lead_ids[start:stop], warnings=admitted.warnings[start:stop]
        )
        summary.stages.update(r.stage for r in results)
        summary.warnings.update(f"{w.field}={w.value}" for r in results for w in r.warnings)
        parts.append(results_frame(results, version=scorer.version))
        if log_store is not None:
            logged.append(
                ScoredBatch.of(
                    results,
                    features,
                    feature_names=tuple(scorer.feature_names),
                    as_of=batch.as_of,
                    source="file",
                    lineage=lineage,
                    scored_at=scored_at,
                )
            )
        if progress is not None:
            progress(stop, summary.n_leads)
    out = pd.concat(parts, ignore_index=True) if parts else results_frame([], version="")
    out = out.rename(columns={"lead_id": data.id_column})
    for key in LINEAGE_COLUMNS:
        out[key] = lineage[key]
    out["scored_at"] = dt.datetime.fromtimestamp(int(scored_at), dt.UTC).isoformat()
    with _written(output) as tmp:
        out.to_csv(tmp, index=False)
    logger.info("scored %d leads from %s -> %s", summary.n_leads, leads, output)
    if log_store is not None:
        written = write_scores(log_store, logged)
        logger.info(
            "score log: %d leads in %d part(s) of %s", summary.n_leads, len(written), log_store
        )
    return summary
