"""Open-loop load on uvicorn over loopback: a fixed request rate for a fixed time.

Not a test. An asyncio generator with one aiohttp session (``--client httpx`` for
httpx.AsyncClient) sends ``--rate`` one-lead requests
per second for ``--seconds`` seconds, each scheduled at its fixed time whatever the earlier
responses did (open loop: a slow server makes latency grow instead of the rate fall). It is
bounded: at most rate x seconds requests, at most ``--max-inflight`` in flight (a request
whose slot is not free in time counts as an error, "dropped"), and it stops by itself. Latency is
measured from each request's scheduled time, so queueing in the client counts too.
The generator's own garbage-collection pauses are reported (``client_gc_max_ms``) and kept
short by freezing its heap before the run; ``max_at_s`` says when the slowest request was due.

One uvicorn worker unless ``--workers`` says otherwise. ``--swap-at S`` moves ``@champion`` to
another registered version S seconds into the run (in the benchmark's private copy of the
store) while the service polls for a new champion every second: the run then reports the
versions its responses carried, the switches between them (target: exactly one), and the p99
over the 2 s around the swap next to the whole run's.

    python benchmarks/bench_load.py [--rate 200] [--seconds 60] [--workers 2] [--client httpx]
                                    [--swap-at 30]
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import gc
import os
import sys
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path
from typing import Any

import aiohttp
import httpx
import numpy as np
import orjson

sys.path.insert(0, str(Path(__file__).resolve().parent))

import itertools

from _common import (
    demo_requests,
    free_port,
    machine_info,
    percentiles,
    print_table,
    private_tracking_store,
    server,
    service_env,
    uvicorn_cmd,
    write_result,
)

BENCH = "load"
API_KEY = "bench-key"
HOST = "127.0.0.1"  # loopback only


@contextlib.asynccontextmanager
async def _poster(
    kind: str, url: str, *, max_inflight: int
) -> AsyncIterator[Callable[[bytes], Awaitable[tuple[int, bytes]]]]:
    """``post(body) -> (status, body)`` over a keep-alive pool of ``max_inflight`` connections.

    aiohttp (the default) costs this process about a third of the CPU per request that
    httpx.AsyncClient does (0.8 vs 2.4 ms, ``client_cpu_ms_per_request``); on 2 shared cores
    the client's CPU is latency the server did not cause, so the cheaper client measures the
    server more closely. Errors raise :data:`_CLIENT_ERRORS`.
    """
    headers = {"X-API-Key": API_KEY, "Content-Type": "application/json"}
    if kind == "httpx":
        limits = httpx.Limits(max_connections=max_inflight, max_keepalive_connections=max_inflight)
        async with httpx.AsyncClient(timeout=10.0, limits=limits) as client:

            async def post_httpx(body: bytes) -> tuple[int, bytes]:
                r = await client.post(url, content=body, headers=headers)
                return r.status_code, r.content

            yield post_httpx
        return
    connector = aiohttp.TCPConnector(limit=max_inflight, force_close=False)
    timeout = aiohttp.ClientTimeout(total=10.0)
    async with aiohttp.ClientSession(connector=connector, timeout=timeout) as session:

        async def post_aiohttp(body: bytes) -> tuple[int, bytes]:
            async with session.post(url, data=body, headers=headers) as r:
                return r.status, await r.read()

        yield post_aiohttp


_CLIENT_ERRORS = (httpx.HTTPError, aiohttp.ClientError, asyncio.TimeoutError, OSError)


async def _drive(
    url: str,
    bodies: list[bytes],
    *,
    rate: float,
    seconds: float,
    max_inflight: int,
    client: str,
    swap: Callable[[], None] | None = None,
    swap_at: float | None = None,
) -> dict[str, Any]:
    total = int(rate * seconds)
    versions: list[tuple[float, bytes]] = []  # (scheduled offset, model version) per answer
    interval = 1.0 / rate
    latencies: list[float] = []
    offsets: list[float] = []  # each answered request's scheduled time since the start
    errors: dict[str, int] = {}
    slots = asyncio.Semaphore(max_inflight)

    def fail(kind: str) -> None:
        errors[kind] = errors.get(kind, 0) + 1

    async with _poster(client, url, max_inflight=max_inflight) as post:

        async def one(i: int, due: float) -> None:
            if slots.locked():
                fail("dropped (too many in flight)")
                return
            async with slots:
                try:
                    status, answer = await post(bodies[i % len(bodies)])
                    latencies.append(time.perf_counter() - due)
                    offsets.append(due - start)
                    if status != 200:
                        fail(f"HTTP {status}")
                    elif swap is not None:
                        # in the order the answers came: requests held up together may be
                        # answered out of the order they were due, yet by one model each
                        versions.append((time.perf_counter() - start, _version(answer)))
                except _CLIENT_ERRORS as exc:
                    fail(type(exc).__name__)

        # warm-up: a few sequential requests, not counted
        for i in range(50):
            await post(bodies[i % len(bodies)])
        # Finished tasks are let go and the setup's objects (pandas, the demo data) frozen, so
        # the generator's own gen-2 collections stay short: they would count as latency.
        tasks: set[asyncio.Task[None]] = set()
        gc.collect()
        gc.freeze()
        pauses = _ClientPauses()
        cpu_start = time.process_time()
        start = time.perf_counter()
        swapping = None
        if swap is not None and swap_at is not None:
            swapping = asyncio.get_running_loop().call_later(
                swap_at, lambda: asyncio.get_running_loop().run_in_executor(None, swap)
            )
        for i in range(total):
            due = start + i * interval
            delay = due - time.perf_counter()
            if delay > 0:
                await asyncio.sleep(delay)
            task = asyncio.create_task(one(i, due))
            tasks.add(task)
            task.add_done_callback(tasks.discard)
        sent_s = time.perf_counter() - start
        await asyncio.wait_for(asyncio.gather(*tasks), timeout=30.0)
        done_s = time.perf_counter() - start
        cpu_s = time.process_time() - cpu_start
        pauses.stop()
        if swapping is not None:
            swapping.cancel()
    worst = int(np.argmax(latencies)) if latencies else 0
    swap_row: dict[str, Any] = {}
    if swap is not None and swap_at is not None:
        ordered = [v for _, v in sorted(versions)]
        near = [
            lat for lat, off in zip(latencies, offsets, strict=True) if abs(off - swap_at) <= 1
        ]
        swap_row = {
            "versions": sorted({v.decode() for v in ordered}),
            "version_switches": sum(a != b for a, b in itertools.pairwise(ordered)),
            "p99_ms_around_swap": round(float(np.percentile(near, 99)) * 1e3, 2) if near else None,
        }
    return {
        "client": client,
        "requests": total,
        "ok": len(latencies) - sum(v for k, v in errors.items() if k.startswith("HTTP")),
        "errors": sum(errors.values()),
        "error_kinds": errors,
        "achieved_rps": round(total / sent_s, 1),
        "completed_rps": round(len(latencies) / done_s, 1),
        **percentiles(latencies),
        "max_at_s": round(offsets[worst], 2) if offsets else None,
        "client_gc_max_ms": round(pauses.longest * 1e3, 1),
        "client_gc_total_ms": round(pauses.total * 1e3, 1),
        # The generator's own CPU per request, taken from the same 2 cores as the server's.
        "client_cpu_ms_per_request": round(cpu_s * 1e3 / max(total, 1), 3),
        **swap_row,
    }


def _version(answer: bytes) -> bytes:
    """The model version a score response names (``"version":"7"`` in its model object)."""
    at = answer.rfind(b'"version":"')
    return answer[at + 11 : answer.index(b'"', at + 11)] if at >= 0 else b"?"


def _champion_swapper(tracking: str) -> Callable[[], None]:
    """Moves ``@champion`` to another version of the benchmark's private store when called."""
    from mlflow import MlflowClient

    client = MlflowClient(tracking_uri=tracking)
    current = client.get_model_version_by_alias("lead-scoring", "champion").version
    others = [
        v.version
        for v in client.search_model_versions("name='lead-scoring'")
        if v.version != current
    ]
    if not others:
        raise SystemExit("--swap-at needs two registered versions: run `dvc repro` twice")
    target = max(others, key=int)

    def swap() -> None:
        client.set_registered_model_alias("lead-scoring", "champion", target)
        print(f"@champion moved from version {current} to {target}", flush=True)

    return swap


class _ClientPauses:
    """The load generator's own garbage-collection pauses: latency the server did not cause."""

    def __init__(self) -> None:
        self.longest = self.total = 0.0
        self._began = 0.0
        gc.callbacks.append(self._note)

    def _note(self, phase: str, info: dict[str, Any]) -> None:
        if phase == "start":
            self._began = time.perf_counter()
        else:
            took = time.perf_counter() - self._began
            self.longest, self.total = max(self.longest, took), self.total + took

    def stop(self) -> None:
        gc.callbacks.remove(self._note)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--rate", type=float, default=200.0)
    parser.add_argument("--seconds", type=float, default=60.0)
    parser.add_argument("--max-inflight", type=int, default=64)
    parser.add_argument("--workers", type=int, default=1, help="uvicorn worker processes")
    parser.add_argument(
        "--client",
        choices=("aiohttp", "httpx"),
        default="aiohttp",
        help="the generator's HTTP client (aiohttp: about a third of httpx's CPU per request)",
    )
    parser.add_argument(
        "--swap-at", type=float, default=None, help="move @champion this many seconds in"
    )
    args = parser.parse_args()
    if args.rate * args.seconds > 100_000:
        raise SystemExit("bounded benchmark: at most 100,000 requests per run")
    tracking = private_tracking_store()
    bodies = [orjson.dumps(r) for r in demo_requests(200)]
    port = free_port()
    cmd = uvicorn_cmd(port, host=HOST, workers=args.workers)
    env = service_env(api_key=API_KEY, tracking_uri=tracking)
    swap = None
    if args.swap_at is not None:
        swap = _champion_swapper(tracking)
        env["PREDICTIVE_SCORING_RELOAD_INTERVAL_SECONDS"] = "1"
    log = Path(__file__).resolve().parent / "results" / "load-server.log"
    log.parent.mkdir(parents=True, exist_ok=True)
    print(f"machine: {machine_info()}", flush=True)
    load_start = os.getloadavg()
    base = f"http://{HOST}:{port}"
    with server(cmd, health_url=f"{base}/readyz", env=env, log=log):
        result = asyncio.run(
            _drive(
                f"{base}/v1/score",
                bodies,
                rate=args.rate,
                seconds=args.seconds,
                max_inflight=args.max_inflight,
                client=args.client,
                swap=swap,
                swap_at=args.swap_at,
            )
        )
    row = {
        "target_rps": args.rate,
        "seconds": args.seconds,
        "workers": args.workers,
        "loadavg_start": [round(x, 2) for x in load_start],
        "loadavg_end": [round(x, 2) for x in os.getloadavg()],
        **result,
    }
    write_result(BENCH, f"one lead, {args.rate:g} rps open loop, {args.workers} worker(s)", **row)
    print_table(
        f"open loop {args.rate:g} requests/s for {args.seconds:g} s, "
        f"{args.workers} uvicorn worker(s)",
        [row],
        [
            "client",
            "workers",
            "target_rps",
            "achieved_rps",
            "requests",
            "errors",
            "p50_ms",
            "p99_ms",
            "max_ms",
            "max_at_s",
            "client_gc_max_ms",
            "client_cpu_ms_per_request",
            *(["version_switches", "p99_ms_around_swap"] if swap else []),
        ],
    )
    if result["error_kinds"]:
        print(f"errors: {result['error_kinds']}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
