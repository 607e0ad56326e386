"""Featuretools deep feature synthesis with cutoff times; run by bench_featurize.py in a venv
with pandas<3 (Featuretools does not run on pandas 3). Prints one ``RESULT {json}`` line.

Given the sampled (lead_id, as_of_s) snapshots, it builds an EntitySet of those leads and their
events only (which favours Featuretools) and computes counts per event type, time since the last
event and distinct active days with cutoff times, about the same features as ours.
"""

from __future__ import annotations

import argparse
import json
import time

import featuretools as ft
import pandas as pd


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--data", required=True)
    parser.add_argument("--snapshots", required=True)
    args = parser.parse_args()
    snaps = pd.read_parquet(args.snapshots)
    ids = set(snaps["lead_id"])
    leads = pd.read_parquet(f"{args.data}/leads.parquet")
    leads = leads[leads["lead_id"].isin(ids)].copy()
    events = pd.read_parquet(
        f"{args.data}/events.parquet", columns=["lead_id", "ts", "event_type"]
    )
    events = events[events["lead_id"].isin(ids)].reset_index(drop=True)
    events["event_id"] = range(len(events))
    for frame, col in ((leads, "created_at"), (events, "ts")):
        frame[col] = pd.to_datetime(frame[col], utc=True).dt.tz_convert(None)
    started = time.perf_counter()
    es = ft.EntitySet(id="leads")
    es = es.add_dataframe(
        dataframe_name="leads", dataframe=leads, index="lead_id", time_index="created_at"
    )
    es = es.add_dataframe(
        dataframe_name="events",
        dataframe=events,
        index="event_id",
        time_index="ts",
        logical_types={"event_type": "Categorical"},
    )
    es = es.add_relationship("leads", "lead_id", "events", "lead_id")
    es["events"].ww.columns["event_type"].metadata["interesting_values"] = sorted(
        events["event_type"].dropna().unique().tolist()
    )
    cutoff = pd.DataFrame(
        {
            "lead_id": snaps["lead_id"].to_numpy(),
            "time": pd.to_datetime(snaps["as_of_s"], unit="s"),
        }
    )
    _matrix, defs = ft.dfs(
        entityset=es,
        target_dataframe_name="leads",
        cutoff_time=cutoff,
        agg_primitives=["count", "time_since_last", "num_unique"],
        where_primitives=["count", "time_since_last"],
        trans_primitives=["day"],
        max_depth=2,
        verbose=False,
    )
    wall = time.perf_counter() - started
    print(
        "RESULT "
        + json.dumps(
            {
                "wall_s": round(wall, 2),
                "snapshots": len(cutoff),
                "features": len(defs),
                "featuretools": ft.__version__,
                "pandas": pd.__version__,
            }
        )
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
