"""The score log's cost: the one-lead p50 with the log on against off; the batch route's rate.

Not a test. Two services run the working tree at once on the same registered model, one with the
score log on (written to a temp folder every second, as by default), one with it off
(``PREDICTIVE_SCORING_LOG_ENABLED=false``). They are timed in interleaved rounds that alternate
which goes first, as ``bench_ab.py`` does, with ``http.client`` and ``requests``; the difference
of the p50s (on - off) is the log's cost on a one-lead request, printed pooled and per round.

Then the batch route: one client sends 1,000-lead batches to each service in turn for
``--batch-seconds`` each (reasons on, as by default). Throughput is leads scored per second on one
worker, with the log on and off. The log must keep up: after shutdown every lead the log-on
service scored is in the log (counted with DuckDB) and ``/metrics`` shows no drop. Last, the
writer alone in process: :func:`scorelog.score_records` + ``records.write_part`` on the same
leads, in records per second.

    python benchmarks/bench_scorelog.py [--rounds 8] [--per-round 400] [--batch-seconds 20]
"""

from __future__ import annotations

import argparse
import contextlib
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import orjson
import requests as requests_lib

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _common import (
    REPO,
    Post,
    demo_requests,
    free_port,
    private_tracking_store,
    server,
    service_env,
    session_post,
    stdlib_post,
    time_posts,
    uvicorn_cmd,
    write_result,
)

BENCH = "scorelog"
API_KEY = "bench-key"
HEADERS = {"X-API-Key": API_KEY, "Content-Type": "application/json"}
WARM = 50
BATCH = 1_000


def _service(
    port: int, tracking: str, log_dir: Path | None, log: Path
) -> contextlib.AbstractContextManager[None]:
    env = service_env(api_key=API_KEY, tracking_uri=tracking)
    if log_dir is None:
        env["PREDICTIVE_SCORING_LOG_ENABLED"] = "false"
    else:
        env["PREDICTIVE_SCORING_LOG_ENABLED"] = "true"
        env["PREDICTIVE_SCORING_LOG_DIR"] = str(log_dir)
    health = f"http://127.0.0.1:{port}/readyz"
    return server(uvicorn_cmd(port), health_url=health, env=env, log=log)


def _metric(base: str, name: str) -> float:
    text = requests_lib.get(f"{base}/metrics", timeout=30).text
    return sum(
        float(line.rsplit(" ", 1)[1]) for line in text.splitlines() if line.startswith(name)
    )


def _batch_rate(post: Post, url: str, body: bytes, seconds: float) -> tuple[float, int]:
    """Leads per second through the batch route for about ``seconds``; and the leads sent."""
    post(url, body, HEADERS)  # warm
    n, start = 0, time.perf_counter()
    while time.perf_counter() - start < seconds:
        status, _ = post(url, body, HEADERS)
        if status != 200:
            raise RuntimeError(f"{url}: HTTP {status}")
        n += BATCH
    return n / (time.perf_counter() - start), n + BATCH


def _writer_rate(bodies: list[dict[str, object]], store: Path, tracking: str) -> float:
    """Records per second that the writer builds and writes, in process, 10 parts of 1,000."""
    from predictive_scoring.registry import load_registered_scorer
    from predictive_scoring.scorelog import ScoredBatch, ScoreLog
    from predictive_scoring.scoring import FRAME_LIMITS
    from predictive_scoring.serve.decode import decode_leads

    scorer = load_registered_scorer("lead-scoring", "champion", tracking_uri=tracking)
    raw = decode_leads(orjson.dumps({"leads": bodies}), batch=True)
    admitted = scorer.admit(raw, now=int(time.time()), limits=FRAME_LIMITS)
    results, X = scorer.score_admitted_with_features(admitted)
    lineage = scorer.lineage
    one_lead = [
        ScoredBatch.of(
            results[i : i + 1],
            X[i : i + 1],
            feature_names=tuple(scorer.feature_names),
            as_of=admitted.batch.as_of[i : i + 1],
            source="api",
            lineage=lineage,
            scored_at=time.time(),
        )
        for i in range(len(results))
    ]
    log = ScoreLog(store, flush_seconds=3600, max_rows=10**7)
    start = time.perf_counter()
    for _ in range(10):  # a part per second's worth of one-lead requests, as the service writes
        for batch in one_lead:
            log.submit(batch)
        log.flush()
    return log.written / (time.perf_counter() - start)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--rounds", type=int, default=8)
    parser.add_argument("--per-round", type=int, default=400, help="requests per side and client")
    parser.add_argument("--batch-seconds", type=float, default=20.0)
    args = parser.parse_args()
    from predictive_scoring.scorelog import read_scores

    tracking = private_tracking_store()
    one_bodies = demo_requests(200)
    bodies = [orjson.dumps(r) for r in one_bodies]
    batch_body = orjson.dumps({"leads": demo_requests(BATCH, seed=1)})
    logs = REPO / "benchmarks" / "results"
    logs.mkdir(parents=True, exist_ok=True)
    session = requests_lib.Session()
    clients: dict[str, Callable[[], Post]] = {
        "http.client": stdlib_post,
        "requests": lambda: session_post(session),
    }
    samples: dict[tuple[str, str], list[float]] = {}
    per_round: dict[str, list[float]] = {name: [] for name in clients}
    ports = {"off": free_port(), "on": free_port()}
    rates: dict[str, float] = {}
    with tempfile.TemporaryDirectory(prefix="bench-scorelog-") as tmp:
        store = Path(tmp) / "logs"
        scored_by_on = 0
        with (
            _service(ports["off"], tracking, None, logs / "scorelog-off.log"),
            _service(ports["on"], tracking, store, logs / "scorelog-on.log"),
        ):
            for r in range(args.rounds):
                order = ("off", "on") if r % 2 == 0 else ("on", "off")
                medians: dict[tuple[str, str], float] = {}
                for side in order:
                    url = f"http://127.0.0.1:{ports[side]}/v1/score"
                    for name, client in clients.items():
                        got = time_posts(
                            client(), url, bodies, HEADERS, n=args.per_round, warm=WARM
                        )
                        samples.setdefault((side, name), []).extend(got)
                        medians[side, name] = statistics.median(got)
                        if side == "on":
                            scored_by_on += args.per_round + WARM
                for name in clients:
                    per_round[name].append((medians["on", name] - medians["off", name]) * 1e3)
                print(f"round {r + 1} of {args.rounds} done", flush=True)
            for side in ("off", "on", "off", "on"):  # twice each, alternating
                url = f"http://127.0.0.1:{ports[side]}/v1/score/batch"
                rate, sent = _batch_rate(stdlib_post(), url, batch_body, args.batch_seconds / 2)
                rates[side] = rates.get(side, 0.0) + rate / 2
                if side == "on":
                    scored_by_on += sent
            base_on = f"http://127.0.0.1:{ports['on']}"
            dropped = _metric(base_on, "predictive_scoring_score_log_dropped_total")
        logged = len(read_scores(store, columns=["lead_id"]))
        parts = len(list(store.glob("scores/*/*.parquet")))
        writer = _writer_rate(one_bodies * 5, Path(tmp) / "writer", tracking)

    print("\nscore log on vs off, one lead per request, p50 in ms")
    for name in clients:
        off_ms = statistics.median(samples["off", name]) * 1e3
        on_ms = statistics.median(samples["on", name]) * 1e3
        rounds = per_round[name]
        print(
            f"{name:12} off {off_ms:.3f}  on {on_ms:.3f}  on-off {on_ms - off_ms:+.3f} ms"
            f"  per round {' '.join(f'{x:+.3f}' for x in rounds)}"
            f"  (median of rounds {statistics.median(rounds):+.3f})"
        )
        write_result(
            BENCH,
            f"one lead, {name}",
            off_p50_ms=round(off_ms, 4),
            on_p50_ms=round(on_ms, 4),
            on_minus_off_ms=round(on_ms - off_ms, 4),
            per_round_ms=[round(x, 4) for x in rounds],
        )
    print(
        f"\nbatch route, {BATCH} leads per request, one worker: log off {rates['off']:,.0f} "
        f"leads/s, log on {rates['on']:,.0f} leads/s ({rates['on'] / rates['off']:.3f}x)"
    )
    print(
        f"log-on service: {scored_by_on:,} leads scored, {logged:,} logged in {parts} parts, "
        f"{dropped:.0f} dropped"
    )
    print(f"writer alone (build + write, parts of 1,000 one-lead items): {writer:,.0f} records/s")
    write_result(
        BENCH,
        "batch route, 1,000 leads",
        off_leads_per_s=round(rates["off"]),
        on_leads_per_s=round(rates["on"]),
        scored=scored_by_on,
        logged=logged,
        dropped=dropped,
        parts=parts,
        writer_records_per_s=round(writer),
    )
    if logged != scored_by_on or dropped:
        print("the log lost records", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
