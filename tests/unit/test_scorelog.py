"""The score log: records built from the scorer's results and features, the queue, the writer,
its drop policy, and the file scorer and pyfunc writing to it; real Parquet parts in tmp_path."""

from __future__ import annotations

import dataclasses
import logging
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path
from typing import Any

import numpy as np
import orjson
import pandas as pd
import pyarrow.parquet as pq
import pytest
from tests.scorers import NOW, build_scorer, synthetic_leads
from typer.testing import CliRunner

from predictive_scoring import records
from predictive_scoring.cli import app as cli
from predictive_scoring.filescore import LINEAGE_COLUMNS, score_files
from predictive_scoring.ingress import Admitted
from predictive_scoring.registry import LOG_DIR_ENV, LeadScoringPyfunc
from predictive_scoring.scorelog import (
    ScoredBatch,
    ScoreLog,
    process_score_log,
    read_scores,
    score_records,
    scored_batch,
    write_scores,
)
from predictive_scoring.scoring import FRAME_LIMITS, Scorer
from predictive_scoring.serve.decode import decode_leads

SCORER = build_scorer(version="1", seed=0, rounds=20)
OTHER = build_scorer(version="2", seed=1, rounds=30)
PAYLOADS = synthetic_leads(30, seed=7)[0]


def _admit(payloads: list[dict[str, Any]], scorer: Scorer = SCORER) -> Admitted:
    raw = decode_leads(orjson.dumps({"leads": payloads}), batch=True)
    return scorer.admit(raw, now=NOW + 3_600, limits=FRAME_LIMITS)


def _batch(
    payloads: list[dict[str, Any]], *, scorer: Scorer = SCORER, source: str = "api"
) -> ScoredBatch:
    admitted = _admit(payloads, scorer)
    results, X = scorer.score_admitted_with_features(admitted)
    return scored_batch(scorer, admitted, results, X, source=source)


def _parts(store: Path) -> list[Path]:
    return sorted(store.glob("scores/*/*.parquet"))


def test_score_with_features_is_score_admitted_and_the_executors_matrix() -> None:
    admitted = _admit(PAYLOADS)
    results, X = SCORER.score_admitted_with_features(admitted)
    assert results == SCORER.score_admitted(admitted)
    np.testing.assert_array_equal(X, SCORER.executor.transform(admitted.batch))
    assert X.shape == (len(PAYLOADS), len(SCORER.feature_names)) and X.dtype == np.float64


def test_records_hold_results_lineage_and_the_features_as_served() -> None:
    admitted = _admit(PAYLOADS)
    results, X = SCORER.score_admitted_with_features(admitted)
    batch = scored_batch(SCORER, admitted, results, X, source="api", scored_at=NOW + 3_600.25)
    table = score_records([batch, _batch(PAYLOADS[:1])])
    features = [records.feature_column(n) for n in SCORER.feature_names]
    assert table.column_names == [*records.SCORE_COLUMNS, *features]
    assert table.schema.field("as_of").type == records.SCORE_COLUMNS["as_of"]
    frame = table.to_pandas()
    first = frame.iloc[: len(PAYLOADS)]
    assert first["lead_id"].tolist() == [r.lead_id for r in results]
    assert first["probability"].tolist() == [r.probability for r in results]
    assert first["stage"].tolist() == [r.stage for r in results]
    assert set(first["scored_at"]) == {pd.Timestamp(NOW + 3_600.25, unit="s", tz="UTC")}
    assert (first["as_of"] == pd.Timestamp(NOW, unit="s", tz="UTC")).all()  # the payloads' as_of
    for key, value in SCORER.lineage.items():
        assert (frame[key] == value).all(), key
    served = first[features].to_numpy(dtype=np.float64)  # nulls come back as NaN
    np.testing.assert_array_equal(served, X)
    assert table.column(features[0]).null_count == int(np.isnan(X[:, 0]).sum())
    assert len(frame) == len(PAYLOADS) + 1


def test_a_closed_log_has_written_everything_and_duckdb_reads_it(tmp_path: Path) -> None:
    log = ScoreLog(tmp_path, flush_seconds=30).start()
    for i in range(0, len(PAYLOADS), 7):  # one item per call, whatever its size
        assert log.submit(_batch(PAYLOADS[i : i + 7]))
    assert log.submit(_batch(PAYLOADS[:1], source="pyfunc"))
    log.close()
    assert (log.written, log.dropped) == (len(PAYLOADS) + 1, 0)
    got = read_scores(tmp_path)
    assert sorted(got["lead_id"]) == sorted([p["lead_id"] for p in PAYLOADS] + ["L0"])
    assert got.groupby("source").size().to_dict() == {"api": len(PAYLOADS), "pyfunc": 1}
    assert str(got["scored_at"].dtype) == "datetime64[us, UTC]"
    sql = read_scores(tmp_path, columns=["lead_id", "stage"], where="source = 'pyfunc'")
    assert sql.columns.tolist() == ["lead_id", "stage"] and sql["lead_id"].tolist() == ["L0"]
    assert not list(tmp_path.rglob(".*.tmp"))


def test_the_writer_flushes_without_being_closed(tmp_path: Path) -> None:
    log = ScoreLog(tmp_path, flush_seconds=0.05).start()
    try:
        log.submit(_batch(PAYLOADS[:3]))
        deadline = time.monotonic() + 30  # a wait for the thread, not a timing assertion
        while not _parts(tmp_path) and time.monotonic() < deadline:
            time.sleep(0.02)
        assert len(read_scores(tmp_path)) == 3
    finally:
        log.close()


@pytest.mark.slow
def test_a_killed_process_keeps_every_part_it_flushed(tmp_path: Path) -> None:
    """SIGKILL (no close, no atexit): what the writer flushed is whole and readable."""
    child = f"""
import sys, time
from pathlib import Path
sys.path.insert(0, {str(Path(__file__).resolve().parents[2])!r})
from tests.unit.test_scorelog import PAYLOADS, _batch
from predictive_scoring.scorelog import ScoreLog
log = ScoreLog({str(tmp_path)!r}, flush_seconds=0.05).start()
log.submit(_batch(PAYLOADS[:9]))
while log.written < 9:
    time.sleep(0.01)
print("flushed", flush=True)
while True:
    log.submit(_batch(PAYLOADS[9:10]))
    time.sleep(0.001)
"""
    proc = subprocess.Popen([sys.executable, "-c", child], stdout=subprocess.PIPE, text=True)
    try:
        assert proc.stdout is not None and proc.stdout.readline().strip() == "flushed"
        time.sleep(0.3)  # let it flush and write more, then kill it wherever it is
    finally:
        proc.kill()
        proc.wait()
        if proc.stdout:
            proc.stdout.close()
    logged = Counter(read_scores(tmp_path)["lead_id"])
    assert all(logged[p["lead_id"]] == 1 for p in PAYLOADS[:9]), logged
    for part in _parts(tmp_path):
        assert pq.read_table(part).num_rows > 0  # none half-written


def test_a_big_queue_is_written_early(tmp_path: Path) -> None:
    log = ScoreLog(tmp_path, flush_seconds=60, max_rows=1_000, flush_rows=10).start()
    try:
        log.submit(_batch(PAYLOADS[:12]))
        deadline = time.monotonic() + 30
        while not _parts(tmp_path) and time.monotonic() < deadline:
            time.sleep(0.02)
        assert len(read_scores(tmp_path)) == 12
    finally:
        log.close()


def test_an_fsspec_url_store_is_written_and_read_like_a_folder() -> None:
    """The replicas' shared store: an fsspec URL (fsspec's in-memory filesystem standing in
    for an object store), read back by DuckDB through the same filesystem."""
    import duckdb
    import fsspec

    memory = fsspec.filesystem("memory")
    store = "memory://score-log-test"
    try:
        with ScoreLog(store) as log:
            log.submit(_batch(PAYLOADS[:4]))
            log.submit(_batch(PAYLOADS[4:5]))
        con = duckdb.connect()
        con.register_filesystem(memory)
        got = read_scores(store, con=con)
        assert sorted(got["lead_id"]) == sorted(p["lead_id"] for p in PAYLOADS[:5])
        assert len(memory.glob("/score-log-test/scores/*/*.parquet")) == 1
    finally:
        memory.rm("/score-log-test", recursive=True)


def test_a_full_queue_drops_counts_and_warns_once(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.WARNING, logger="predictive_scoring.scorelog")
    drops: list[tuple[int, str]] = []
    log = ScoreLog(tmp_path, max_rows=10, on_drop=lambda n, why: drops.append((n, why)))
    assert log.submit(_batch(PAYLOADS[:8]))  # not started: nothing is written yet
    assert not log.submit(_batch(PAYLOADS[8:11]))  # 8 + 3 > 10: the whole call is dropped
    assert log.submit(_batch(PAYLOADS[11:13]))  # 10 fit
    for _ in range(5):
        assert not log.submit(_batch(PAYLOADS[:1]))
    assert drops == [(3, "queue_full")] + [(1, "queue_full")] * 5 and log.dropped == 8
    warned = [r for r in caplog.records if "dropped" in r.getMessage()]
    assert len(warned) == 1 and "queue_full 3" in warned[0].getMessage()
    log.close()
    assert log.written == 10 and len(read_scores(tmp_path)) == 10
    assert not log.submit(_batch(PAYLOADS[:2])) and drops[-1] == (2, "closed")


def test_a_write_error_is_counted_and_the_writer_goes_on(tmp_path: Path) -> None:
    blocked = tmp_path / "not-a-folder"
    blocked.write_text("a file where the store should be")
    drops: list[tuple[int, str]] = []
    log = ScoreLog(blocked, on_drop=lambda n, why: drops.append((n, why)))
    log.submit(_batch(PAYLOADS[:4]))
    assert log.flush() == 0 and drops == [(4, "write_error")]
    log.submit(_batch(PAYLOADS[:2]))
    log.close()
    assert drops == [(4, "write_error"), (2, "write_error")]


def test_two_models_write_their_own_parts_and_read_back_together(tmp_path: Path) -> None:
    assert OTHER.feature_names == SCORER.feature_names  # same definition, other model
    renamed = _batch(PAYLOADS[:2], scorer=OTHER)
    odd = dataclasses.replace(
        renamed, features=renamed.features[:, :3], feature_names=("a", "b", "c")
    )
    paths = write_scores(
        tmp_path, [_batch(PAYLOADS[:3]), odd, _batch(PAYLOADS[3:5], scorer=OTHER)]
    )
    assert len(paths) == 2 and all(pq.read_table(p).num_rows for p in paths)
    got = read_scores(tmp_path)
    assert len(got) == 7 and got.groupby("model_version").size().to_dict() == {"1": 3, "2": 4}
    assert got["f__a"].notna().sum() == 2
    with pytest.raises(ValueError, match="one feature list"):
        score_records([_batch(PAYLOADS[:1]), odd])


def test_an_empty_log_reads_as_no_rows_and_a_bad_batch_is_refused(tmp_path: Path) -> None:
    got = read_scores(tmp_path / "nothing-yet")
    assert got.empty and list(got.columns) == list(records.SCORE_COLUMNS)
    with pytest.raises(ValueError, match="source"):
        _batch(PAYLOADS[:1], source="batch")
    two = _batch(PAYLOADS[:2])
    with pytest.raises(ValueError, match="2 as_of"):
        dataclasses.replace(two, as_of=two.as_of[:1])
    with pytest.raises(ValueError, match="features"):
        dataclasses.replace(two, features=two.features[:1])


# --------------------------------------------------------------------------------------------
# The file scorer and the pyfunc


def _crm_files(folder: Path, payloads: list[dict[str, Any]]) -> tuple[Path, Path]:
    leads = pd.DataFrame(
        [
            {"lead_id": p["lead_id"], "created_at": p["created_at"], **p["attributes"]}
            for p in payloads
        ]
    )
    events = pd.DataFrame(
        [{"lead_id": p["lead_id"], **e} for p in payloads for e in p["events"]],
        columns=["lead_id", "event_type", "ts"],
    )
    leads.to_csv(folder / "leads.csv", index=False)
    events.to_csv(folder / "events.csv", index=False)
    return folder / "leads.csv", folder / "events.csv"


def test_the_file_scorer_logs_what_it_wrote_with_lineage_on_every_row(tmp_path: Path) -> None:
    leads, events = _crm_files(tmp_path, PAYLOADS)
    out, store = tmp_path / "scored.csv", tmp_path / "logs"
    score_files(
        scorer=SCORER,
        leads=leads,
        events=events,
        output=out,
        as_of="2023-11-14T23:00:00Z",
        log_store=store,
    )
    scored = pd.read_csv(out, dtype=str)
    lineage = SCORER.lineage
    for key in ("model_version", *LINEAGE_COLUMNS):
        assert set(scored[key]) == {lineage[key]}, key
    got = read_scores(store).set_index("lead_id").loc[scored["lead_id"]]
    assert set(got["source"]) == {"file"} and len(got) == len(PAYLOADS)
    assert np.allclose(got["probability"], scored["probability"].astype(float), rtol=0, atol=1e-12)
    assert set(got["as_of"]) == {pd.Timestamp("2023-11-14T23:00:00Z")}
    score_files(scorer=SCORER, leads=leads, events=events, output=out, log_store=None)
    assert len(read_scores(store)) == len(PAYLOADS)  # without a store, nothing more


def test_the_score_command_logs_unless_told_not_to(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    for name in ("PREDICTIVE_SCORING_LOG_DIR", "PREDICTIVE_SCORING_LOG_ENABLED"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.chdir(tmp_path)  # no params.yaml or .env here: the defaults
    bundle = SCORER.save(tmp_path / "bundle")
    leads, events = _crm_files(tmp_path, PAYLOADS[:5])
    args = ["score", "--leads", str(leads), "--events", str(events), "--bundle", str(bundle)]
    runner = CliRunner()
    done = runner.invoke(cli, [*args, "--output", "a.csv", "--log-dir", "crm-log"])
    assert done.exit_code == 0, done.output
    assert "score log: 5 leads added to crm-log" in done.output
    assert len(read_scores(tmp_path / "crm-log")) == 5
    done = runner.invoke(cli, [*args, "--output", "b.csv", "--log-dir", "crm-log", "--no-log"])
    assert done.exit_code == 0, done.output
    assert len(read_scores(tmp_path / "crm-log")) == 5 and "score log" not in done.output
    monkeypatch.setenv("PREDICTIVE_SCORING_LOG_ENABLED", "false")
    assert runner.invoke(cli, [*args, "--output", "c.csv"]).exit_code == 0
    assert not (tmp_path / "logs").exists()
    monkeypatch.setenv("PREDICTIVE_SCORING_LOG_ENABLED", "true")
    assert runner.invoke(cli, [*args, "--output", "d.csv"]).exit_code == 0
    assert len(read_scores(tmp_path / "logs")) == 5  # the default: logs/ where it runs


def test_the_pyfunc_logs_only_when_given_a_destination(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv(LOG_DIR_ENV, raising=False)
    model = LeadScoringPyfunc()
    model.scorer = SCORER
    frame = pd.DataFrame(
        [
            {
                "lead_id": p["lead_id"],
                "created_at": p["created_at"],
                "as_of": p["as_of"],
                "events": orjson.dumps(p["events"]).decode(),
                **p["attributes"],
            }
            for p in PAYLOADS[:6]
        ]
    )
    plain = model.predict(None, frame)
    assert not list(tmp_path.iterdir())
    by_params = model.predict(None, frame, params={"log_dir": str(tmp_path / "p")})
    monkeypatch.setenv(LOG_DIR_ENV, str(tmp_path / "e"))
    by_env = model.predict(None, frame)
    pd.testing.assert_frame_equal(plain, by_params)
    pd.testing.assert_frame_equal(plain, by_env)
    for store in (tmp_path / "p", tmp_path / "e"):
        process_score_log(store).close()  # what the process does at exit
        got = read_scores(store)
        assert set(got["source"]) == {"pyfunc"} and len(got) == 6
        assert got["probability"].tolist() == plain["probability"].tolist()
