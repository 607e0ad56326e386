"""Featurize: raw tables -> point-in-time snapshots -> features, split by lead cohort in time."""

from __future__ import annotations

import logging
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import ibis
import ibis.expr.types as ir
import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
from sklearn.model_selection import train_test_split

from predictive_scoring.batch import (
    build_snapshots,
    connect_duckdb,
    epoch_seconds,
    featurize_expr,
)
from predictive_scoring.config import DataParams, FeaturizeParams
from predictive_scoring.errors import DataValidationError, FeatureError
from predictive_scoring.features import SECONDS_PER_DAY, FeatureDefinition, build_definition
from predictive_scoring.schema import RawData, load_raw

__all__ = [
    "SPLITS",
    "FeatureSet",
    "events_table",
    "featurize_dataset",
    "featurize_files",
    "to_epoch_seconds",
]

logger = logging.getLogger(__name__)

SPLITS = ("train", "valid", "test")


def to_epoch_seconds(values: pd.Series) -> np.ndarray:
    """Whole UTC epoch seconds (int64) of a tz-aware datetime column."""
    ts = pd.to_datetime(values, utc=True)
    seconds: np.ndarray = ts.dt.tz_convert(None).to_numpy(dtype="datetime64[s]").astype(np.int64)
    return seconds


@dataclass
class FeatureSet:
    """Featurised snapshots per split, the definition that made them, and a summary."""

    frames: dict[str, pd.DataFrame]
    definition: FeatureDefinition
    summary: dict[str, Any] = field(default_factory=dict)


def _split_by_time(leads: pd.DataFrame, params: FeaturizeParams) -> pd.Series:
    """Latest-created leads to test, the ones before to valid, the rest to train."""
    order = leads.sort_values(["created_s", "lead_id"], kind="stable")
    n = len(order)
    n_test = max(1, round(n * params.test_fraction))
    n_valid = max(1, round(n * params.valid_fraction))
    split = np.array(["train"] * n, dtype=object)
    split[n - n_test :] = "test"
    split[n - n_test - n_valid : n - n_test] = "valid"
    return pd.Series(split, index=order["lead_id"].to_numpy(), name="split")


def _split_stratified(leads: pd.DataFrame, params: FeaturizeParams) -> pd.Series:
    """Stratified random split, for exports without a creation timestamp."""
    ids = leads["lead_id"].to_numpy()
    y = leads["label"].to_numpy()
    rest, test = train_test_split(
        ids, test_size=params.test_fraction, stratify=y, random_state=params.seed
    )
    rest_y = leads.set_index("lead_id").loc[rest, "label"].to_numpy()
    valid_share = params.valid_fraction / (1 - params.test_fraction)
    _train, valid = train_test_split(
        rest, test_size=valid_share, stratify=rest_y, random_state=params.seed
    )
    split = pd.Series("train", index=ids, name="split", dtype=object)
    split[valid] = "valid"
    split[test] = "test"
    return split


def _fetch_pandas(con: Any, expr: ir.Table) -> pd.DataFrame:
    """``con.to_pandas(expr)`` with a lower peak on DuckDB, where Ibis turns every column with
    a null into a Python list first; here Arrow columns are freed as they are converted."""
    if getattr(con, "name", None) != "duckdb":
        return con.to_pandas(expr)
    from ibis.backends.duckdb.converter import DuckDBPandasData

    arrow = con.to_pyarrow(expr)
    frame = arrow.to_pandas(self_destruct=True, split_blocks=True)
    del arrow
    return DuckDBPandasData.convert_table(frame, expr.schema())


def _weeks(as_of: pd.Series) -> float:
    if as_of.empty:
        return 0.0
    span = float(as_of.max() - as_of.min()) / (7 * SECONDS_PER_DAY)
    return max(span, 1.0)


def featurize_dataset(
    raw: RawData,
    data: DataParams,
    params: FeaturizeParams,
    *,
    con: Any | None = None,
    events: ir.Table | None = None,
) -> FeatureSet:
    """Build snapshots, labels and features for every split with the batch executor.

    ``events``, an Ibis table on ``con`` with lead_id, event_type and ts_s (see
    :func:`events_table`), replaces ``raw.events``: the events then never enter pandas.
    """
    con = con or connect_duckdb()
    leads = raw.leads.copy()
    has_created = "created_at" in leads.columns and leads["created_at"].notna().all()
    leads["created_s"] = to_epoch_seconds(leads["created_at"]) if has_created else 0
    ev_t: ir.Table | None = None
    event_types: list[str] = []
    events_end_s: int | None = None
    if events is not None:
        facts = con.to_pandas(events.aggregate(n=events.count(), end_s=events.ts_s.max())).iloc[0]
        if int(facts["n"]) > 0:
            ev_t = events.select("lead_id", "event_type", "ts_s")
            types = con.to_pandas(ev_t.select("event_type").distinct())["event_type"]
            event_types = types.dropna().astype(str).tolist()
            events_end_s = int(facts["end_s"])
    elif raw.events is not None and len(raw.events) > 0:
        ev = raw.events[["lead_id", "event_type"]].assign(ts_s=to_epoch_seconds(raw.events["ts"]))
        ev_t = ibis.memtable(ev)
        event_types = ev["event_type"].dropna().astype(str).unique().tolist()
        events_end_s = int(ev["ts_s"].max())
    has_events = ev_t is not None
    definition = build_definition(
        event_types=event_types,
        attribute_types=raw.attribute_types,
        windows_days=params.windows_days,
        half_life_days=params.half_life_days,
        active_days_window=params.active_days_window,
        job_title_column=data.job_title_column if data.job_title_column in leads else None,
        email_column=data.email_column if data.email_column in leads else None,
        employees_column=data.employees_column if data.employees_column in leads else None,
        has_events=has_events,
        has_created_at=has_created,
        aliases=params.category_aliases,
        missing_values=data.missing_values,
    )
    notes: list[str] = []
    if data.format == "flat":
        snaps = leads[["lead_id", "created_s", "label"]].assign(
            as_of_s=leads["created_s"], offset_days=0
        )
        if has_created:
            split = _split_by_time(leads, params)
            notes.append("split by lead creation time (created_at)")
        else:
            split = _split_stratified(leads, params)
            notes.append("no creation timestamps: stratified random split, not a time split")
        snaps = snaps.assign(split=snaps["lead_id"].map(split))
        snap_t = ibis.memtable(snaps)
    else:
        if raw.outcomes is None:
            raise FeatureError("the contract format needs an outcomes table (data.outcomes)")
        outcomes = raw.outcomes.assign(ts_s=to_epoch_seconds(raw.outcomes["ts"]))
        ends = [int(leads["created_s"].max()), int(outcomes["ts_s"].max())]
        if events_end_s is not None:
            ends.append(events_end_s)
        data_end_s = (
            int(to_epoch_seconds(pd.Series([params.data_end]))[0])
            if params.data_end
            else max(ends)
        )
        snap_expr = build_snapshots(
            ibis.memtable(leads[["lead_id", "created_s"]]),
            ibis.memtable(outcomes[["lead_id", "stage", "ts_s"]]),
            offsets_days=params.offsets_days,
            target_stage=params.target_stage,
            horizon_days=params.horizon_days,
            data_end_s=data_end_s,
        )
        snaps = con.to_pandas(snap_expr)
        logger.info("%d snapshots of %d leads", len(snaps), len(leads))
        if snaps.empty:
            raise FeatureError(
                "no snapshot survives censoring: every lead's horizon runs past the end of the "
                f"data; shorten featurize.horizon_days (now {params.horizon_days})"
            )
        with_snaps = leads[leads["lead_id"].isin(snaps["lead_id"].unique())]
        split = _split_by_time(with_snaps, params)
        snaps = snaps.assign(split=snaps["lead_id"].map(split))
        snap_t = ibis.memtable(snaps)
        notes.append(
            f"snapshots at {params.offsets_days} days, target '{params.target_stage}' within "
            f"{params.horizon_days} days, data end {pd.Timestamp(data_end_s, unit='s')}"
        )
    attr_cols = ["lead_id"] + [
        c
        for c in {
            *(n for n, _ in definition.attributes),
            definition.job_title_column,
            definition.email_column,
            definition.employees_column,
        }
        if c
    ]
    leads_t = ibis.memtable(leads[sorted(set(attr_cols), key=attr_cols.index)])
    expr = featurize_expr(snap_t, leads_t, ev_t, definition)
    # Sorted by split, each split is a slice of one frame: with copy-on-write the slices share
    # its memory instead of copying the whole feature table once more (it is the peak).
    table = _fetch_pandas(con, expr.order_by(["split", "lead_id", "as_of_s"]))
    table.insert(2, "as_of", pd.to_datetime(table["as_of_s"], unit="s", utc=True))
    logger.info("featurized %d snapshots x %d features", len(table), len(definition.feature_names))
    split_of = table["split"].to_numpy(dtype=object)
    frames = {}
    for s in SPLITS:
        rows = np.flatnonzero(split_of == s)
        lo, hi = (int(rows[0]), int(rows[-1]) + 1) if len(rows) else (0, 0)
        assert hi - lo == len(rows), "splits are contiguous after sorting by split"
        frames[s] = table.iloc[lo:hi].reset_index(drop=True)
    del table, split_of
    summary: dict[str, Any] = {
        "n_features": len(definition.feature_names),
        "n_event_types": len(definition.event_types),
        "notes": notes,
        "split": "time" if (data.format == "contract" or has_created) else "stratified_random",
    }
    for s, frame in frames.items():
        summary[s] = {
            "snapshots": len(frame),
            "leads": int(frame["lead_id"].nunique()),
            "positive_rate": float(frame["label"].mean()) if len(frame) else 0.0,
            "weeks": _weeks(frame["as_of_s"]),
        }
        if frame.empty or frame["label"].nunique() < 2:
            raise FeatureError(_one_class_split(s, frame, data, params))
    return FeatureSet(frames=frames, definition=definition, summary=summary)


def _one_class_split(
    split: str, frame: pd.DataFrame, data: DataParams, params: FeaturizeParams
) -> str:
    """Why a split cannot train or test a model, naming where its label comes from."""
    if data.format == "flat":
        where = f"{Path(data.dir) / data.leads}: column '{data.label_column}'"
    else:
        where = f"{Path(data.dir) / str(data.outcomes)}: column '{data.stage_column}'"
    which = {"train": "the leads created first", "valid": "the leads before the last",
             "test": "the leads created last"}.get(split, split)  # fmt: skip
    if data.format == "flat" and not data.created_column:
        which = "a stratified random share"
    positives = int(frame["label"].sum()) if len(frame) else 0
    return (
        f"{where}: the '{split}' split ({which}) has {len(frame)} snapshots and {positives} "
        f"reaching '{params.target_stage}' within {params.horizon_days} days; it needs both "
        "classes: add data, lengthen featurize.horizon_days or change the split fractions"
    )


def _is_parquet(path: str) -> bool:
    return path.lower().rstrip("/").endswith((".parquet", ".pq"))


def events_table(con: Any, source: str | Path, data: DataParams) -> ir.Table:
    """The events as an Ibis table on ``con`` (lead_id, event_type, ts_s), read from Parquet.

    The engine reads the file (a path, a folder of parts, or an object-store URI) itself, so the
    events never pass through pandas; the normalisation matches :func:`schema.load_raw`: ids as
    text, missing-value markers as null, whole UTC epoch seconds.
    """
    raw = con.read_parquet(str(source))
    names = {
        "lead_id": data.id_column,
        "ts": data.event_time_column,
        "event_type": data.event_type_column,
    }
    missing = [user for user in names.values() if user not in raw.columns]
    if missing:
        raise DataValidationError(
            [
                f"{source}: missing required column(s) {missing}; set their names in the data "
                "section of params.yaml"
            ]
        )
    ts = raw[names["ts"]]
    if not ts.type().is_timestamp():
        raise DataValidationError(
            [
                f"{source}: column '{names['ts']}' is {ts.type()}, not a timestamp; the "
                "out-of-core path reads Parquet timestamps only (load it with schema.load_raw)"
            ]
        )
    lead_id = raw[names["lead_id"]]
    if lead_id.type().is_floating():
        lead_id = lead_id.cast("int64")
    event_type = raw[names["event_type"]].cast("string")
    markers = sorted({m.strip().lower() for m in data.missing_values})
    if markers:
        event_type = ibis.ifelse(
            event_type.strip().lower().isin(markers), ibis.null("string"), event_type
        )
    return raw.select(
        lead_id=lead_id.cast("string"), event_type=event_type, ts_s=epoch_seconds(ts)
    )


def _reads_events_out_of_core(data: DataParams, root: Path) -> bool:
    if data.format != "contract" or not data.events or not _is_parquet(data.events):
        return False
    path = root / data.events
    if "://" in data.events:
        return True
    try:
        schema = pq.read_schema(path) if path.is_file() else None
    except Exception:  # unreadable here: let load_raw report it with the file name
        return False
    if schema is None or data.event_time_column not in schema.names:
        return False
    return bool(pa.types.is_timestamp(schema.field(data.event_time_column).type))


def featurize_files(
    data: DataParams,
    params: FeaturizeParams,
    *,
    root: str | Path = ".",
    con: Any | None = None,
    now: pd.Timestamp | None = None,
) -> FeatureSet:
    """Featurize straight from the raw files: events in Parquet are read by the engine itself.

    Leads and outcomes are loaded and validated by :func:`schema.load_raw`; a Parquet events
    table with a timestamp column is read by ``con`` (DuckDB out of core, or Spark), so its size
    is bounded by disk, not memory. Other formats fall back to the in-memory path. Both paths
    give the same numbers; the events' own checks belong to the ``validate`` stage.
    """
    root = Path(root)
    con = con or connect_duckdb()
    if not _reads_events_out_of_core(data, root):
        return featurize_dataset(load_raw(data, root=root, now=now), data, params, con=con)
    assert data.events is not None
    raw = load_raw(data.model_copy(update={"events": None}), root=root, now=now)
    source = data.events if "://" in data.events else (root / data.events).resolve()
    logger.info("events read by the engine from %s (out of core)", source)
    events = events_table(con, source, data)
    return featurize_dataset(raw, data, params, con=con, events=events)


def split_weeks(summary: Mapping[str, Any], split: str) -> float:
    """Weeks spanned by a split's snapshots, for per-week volumes."""
    return float(summary.get(split, {}).get("weeks", 1.0))
