"""The closed loop's stores: the score log and the outcomes, as Parquet parts in one folder.

Every writer (each service worker, the file scorer, the pyfunc, ``outcomes import``) adds whole
files and never changes one: a part is written under a hidden temporary name and renamed into
place, so a reader sees it whole or not at all, and two writers cannot collide (a part's name
holds the host, the process and a sequence number). Readers scan every part with DuckDB
(``union_by_name``, so the feature columns of several model versions line up); Spark reads the
same folder for large logs. The store is a local folder by default (``logs/``); several replicas
share one by mounting the same volume (docs/monitoring.md).

Layout: ``<store>/scores/<YYYY-MM-DD>/<host>-<pid>-<seq>.parquet`` and the same under
``outcomes/``. The day is the one the part was written, for pruning old logs by folder.
"""

from __future__ import annotations

import itertools
import os
import socket
import threading
from collections.abc import Mapping, Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq

__all__ = [
    "FEATURE_PREFIX",
    "OUTCOMES",
    "OUTCOME_COLUMNS",
    "SCORES",
    "SCORE_COLUMNS",
    "feature_column",
    "parts_glob",
    "scan",
    "write_part",
]

SCORES = "scores"
OUTCOMES = "outcomes"
# The score log's fixed columns; then one float64 column per model input, named by
# feature_column(name): the feature vector exactly as the model saw it (categories as codes).
SCORE_COLUMNS: dict[str, pa.DataType] = {
    "lead_id": pa.string(),
    "scored_at": pa.timestamp("us", tz="UTC"),
    "as_of": pa.timestamp("us", tz="UTC"),
    "source": pa.string(),  # api, file or pyfunc
    "model_name": pa.string(),
    "model_version": pa.string(),  # the registry version
    "model_sha256": pa.string(),
    "definition_hash": pa.string(),
    "thresholds_version": pa.string(),
    "data_hash": pa.string(),
    "probability": pa.float64(),
    "score": pa.int64(),
    "stage": pa.string(),  # SQL, MQL or nurture
    "grade": pa.string(),
}
OUTCOME_COLUMNS: dict[str, pa.DataType] = {
    "lead_id": pa.string(),
    "stage": pa.string(),  # the data contract's stages, plus sql_accepted / sql_rejected
    "ts": pa.timestamp("us", tz="UTC"),
    "reason": pa.string(),  # optional: why sales rejected or accepted, why a deal was lost
    "received_at": pa.timestamp("us", tz="UTC"),
    "source": pa.string(),  # api or file
}
FEATURE_PREFIX = "f__"

_SEQUENCE = itertools.count()
_SEQUENCE_LOCK = threading.Lock()


def feature_column(name: str) -> str:
    """The score log's column for a model input."""
    return f"{FEATURE_PREFIX}{name}"


def _is_url(store: str | Path) -> bool:
    return "://" in str(store)


def write_part(store: str | Path, table: str, part: pa.Table) -> str:
    """Add one Parquet part to ``table`` (``scores`` or ``outcomes``) of ``store``, atomically.

    A local store gets a hidden temporary file renamed into place; an fsspec URL (object
    storage, where a finished upload is atomic) is written through fsspec. Returns the path.
    """
    with _SEQUENCE_LOCK:
        seq = next(_SEQUENCE)
    day = datetime.now(UTC).strftime("%Y-%m-%d")
    name = f"{socket.gethostname()}-{os.getpid()}-{seq:08d}.parquet"
    if _is_url(store):
        import fsspec

        url = f"{str(store).rstrip('/')}/{table}/{day}/{name}"
        with fsspec.open(url, "wb") as handle:
            pq.write_table(part, handle)
        return url
    folder = Path(store) / table / day
    folder.mkdir(parents=True, exist_ok=True)
    tmp = folder / f".{name}.tmp"
    try:
        pq.write_table(part, tmp)
        os.replace(tmp, folder / name)
    finally:
        if tmp.exists():
            tmp.unlink()
    return str(folder / name)


def parts_glob(store: str | Path, table: str) -> str:
    """The glob of every part of ``table`` (hidden temporary files do not match)."""
    return f"{str(store).rstrip('/')}/{table}/*/[!.]*.parquet"


def scan(con: Any, store: str | Path, table: str, *, columns: Sequence[str] | None = None) -> Any:
    """A DuckDB relation over every part of ``table`` (None when there is none yet)."""
    glob = parts_glob(store, table)
    if not _is_url(store) and not any(Path(store).glob(f"{table}/*/[!.]*.parquet")):
        return None
    # PyArrow leaves NaN out of Parquet min/max statistics, and DuckDB would then fold
    # isnan(x) to false and x <= edge to true (duckdb/duckdb#25521): a missing feature would
    # vanish from a count. Tell it NaN may hide outside the statistics.
    try:
        con.execute("SET parquet_can_have_nan = true")
    except Exception:  # a DuckDB without the setting: no statistics propagation at all
        con.execute("SET disabled_optimizers = 'statistics_propagation'")
    select = ", ".join(f'"{c}"' for c in columns) if columns else "*"
    return con.sql(f"SELECT {select} FROM read_parquet('{glob}', union_by_name = true)")


def empty_table(columns: Mapping[str, pa.DataType]) -> pa.Table:
    """A table with the given columns and no rows."""
    return pa.table({name: pa.array([], type=kind) for name, kind in columns.items()})
