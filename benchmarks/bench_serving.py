"""Serving latency: our service vs ``mlflow models serve`` vs an in-process Scorer.score call.

Not a test. Both servers load the same registered model (``models:/lead-scoring@champion`` in the
project's MLflow store), run as real subprocesses with one worker on 127.0.0.1, and are asked for
the same demo leads (about 50 events each) by one client in sequence over one keep-alive
connection, after a warm-up. Before any timing both servers' probabilities are checked against the
in-process scorer to 1e-9. Reports p50/p99 and ratios for one lead per request and for 1,000 leads
per request.

Both servers run side by side for the whole run and are timed in interleaved rounds
(``--rounds``, default 5: each round times our service, then mlflow serve, for every case and
client), so a slow spell of the host lands on both sides of a ratio; the ratio of each round is
printed next to the pooled one, which shows how much the run itself is worth.

Every case is timed with three clients, each against both servers: the standard library's
``http.client`` (the thinnest Python client: its own cost per request is a few tens of
microseconds), ``httpx`` (adds about 0.5 ms per request on this machine) and ``requests`` (the
most common Python client, about 1 ms). The client's cost lands in every latency, on the same
2 cores, so it lowers the ratio of a fast server; the table shows all three rather than pick one.

    python benchmarks/bench_serving.py [--single 2000] [--single-mlflow 500] [--batches 15]
        [--rounds 5]
"""

from __future__ import annotations

import argparse
import contextlib
import functools
import gc
import itertools
import os
import statistics
import sys
import time
from pathlib import Path
from typing import Any

import httpx
import orjson
import requests as requests_lib

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _common import (
    REPO,
    demo_requests,
    free_port,
    httpx_post,
    lead_inputs,
    machine_info,
    mlflow_body,
    percentiles,
    print_table,
    private_tracking_store,
    server,
    service_env,
    session_post,
    stdlib_post,
    time_posts,
    uvicorn_cmd,
    write_result,
)

BENCH = "serving"
API_KEY = "bench-key"
TOLERANCE = 1e-9


def _post(client: httpx.Client, url: str, body: bytes, headers: dict[str, str]) -> Any:
    r = client.post(url, content=body, headers=headers)
    if r.status_code != 200:
        raise RuntimeError(f"{url}: HTTP {r.status_code}: {r.text[:500]}")
    return orjson.loads(r.content)


def _share(n: int, r: int, rounds: int) -> int:
    """Round ``r``'s part of ``n`` timed requests (the parts add up to ``n``, each at least 1)."""
    return max(1, n // rounds + (1 if r < n % rounds else 0))


def _time_calls(fn: Any, *, n: int, warm: int) -> list[float]:
    for _ in range(warm):
        fn()
    samples: list[float] = []
    for _ in range(n):
        start = time.perf_counter()
        fn()
        samples.append(time.perf_counter() - start)
    return samples


def _check(name: str, got: list[float], want: list[float]) -> float:
    worst = max(abs(a - b) for a, b in zip(got, want, strict=True))
    if worst > TOLERANCE:
        raise AssertionError(f"{name}: probabilities differ from the in-process scorer by {worst}")
    return worst


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--single", type=int, default=2000, help="timed one-lead requests (ours)")
    parser.add_argument("--single-mlflow", type=int, default=500, help="timed one-lead (mlflow)")
    parser.add_argument("--batches", type=int, default=15, help="timed 1,000-lead requests")
    parser.add_argument("--batch-size", type=int, default=1000)
    parser.add_argument(
        "--rounds", type=int, default=5, help="interleaved rounds (ours, mlflow serve, ...)"
    )
    parser.add_argument("--skip-mlflow", action="store_true")
    args = parser.parse_args()

    from predictive_scoring.registry import load_registered_scorer

    tracking = private_tracking_store()
    os.environ["MLFLOW_TRACKING_URI"] = tracking
    scorer = load_registered_scorer("lead-scoring", "champion", root=REPO)
    requests = demo_requests(max(args.batch_size, 200))
    leads = lead_inputs(requests)
    singles = requests[:200]
    batch = requests[: args.batch_size]
    want_single = [r.probability for r in scorer.score(leads[:200])]
    want_batch = [r.probability for r in scorer.score(leads[: args.batch_size])]
    print(f"machine: {machine_info()}")
    print(f"load average at start: {os.getloadavg()}")
    print(
        f"model: lead-scoring v{scorer.version}; {len(singles)} distinct single leads, "
        f"batch of {len(batch)}; mean events/lead "
        f"{sum(len(r['events']) for r in batch) / len(batch):.1f}"
    )

    logs = REPO / "benchmarks" / "results"
    logs.mkdir(parents=True, exist_ok=True)
    ours_port, mlflow_port = free_port(), free_port()
    ours_cmd = uvicorn_cmd(ours_port)
    env = service_env(api_key=API_KEY, tracking_uri=tracking)
    env["PREDICTIVE_SCORING_MAX_BATCH"] = str(max(args.batch_size, 1000))
    mlflow_env = {**env, "MLFLOW_TRACKING_URI": tracking}
    mlflow_cmd = [
        str(Path(sys.executable).parent / "mlflow"),
        "models",
        "serve",
        "-m",
        "models:/lead-scoring@champion",
        "--env-manager",
        "local",
        "-h",
        "127.0.0.1",
        "-p",
        str(mlflow_port),
        "-w",
        "1",
    ]
    ours_url = f"http://127.0.0.1:{ours_port}"
    mlflow_url = f"http://127.0.0.1:{mlflow_port}"
    auth = {"X-API-Key": API_KEY, "Content-Type": "application/json"}
    json_h = {"Content-Type": "application/json"}
    results: dict[str, dict[str, Any]] = {}

    single_bodies = [orjson.dumps(r) for r in singles]
    batch_body = orjson.dumps({"leads": batch})
    mlflow_single = [orjson.dumps(mlflow_body([r])) for r in singles]
    mlflow_batch = orjson.dumps(mlflow_body(batch))

    # This process's setup objects frozen, as the service freezes its heap after a model load:
    # the floor then pays the same collections, and the client's pauses stay out of every case.
    gc.collect()
    gc.freeze()
    # The floor: the scorer in this process, on prebuilt LeadInput records.
    cycle = itertools.cycle(leads[:200])
    results["floor_single"] = percentiles(
        _time_calls(lambda: scorer.score([next(cycle)]), n=args.single, warm=200)
    )
    results["floor_batch"] = percentiles(
        _time_calls(lambda: scorer.score(leads[: args.batch_size]), n=args.batches, warm=2)
    )

    # Both servers stay up for the whole run and are timed in interleaved rounds (ours, then
    # mlflow serve, case by case and client by client), so a slow minute on this shared host lands
    # on both sides of a ratio, and the spread of the per-round ratios shows the run's own noise.
    rounds = max(1, args.rounds)
    samples: dict[str, list[float]] = {}
    round_ratios: dict[str, list[float]] = {}
    with contextlib.ExitStack() as stack:
        stack.enter_context(
            server(ours_cmd, health_url=f"{ours_url}/readyz", env=env, log=logs / "ours.log")
        )
        if not args.skip_mlflow:
            stack.enter_context(
                server(
                    mlflow_cmd,
                    health_url=f"{mlflow_url}/ping",
                    env=mlflow_env,
                    log=logs / "mlflow.log",
                )
            )
        client = stack.enter_context(httpx.Client(timeout=300.0))
        session = stack.enter_context(requests_lib.Session())
        timers: tuple[tuple[str, Any], ...] = (
            ("", lambda *a, **k: time_posts(stdlib_post(), *a, **k)),
            ("_httpx", functools.partial(time_posts, httpx_post(client))),
            ("_requests", functools.partial(time_posts, session_post(session))),
        )

        got = [
            _post(client, f"{ours_url}/v1/score", b, auth)["probability"] for b in single_bodies
        ]
        diff_s = _check("ours single", got, want_single)
        got_b = [
            x["probability"]
            for x in _post(client, f"{ours_url}/v1/score/batch", batch_body, auth)["results"]
        ]
        diff_b = _check("ours batch", got_b, want_batch)
        print(f"ours agrees with the in-process scorer: max |dp| {max(diff_s, diff_b):.2e}")
        if not args.skip_mlflow:
            got = [
                _post(client, f"{mlflow_url}/invocations", b, json_h)["predictions"][0][
                    "probability"
                ]
                for b in mlflow_single
            ]
            diff_s = _check("mlflow single", got, want_single)
            preds = _post(client, f"{mlflow_url}/invocations", mlflow_batch, json_h)
            diff_b = _check(
                "mlflow batch", [p["probability"] for p in preds["predictions"]], want_batch
            )
            print(f"mlflow agrees with the in-process scorer: max |dp| {max(diff_s, diff_b):.2e}")

        # (kind, ours url, ours bodies, mlflow bodies, timed requests ours / mlflow, warm-up)
        cases = (
            (
                "single",
                "/v1/score",
                single_bodies,
                mlflow_single,
                args.single,
                args.single_mlflow,
                300,
            ),
            (
                "batch",
                "/v1/score/batch",
                [batch_body],
                [mlflow_batch],
                args.batches,
                max(3, args.batches // 2),
                2,
            ),
        )
        for r in range(rounds):
            for kind, path, bodies, m_bodies, n_ours, n_mlflow, warm in cases:
                warm_r = warm if r == 0 else max(1, warm // 10)
                for suffix, timer in timers:
                    ours = timer(
                        f"{ours_url}{path}", bodies, auth, n=_share(n_ours, r, rounds), warm=warm_r
                    )
                    samples.setdefault(f"ours_{kind}{suffix}", []).extend(ours)
                    if args.skip_mlflow:
                        continue
                    theirs = timer(
                        f"{mlflow_url}/invocations",
                        m_bodies,
                        json_h,
                        n=_share(n_mlflow, r, rounds),
                        warm=warm_r,
                    )
                    samples.setdefault(f"mlflow_{kind}{suffix}", []).extend(theirs)
                    round_ratios.setdefault(f"{kind}{suffix}", []).append(
                        statistics.median(theirs) / statistics.median(ours)
                    )
            print(f"round {r + 1} of {rounds} done; load average {os.getloadavg()[0]:.2f}")
        for key, values in samples.items():
            results[key] = percentiles(values)

        # Probability only (?reasons=false): no SHAP. Reported on its own rows, never in the
        # like-for-like ratios, since mlflow serve computes the reasons.
        got_nr = [
            x["probability"]
            for x in _post(client, f"{ours_url}/v1/score/batch?reasons=false", batch_body, auth)[
                "results"
            ]
        ]
        _check("ours batch, reasons=false", got_nr, want_batch)
        results["ours_single_noreasons"] = percentiles(
            time_posts(
                stdlib_post(),
                f"{ours_url}/v1/score?reasons=false",
                single_bodies,
                auth,
                n=args.single,
                warm=300,
            )
        )
        results["ours_batch_noreasons"] = percentiles(
            time_posts(
                stdlib_post(),
                f"{ours_url}/v1/score/batch?reasons=false",
                [batch_body],
                auth,
                n=args.batches,
                warm=2,
            )
        )

    servers = {
        "ours": "our service",
        "mlflow": "mlflow models serve",
        "floor": "in-process Scorer.score",
        "ours_noreasons": "our service, ?reasons=false (not like-for-like)",
    }
    rows = []
    for kind in ("single", "batch"):
        case = "single (1 lead)" if kind == "single" else f"batch ({args.batch_size} leads)"
        for who, suffix, client_name in (
            ("ours", "", "http.client"),
            ("mlflow", "", "http.client"),
            ("ours", "_httpx", "httpx"),
            ("mlflow", "_httpx", "httpx"),
            ("ours", "_requests", "requests"),
            ("mlflow", "_requests", "requests"),
            ("floor", "", "(none)"),
            ("ours_noreasons", "", "http.client"),
        ):
            key = f"ours_{kind}_noreasons" if who == "ours_noreasons" else f"{who}_{kind}{suffix}"
            if key not in results:
                continue
            ours = results[f"ours_{kind}{suffix}"]["p50_ms"]
            row = {
                "case": case,
                "server": servers[who],
                "client": client_name,
                **results[key],
                "p50_vs_ours": round(results[key]["p50_ms"] / ours, 2),
            }
            rows.append(row)
            write_result(BENCH, key, **row)
    print_table(
        "latency per request (ms), one client in sequence; p50_vs_ours against our service "
        "with the same client",
        rows,
        ["case", "server", "client", "n", "p50_ms", "p99_ms", "mean_ms", "p50_vs_ours"],
    )
    for kind in ("single", "batch"):
        for suffix, client_name in (
            ("", "http.client"),
            ("_httpx", "httpx"),
            ("_requests", "requests"),
        ):
            ours = results[f"ours_{kind}{suffix}"]["p50_ms"]
            line = f"{kind}, {client_name}: ours p50 {ours:.3f} ms"
            if f"mlflow_{kind}{suffix}" in results:
                line += f"; mlflow/ours {results[f'mlflow_{kind}{suffix}']['p50_ms'] / ours:.1f}x"
            line += f"; ours/floor {ours / results[f'floor_{kind}']['p50_ms']:.2f}x"
            per_round = round_ratios.get(f"{kind}{suffix}", [])
            if per_round:
                line += (
                    f"; per round {' '.join(f'{x:.1f}' for x in per_round)}"
                    f" (min {min(per_round):.1f}x)"
                )
                write_result(
                    BENCH,
                    f"ratio_{kind}{suffix}",
                    case=kind,
                    client=client_name,
                    mlflow_over_ours_p50=round(
                        results[f"mlflow_{kind}{suffix}"]["p50_ms"] / ours, 2
                    ),
                    per_round=[round(x, 2) for x in per_round],
                )
            print(line)
    print(f"load average at end: {os.getloadavg()}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
