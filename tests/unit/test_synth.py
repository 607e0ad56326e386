"""The demo data generator honours the data contract, is deterministic and writes atomically."""

from __future__ import annotations

import itertools
from pathlib import Path

import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from predictive_scoring.config import GenerateParams
from predictive_scoring.errors import ConfigError
from predictive_scoring.synth import (
    EVENT_TYPES,
    EVENTS_SCHEMA,
    LATENT_SCHEMA,
    LEADS_SCHEMA,
    OUTCOMES_SCHEMA,
    generate_demo,
)

TABLES = ("leads", "events", "outcomes", "latent")


@pytest.fixture(scope="module")
def demo(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict[str, float]]:
    out = tmp_path_factory.mktemp("synth") / "raw"
    params = GenerateParams(n_leads=1500, months=12, seed=7, chunk_leads=600)
    return out, generate_demo(out, params)


def _read(out: Path, name: str) -> pd.DataFrame:
    return pd.read_parquet(out / f"{name}.parquet")


def test_writes_exactly_the_contract_schemas(demo: tuple[Path, dict[str, float]]) -> None:
    out, _ = demo
    expected = {
        "leads": LEADS_SCHEMA,
        "events": EVENTS_SCHEMA,
        "outcomes": OUTCOMES_SCHEMA,
        "latent": LATENT_SCHEMA,
    }
    assert sorted(p.name for p in out.iterdir()) == sorted(f"{t}.parquet" for t in TABLES)
    for name, schema in expected.items():
        assert pq.read_schema(out / f"{name}.parquet").remove_metadata() == schema, name
    assert LEADS_SCHEMA.field("created_at").type == pa.timestamp("us", tz="UTC")


def test_lead_ids_are_unique_and_cover_the_requested_count_across_chunks(
    demo: tuple[Path, dict[str, float]],
) -> None:
    out, summary = demo
    leads = _read(out, "leads")
    assert len(leads) == 1500 == summary["n_leads"]
    assert leads["lead_id"].is_unique
    assert leads["lead_id"].str.fullmatch(r"L\d{8}").all()
    assert set(_read(out, "latent")["lead_id"]) == set(leads["lead_id"])
    assert len(_read(out, "events")) == summary["n_events"]


def test_events_fall_between_creation_and_the_end_of_the_period(
    demo: tuple[Path, dict[str, float]],
) -> None:
    out, _ = demo
    leads = _read(out, "leads").set_index("lead_id")
    events = _read(out, "events")
    end = pd.Timestamp("2024-01-01", tz="UTC") + pd.DateOffset(months=12)
    created = leads.loc[events["lead_id"], "created_at"].to_numpy()
    assert (events["ts"].to_numpy() >= created).all()
    assert (events["ts"] < end).all()
    assert set(events["event_type"]) == set(EVENT_TYPES)
    assert leads["created_at"].min() >= pd.Timestamp("2024-01-01", tz="UTC")


def test_outcome_stages_are_ordered_in_time_per_lead(
    demo: tuple[Path, dict[str, float]],
) -> None:
    out, _ = demo
    leads = _read(out, "leads").set_index("lead_id")
    outcomes = _read(out, "outcomes")
    assert set(outcomes["stage"]) <= {"mql", "sql", "opportunity", "won", "lost"}
    assert (
        outcomes["ts"].to_numpy() > leads.loc[outcomes["lead_id"], "created_at"].to_numpy()
    ).all()
    wide = outcomes.pivot(index="lead_id", columns="stage", values="ts")
    order = [s for s in ("mql", "sql", "opportunity") if s in wide]
    for earlier, later in itertools.pairwise(order):
        both = wide[[earlier, later]].dropna()
        assert (both[earlier] <= both[later]).all(), (earlier, later)
    closed = wide["won"].combine_first(wide["lost"])
    assert not (wide["won"].notna() & wide["lost"].notna()).any()
    for stage in order:
        both = pd.concat([wide[stage], closed], axis=1).dropna()
        assert (both.iloc[:, 0] <= both.iloc[:, 1]).all(), stage
    assert outcomes.loc[outcomes["stage"] == "won", "amount"].notna().all()
    assert outcomes.loc[outcomes["stage"] != "won", "amount"].isna().all()
    assert outcomes["lead_id"].nunique() < len(leads)


def test_attributes_are_messy_but_plausible(demo: tuple[Path, dict[str, float]]) -> None:
    out, summary = demo
    leads = _read(out, "leads")
    for column in ("industry", "employees", "annual_revenue", "country", "job_title", "email"):
        assert 0.03 < leads[column].isna().mean() < 0.25, column
    titles = leads["job_title"].dropna()
    assert (titles != titles.str.strip()).any()
    assert titles.str.lower().nunique() < titles.nunique()
    assert leads["email"].dropna().str.contains("@gmail.com").any()
    assert 0.05 < summary["conversion_rate"] < 0.25
    latent = _read(out, "latent")
    assert latent["propensity"].between(0, 1).all()


def test_same_seed_gives_identical_files(tmp_path: Path) -> None:
    params = GenerateParams(n_leads=300, months=6, seed=3, chunk_leads=100)
    generate_demo(tmp_path / "a", params)
    generate_demo(tmp_path / "b", params)
    other = generate_demo(tmp_path / "c", params.model_copy(update={"seed": 4}))
    for name in TABLES:
        a = pq.read_table(tmp_path / "a" / f"{name}.parquet")
        b = pq.read_table(tmp_path / "b" / f"{name}.parquet")
        assert a.equals(b), name
    events_a = pq.read_table(tmp_path / "a" / "events.parquet")
    assert other["n_events"] != events_a.num_rows or not events_a.equals(
        pq.read_table(tmp_path / "c" / "events.parquet")
    )


def test_replaces_an_old_output_and_leaves_no_temp_dir(tmp_path: Path) -> None:
    out = tmp_path / "raw"
    out.mkdir()
    (out / "stale.csv").write_text("old")
    generate_demo(out, GenerateParams(n_leads=200, months=3, chunk_leads=100), progress=True)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["raw"]
    assert not (out / "stale.csv").exists()
    assert len(pd.read_parquet(out / "leads.parquet")) == 200


def test_a_failure_leaves_the_old_output_untouched(tmp_path: Path) -> None:
    out = tmp_path / "raw"
    out.mkdir()
    (out / "keep.csv").write_text("old")
    with pytest.raises(ConfigError, match=r"generate\.start"):
        generate_demo(out, GenerateParams(n_leads=200, start="not a date"))
    assert sorted(p.name for p in tmp_path.iterdir()) == ["raw"]
    assert (out / "keep.csv").read_text() == "old"
