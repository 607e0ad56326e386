"""The production simulator: a period after the training data, its shifts, and its replay.

Each shift is compared with the unshifted period of the same seed: it changes what it says it
changes and nothing else. The replay runs against an in-process fake of the service
(httpx.MockTransport) that refuses what the real one refuses: future times, as_of before
creation, a lead twice in one batch.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any, get_args

import httpx
import pandas as pd
import pyarrow.parquet as pq
import pytest
import yaml
from typer.testing import CliRunner

from predictive_scoring import synth
from predictive_scoring.cli import app
from predictive_scoring.config import GenerateParams
from predictive_scoring.errors import ConfigError
from predictive_scoring.simulate import (
    NEW_SOURCE,
    OUTCOMES_SCHEMA,
    SHIFTS,
    ReplayError,
    Shift,
    ShiftKind,
    parse_ages,
    replay,
    scoring_schedule,
    simulate_period,
)

DEMO = GenerateParams(n_leads=3000, months=12, start="2024-01-01", seed=7, chunk_leads=1000)
TRAINING_END = pd.Timestamp("2025-01-01", tz="UTC")
WEEKS = 8
FILES = ("leads", "events", "outcomes", "eventual_outcomes", "latent")


@pytest.fixture(scope="module")
def periods(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """The same seed's period under every shift (bigger shares so the effects are clear)."""
    root = tmp_path_factory.mktemp("periods")
    out = {}
    for kind in SHIFTS:
        shift = Shift(kind=kind, share=0.4, factor=0.5)  # type: ignore[arg-type]
        simulate_period(root / kind, DEMO, weeks=WEEKS, shift=shift, seed=3)
        out[kind] = root / kind
    return out


def _read(folder: Path, name: str) -> pd.DataFrame:
    return pd.read_parquet(folder / f"{name}.parquet")


def _meta(folder: Path) -> dict[str, Any]:
    return dict(json.loads((folder / "period.json").read_text()))


# --- the period ---------------------------------------------------------------------------------
def test_same_seed_same_bytes_and_another_seed_another_period(
    periods: dict[str, Path], tmp_path: Path
) -> None:
    again = tmp_path / "again"
    simulate_period(again, DEMO, weeks=WEEKS, shift=Shift(), seed=3)
    for name in (*FILES, "period"):
        suffix = ".json" if name == "period" else ".parquet"
        first = (periods["none"] / f"{name}{suffix}").read_bytes()
        assert (again / f"{name}{suffix}").read_bytes() == first, name
    other = tmp_path / "other"
    simulate_period(other, DEMO, weeks=WEEKS, seed=4)
    assert not _read(other, "leads").equals(_read(periods["none"], "leads"))


def test_the_period_follows_the_training_data_in_the_contracts_shape(
    periods: dict[str, Path],
) -> None:
    folder = periods["none"]
    meta = _meta(folder)
    end = TRAINING_END + pd.Timedelta(weeks=WEEKS)
    assert pd.Timestamp(meta["start"]) == TRAINING_END and pd.Timestamp(meta["end"]) == end
    assert pq.read_schema(folder / "leads.parquet").remove_metadata() == synth.LEADS_SCHEMA
    assert pq.read_schema(folder / "events.parquet").remove_metadata() == synth.EVENTS_SCHEMA
    assert pq.read_schema(folder / "outcomes.parquet").remove_metadata() == OUTCOMES_SCHEMA
    leads = _read(folder, "leads").set_index("lead_id")
    # ids continue after the training data's, so the two never collide
    assert leads.index.is_unique and leads.index.min() == f"L{DEMO.n_leads + 1:08d}"
    assert (leads["created_at"] >= TRAINING_END).all() and (leads["created_at"] < end).all()
    # about the training data's volume for those weeks (3000 a year, growing)
    assert 3000 * WEEKS / 52 * 0.8 < len(leads) < 3000 * WEEKS / 52 * 2
    events = _read(folder, "events")
    assert (events["ts"].to_numpy() >= leads.loc[events["lead_id"], "created_at"].to_numpy()).all()
    assert (events["ts"] < end).all()
    outcomes, eventual = _read(folder, "outcomes"), _read(folder, "eventual_outcomes")
    assert (outcomes["ts"] < end).all() and (eventual["ts"] >= end).any()
    assert len(outcomes) == meta["n_outcomes"] == (eventual["ts"] < end).sum()
    assert set(_read(folder, "latent")["lead_id"]) == set(leads.index)


def test_sales_accepts_the_sqls_that_become_opportunities_and_gives_reasons(
    periods: dict[str, Path],
) -> None:
    eventual = _read(periods["none"], "eventual_outcomes")
    first = eventual.pivot_table(index="lead_id", columns="stage", values="ts", aggfunc="min")
    decided = first[["sql_accepted", "sql_rejected"]].notna().sum(axis=1)
    assert (decided == first["sql"].notna().astype(int)).all()  # one decision per SQL
    accepted = first["sql_accepted"].notna()
    assert (accepted == (first["sql"].notna() & first["opportunity"].notna())).all()
    assert (first["sql_accepted"][accepted] > first["sql"][accepted]).all()
    assert (first["sql_accepted"][accepted] < first["opportunity"][accepted]).all()
    rejected = first["sql_rejected"].notna()
    assert (first["sql_rejected"][rejected] > first["sql"][rejected]).all()
    reasons = eventual.loc[eventual["stage"] == "sql_rejected", "reason"]
    assert reasons.notna().all() and set(reasons) <= {
        "no budget",
        "not the decision maker",
        "bad timing",
        "no response",
    }
    assert eventual.loc[eventual["stage"] != "sql_rejected", "reason"].isna().all()
    # low fit is why sales turns a lead down
    latent = _read(periods["none"], "latent").set_index("lead_id")
    rows = eventual[eventual["stage"] == "sql_rejected"]
    low_fit = latent.loc[rows["lead_id"], "fit"].to_numpy() < 0
    assert rows["reason"][low_fit].isin(["no budget", "not the decision maker"]).all()


def _same(folder_a: Path, folder_b: Path, name: str) -> None:
    a, b = _read(folder_a, name), _read(folder_b, name)
    pd.testing.assert_frame_equal(a, b, check_exact=True)


def test_new_source_adds_leads_of_an_unseen_source_that_convert_less(
    periods: dict[str, Path],
) -> None:
    base, shifted = periods["none"], periods["new_source"]
    leads, new_leads = _read(base, "leads"), _read(shifted, "leads")
    n = len(leads)
    added = new_leads.iloc[n:]
    pd.testing.assert_frame_equal(new_leads.iloc[:n], leads)  # the others unchanged
    assert len(added) == round(0.4 * n) == _meta(shifted)["shift"]["leads_added"]
    for name in ("events", "outcomes", "eventual_outcomes", "latent"):
        part = _read(shifted, name)
        pd.testing.assert_frame_equal(
            part[part["lead_id"].isin(leads["lead_id"])].reset_index(drop=True), _read(base, name)
        )
    known = {name for name, *_ in synth._SOURCES}
    assert NEW_SOURCE[0] not in known and NEW_SOURCE[0] not in set(leads["lead_source"])
    sources = added["lead_source"]
    assert (sources.dropna() == NEW_SOURCE[0]).all() and sources.notna().mean() > 0.9
    latent = _read(shifted, "latent").set_index("lead_id")
    truth_new = latent.loc[added["lead_id"], "propensity"].mean()
    truth_old = latent.loc[leads["lead_id"], "propensity"].mean()
    assert truth_new < truth_old / 2
    eventual = _read(shifted, "eventual_outcomes")
    won = eventual[eventual["stage"] == "won"]["lead_id"]
    assert won.isin(added["lead_id"]).sum() / len(added) < won.isin(leads["lead_id"]).sum() / n


def test_bot_burst_adds_visits_and_clicks_without_any_intent(periods: dict[str, Path]) -> None:
    base, shifted = periods["none"], periods["bot_burst"]
    for name in ("leads", "outcomes", "eventual_outcomes", "latent"):
        _same(base, shifted, name)  # true propensity and what happens: unchanged
    before, after = _read(base, "events"), _read(shifted, "events")
    key = ["lead_id", "ts", "event_type"]
    merged = before.merge(after, on=key, how="left", indicator=True)
    assert (merged["_merge"] == "both").all()  # every event is still there
    added = after.merge(before, on=key, how="left", indicator=True)
    added = added[added["_merge"] == "left_only"]
    details = _meta(shifted)["shift"]
    assert len(added) == len(after) - len(before) == details["events_added"]
    assert set(added["event_type"]) == {"web_visit", "email_click", "email_open"}
    assert (added["ts"] >= pd.Timestamp(details["from"])).all()
    counts = after["event_type"].value_counts() - before["event_type"].value_counts()
    assert counts["web_visit"] > 0.5 * before["event_type"].eq("web_visit").sum()
    assert counts.drop(["web_visit", "email_click", "email_open"]).eq(0).all()
    hit = added["lead_id"].nunique() / len(_read(base, "leads"))
    assert 0.25 < hit < 0.45  # about the share asked (0.4), less the leads created too late


def test_conversion_drop_turns_wins_into_losses_by_about_the_factor(
    periods: dict[str, Path],
) -> None:
    base, shifted = periods["none"], periods["conversion_drop"]
    for name in ("leads", "events"):
        _same(base, shifted, name)  # the same inputs
    before, after = _read(base, "eventual_outcomes"), _read(shifted, "eventual_outcomes")
    changed = before["stage"] != after["stage"]
    assert (before.loc[changed, "stage"] == "won").all()
    assert (after.loc[changed, "stage"] == "lost").all()
    assert after.loc[changed, "amount"].isna().all()
    unchanged = ["lead_id", "ts", "reason"]
    pd.testing.assert_frame_equal(before[unchanged], after[unchanged])
    wins_before = (before["stage"] == "won").sum()
    ratio = (after["stage"] == "won").sum() / wins_before
    assert wins_before > 50 and abs(ratio - 0.5) < 0.12
    latent_before, latent_after = _read(base, "latent"), _read(shifted, "latent")
    pd.testing.assert_series_equal(
        latent_after["propensity"], latent_before["propensity"] * 0.5, check_exact=False
    )
    assert _meta(shifted)["shift"]["wins_lost"] == changed.sum()


def test_the_shifts_listed_are_the_ones_accepted() -> None:
    assert SHIFTS == get_args(ShiftKind) == ("none", "new_source", "bot_burst", "conversion_drop")
    for bad in (
        lambda: Shift(kind="drift"),  # type: ignore[arg-type]
        lambda: Shift(kind="bot_burst", share=0.0),
        lambda: Shift(kind="conversion_drop", factor=1.0),
    ):
        with pytest.raises(ConfigError):
            bad()


def test_bad_lengths_are_refused(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="weeks"):
        simulate_period(tmp_path / "p", DEMO, weeks=0)
    with pytest.raises(ConfigError, match="n_leads"):
        simulate_period(tmp_path / "p", DEMO, n_leads=0)
    assert not (tmp_path / "p").exists()


# --- the schedule -------------------------------------------------------------------------------
def test_parse_ages() -> None:
    assert parse_ages("0, 30,7") == (0, 7, 30)
    assert parse_ages("weekly", offsets=[0, 7, 30, 60]) == (0, 7, 14, 21, 28, 35, 42, 49, 56)
    for bad in ("", "a,b", "-7"):
        with pytest.raises(ConfigError):
            parse_ages(bad)


def test_schedule_keeps_open_leads_between_creation_and_the_end() -> None:
    import numpy as np

    day = 86_400
    created = np.array([0, 10 * day, 50 * day])
    closed = np.array([np.inf, 20 * day, np.inf])
    lead, as_of = scoring_schedule(created, closed, ages=(0, 7, 30), end_s=60 * day)
    pairs = list(zip(lead.tolist(), (as_of // day).tolist(), strict=True))
    assert pairs == [(0, 0), (0, 7), (1, 10), (1, 17), (0, 30), (2, 50), (2, 57)]


# --- the replay ---------------------------------------------------------------------------------
class FakeService:
    """Answers /readyz, /v1/score/batch and /v1/outcomes as the service would, and records
    every request; refuses future times, as_of before creation, events after as_of (which the
    CRM could not know yet) and a lead twice in one batch."""

    def __init__(self, *, outcomes: bool = True, fail: Callable[[int], int | None] | None = None):
        self.scored: list[tuple[str, str]] = []
        self.posted: list[dict[str, Any]] = []
        self.clock = ""  # the latest as_of sent: the replay's simulated time
        # outcomes posted before their time, with how many scorings had been sent then
        self.early: list[tuple[int, dict[str, Any]]] = []
        self.outcomes = outcomes
        self.fail = fail
        self.calls = 0
        self.keys: list[str | None] = []

    def __call__(self, request: httpx.Request) -> httpx.Response:
        if request.url.path == "/readyz":
            return httpx.Response(200, json={"status": "ready"})
        self.calls += 1
        self.keys.append(request.headers.get("x-api-key"))
        status = self.fail(self.calls) if self.fail else None
        if status:
            return httpx.Response(status, json={"detail": [{"msg": "refused"}]})
        body = json.loads(request.content)
        now = datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
        if request.url.path == "/v1/score/batch":
            ids = [lead["lead_id"] for lead in body["leads"]]
            assert len(ids) == len(set(ids)), "a lead twice in one batch"
            for lead in body["leads"]:
                assert lead["created_at"] <= lead["as_of"] <= now
                assert all(e["ts"] < lead["as_of"] for e in lead["events"])
                self.scored.append((lead["lead_id"], lead["as_of"]))
                self.clock = max(self.clock, lead["as_of"])
            results = [{"lead_id": i, "stage": "MQL", "warnings": []} for i in ids]
            return httpx.Response(200, json={"results": results})
        if request.url.path == "/v1/outcomes":
            if not self.outcomes:
                return httpx.Response(404, json={"detail": "Not Found"})
            for item in body["outcomes"]:
                assert item["ts"] <= now
                if item["ts"] > self.clock:
                    self.early.append((len(self.scored), item))
                self.posted.append(item)
            return httpx.Response(200, json={"stored": len(body["outcomes"])})
        return httpx.Response(404)


def _replay(folder: Path, fake: FakeService, **kwargs: Any) -> Any:
    options: dict[str, Any] = {"api_key": "k", "rate": 10_000.0, "batch_size": 50} | kwargs
    return replay(folder, url="http://simulated", transport=httpx.MockTransport(fake), **options)


def test_replay_scores_each_lead_at_each_age_and_posts_outcomes_once_due(
    periods: dict[str, Path],
) -> None:
    folder = periods["none"]
    fake = FakeService()
    summary = _replay(folder, fake, outcome_key="o")
    leads = _read(folder, "leads").set_index("lead_id")
    outcomes = _read(folder, "outcomes")
    assert summary.errors == 0 and summary.requests == fake.calls
    assert summary.scorings == summary.scorings_planned == len(fake.scored)
    assert len(set(fake.scored)) == len(fake.scored)  # once per scheduled scoring
    # the mapping: whole weeks, ending at most a week before today, never in the future
    offset = timedelta(days=summary.offset_days)
    assert summary.offset_days % 7 == 0
    end = pd.Timestamp(summary.end)
    today = pd.Timestamp(datetime.now(UTC).date(), tz="UTC")
    assert today - pd.Timedelta(days=7) < end <= today
    # each lead at creation and at 7, 30 and 60 days while open and before the end
    closing = outcomes[outcomes["stage"].isin(["won", "lost"])]
    closed = closing.groupby("lead_id")["ts"].min().dt.floor("s")
    period_end = pd.Timestamp(_meta(folder)["end"])
    expected = set()
    for lead_id, created in leads["created_at"].items():
        for age in (0, 7, 30, 60):
            at = created.floor("s") + pd.Timedelta(days=age)
            if at < period_end and (lead_id not in closed or at < closed[lead_id]):
                expected.add((lead_id, (at + offset).strftime("%Y-%m-%dT%H:%M:%SZ")))
    assert set(fake.scored) == expected
    assert summary.leads == len(leads)
    # every outcome due, once, none before the replay's clock reached it; the last ones once
    # every scoring is done (the clock is then at the period's end)
    assert all(n == len(fake.scored) for n, _ in fake.early)
    assert summary.outcomes_posted == summary.outcomes_due == len(outcomes) == len(fake.posted)
    sent = {(o["lead_id"], o["stage"], o["ts"]) for o in fake.posted}
    shifted = outcomes["ts"].dt.floor("s") + offset
    assert sent == set(
        zip(
            outcomes["lead_id"],
            outcomes["stage"],
            shifted.dt.strftime("%Y-%m-%dT%H:%M:%SZ"),
            strict=True,
        )
    )
    rejected = [o for o in fake.posted if o["stage"] == "sql_rejected"]
    assert rejected and all(o["reason"] for o in rejected)
    assert all("reason" not in o for o in fake.posted if o["stage"] != "sql_rejected")
    assert set(fake.keys) == {"k", "o"}
    assert json.loads((folder / "replay" / "replay.json").read_text())["scorings"] == len(
        fake.scored
    )


def test_replay_ends_before_the_time_asked_and_refuses_a_future_one(
    periods: dict[str, Path],
) -> None:
    until = datetime(2026, 3, 4, 15, tzinfo=UTC)
    summary = _replay(periods["none"], FakeService(), until=until)
    end = pd.Timestamp(summary.end)
    simulated_end = pd.Timestamp(_meta(periods["none"])["end"])
    assert until - timedelta(days=7) < end <= until
    assert end.day_name() == simulated_end.day_name()  # whole weeks: the weekdays kept
    with pytest.raises(ConfigError, match="past"):
        _replay(periods["none"], FakeService(), until=datetime.now(UTC) + timedelta(hours=1))


def test_replay_without_an_outcomes_endpoint_writes_them_to_a_file(
    periods: dict[str, Path],
) -> None:
    folder = periods["new_source"]
    fake = FakeService(outcomes=False)
    summary = _replay(folder, fake, batch_size=200)
    assert summary.errors == 0 and not summary.outcomes_endpoint and summary.outcomes_posted == 0
    assert summary.scorings == summary.scorings_planned > 0
    written = pd.read_parquet(summary.outcomes_file)
    original = _read(folder, "outcomes").sort_values(["ts", "lead_id"], kind="stable")
    assert len(written) == len(original) == summary.outcomes_due
    moved = written["ts"].reset_index(drop=True) - original["ts"].dt.floor("s").reset_index(
        drop=True
    )
    assert (moved == pd.Timedelta(days=summary.offset_days)).all()
    assert (written["ts"] < pd.Timestamp(datetime.now(UTC))).all()
    assert summary.warnings == 0  # the fake reports none; the real service flags the source


def test_replay_counts_a_refused_batch_and_goes_on(periods: dict[str, Path]) -> None:
    fake = FakeService(fail=lambda call: 422 if call == 1 else None)  # the first scoring
    summary = _replay(periods["none"], fake)
    assert summary.errors == 1
    assert 0 < summary.scorings < summary.scorings_planned


def test_replay_stops_on_a_refused_key_or_a_failing_service(periods: dict[str, Path]) -> None:
    with pytest.raises(ReplayError, match="refused the key"):
        _replay(periods["none"], FakeService(fail=lambda call: 401))
    fake = FakeService(fail=lambda call: 500)
    with pytest.raises(ReplayError, match="in a row"):
        _replay(periods["none"], fake)
    assert fake.calls == 5


def test_replay_needs_a_simulated_period(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match=r"period\.json"):
        replay(tmp_path, url="http://simulated", api_key="k")


# --- the command --------------------------------------------------------------------------------
def test_cli_writes_the_period_and_says_what_was_shifted(tmp_path: Path) -> None:
    params = tmp_path / "params.yaml"
    params.write_text(yaml.safe_dump({"generate": DEMO.model_dump()}))
    out = tmp_path / "production"
    args = ["simulate", "--out", str(out), "--weeks", "2", "--params", str(params)]
    result = CliRunner().invoke(app, [*args, "--shift", "bot_burst", "--share", "0.2"])
    assert result.exit_code == 0, result.output
    assert "shift bot_burst: bots hit 20% of the leads" in result.output
    assert {p.name for p in out.iterdir()} == {f"{n}.parquet" for n in FILES} | {"period.json"}
    assert _meta(out)["shift"]["kind"] == "bot_burst"
    refused = CliRunner().invoke(app, [*args, "--shift", "drift"])
    assert refused.exit_code != 0
