"""Batch scoring of CRM files through the same scorer as the service, written atomically."""

from __future__ import annotations

import datetime as dt
import logging
from pathlib import Path

import pandas as pd
from sklearn.metrics import average_precision_score, log_loss, roc_auc_score

from predictive_scoring.errors import ScoringInputError
from predictive_scoring.io import atomic_path
from predictive_scoring.scoring import Scorer, batch_from_frames, epoch_seconds_of, results_frame
from predictive_scoring.train import encode_frame

__all__ = ["metric_on_features", "read_any", "score_files"]

logger = logging.getLogger(__name__)

CHUNK = 50_000


def read_any(path: Path) -> pd.DataFrame:
    """A CSV or Parquet file as a frame; errors name the file."""
    if not path.exists():
        raise ScoringInputError(f"{path}: file not found", field=str(path))
    try:
        if path.suffix.lower() in {".parquet", ".pq"}:
            return pd.read_parquet(path)
        # Every cell as text and only an empty cell missing, exactly as training reads a CSV
        # (schema.read_table): no type guessing, so '007' stays '007' and 'None' a category.
        return pd.read_csv(path, dtype=str, keep_default_na=False, na_values=[""])
    except (OSError, ValueError) as exc:
        raise ScoringInputError(f"{path}: cannot read it as CSV or Parquet ({exc})") from exc


def score_files(
    *,
    leads: Path,
    events: Path | None,
    output: Path,
    bundle: Path,
    as_of: str | None = None,
) -> int:
    """Score every lead in ``leads`` (with ``events``) and write a CRM-importable CSV."""
    scorer = Scorer.load(bundle)
    lead_frame = read_any(leads)
    lead_frame = lead_frame.astype(object).where(lead_frame.notna(), None)
    event_frame = read_any(events) if events is not None else None
    now = pd.Timestamp.now(tz="UTC")
    when = pd.Timestamp(as_of) if as_of else now
    when = when.tz_localize("UTC") if when.tzinfo is None else when.tz_convert("UTC")
    now_s = int(when.timestamp())
    if event_frame is not None and "ts" in event_frame.columns:
        # checked once on the whole file, so an error names the row of the file, not of a chunk
        epoch_seconds_of(event_frame["ts"], field="ts", source=str(events))
    parts = []
    for start in range(0, len(lead_frame), CHUNK):
        chunk = lead_frame.iloc[start : start + CHUNK]
        ev = None
        if event_frame is not None:
            ev = event_frame[event_frame["lead_id"].astype(str).isin(chunk["lead_id"].astype(str))]
        batch, ids = batch_from_frames(
            chunk, ev, now=now_s, source=str(leads), events_source=str(events)
        )
        parts.append(results_frame(scorer.score_batch(batch, ids), version=scorer.version))
    out = pd.concat(parts, ignore_index=True) if parts else results_frame([], version="")
    out["scored_at"] = dt.datetime.now(dt.UTC).isoformat(timespec="seconds")
    with atomic_path(output) as tmp:
        out.to_csv(tmp, index=False)
    logger.info("scored %d leads from %s -> %s", len(out), leads, output)
    return len(out)


def metric_on_features(scorer: Scorer, frame: pd.DataFrame, *, metric: str) -> float:
    """A scorer's metric on already-featurised snapshots (the promotion test set)."""
    X = encode_frame(frame, scorer.definition, scorer.levels)
    p = scorer.predict_matrix(X)
    y = frame["label"].to_numpy()
    metrics = {
        "roc_auc": lambda: roc_auc_score(y, p),
        "pr_auc": lambda: average_precision_score(y, p),
        "log_loss": lambda: log_loss(y, p, labels=[0, 1]),
    }
    if metric not in metrics:
        raise ScoringInputError(
            f"promote.metric '{metric}' is not one of {sorted(metrics)}", field="promote.metric"
        )
    return float(metrics[metric]())
