"""Batch scoring of CRM files through the same reader, rules and scorer as everything else.

The files are read as training reads them (:func:`predictive_scoring.read.read_table`, with the
data section's separator), named by the data section's columns, admitted by
:mod:`predictive_scoring.ingress` (which applies the model's missing-value markers) and written
atomically, with a warnings column.
"""

from __future__ import annotations

import datetime as dt
import logging
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import pandas as pd

from predictive_scoring.config import DataParams
from predictive_scoring.errors import DataValidationError, ScoringInputError
from predictive_scoring.ingress import raw_from_frames, read_time_option
from predictive_scoring.io import atomic_path
from predictive_scoring.read import read_table
from predictive_scoring.scoring import FRAME_LIMITS, Scorer, results_frame
from predictive_scoring.timestamps import SERVING

__all__ = ["FileScoreSummary", "score_files"]

logger = logging.getLogger(__name__)

CHUNK = 50_000


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


def score_files(
    *,
    scorer: Scorer,
    leads: Path,
    events: Path | None,
    output: Path,
    data: DataParams | None = None,
    as_of: str | None = None,
    progress: Callable[[int, int], None] | None = None,
) -> FileScoreSummary:
    """Score every lead in ``leads`` (with ``events``) and write a CRM-importable CSV.

    Column names come from ``data`` (the data section of params.yaml). Every lead is checked
    before anything is scored, so an error names the file's row and nothing is written.
    """
    data = data or DataParams()
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
    parts = []
    for start in range(0, summary.n_leads, CHUNK):
        stop = min(start + CHUNK, summary.n_leads)
        results = scorer.score_batch(
            admitted.batch.rows(start, stop),
            admitted.lead_ids[start:stop],
            warnings=admitted.warnings[start:stop],
        )
        summary.stages.update(r.stage for r in results)
        summary.warnings.update(f"{w.field}={w.value}" for r in results for w in r.warnings)
        parts.append(results_frame(results, version=scorer.version))
        if progress is not None:
            progress(stop, summary.n_leads)
    out = pd.concat(parts, ignore_index=True) if parts else results_frame([], version="")
    out = out.rename(columns={"lead_id": data.id_column})
    out["scored_at"] = dt.datetime.now(dt.UTC).isoformat(timespec="seconds")
    with atomic_path(output) as tmp:
        out.to_csv(tmp, index=False)
    logger.info("scored %d leads from %s -> %s", summary.n_leads, leads, output)
    return summary
