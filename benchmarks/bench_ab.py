"""A/B: our service at a base git revision against the working tree, side by side, one lead.

Not a test. On a shared host a server change worth 0.1 ms drowns in the minute-to-minute noise
when the two versions are measured one after the other. Here both versions run at once (the base
from a temporary ``git worktree``, the working tree as it is), load the same registered model,
and are timed in interleaved rounds that alternate which goes first, with two clients
(``http.client`` and ``requests``). Prints each side's p50 and the ratio new / base, pooled and
per round, and appends a JSON line to the results file.

    python benchmarks/bench_ab.py [--base HEAD~1] [--rounds 10] [--per-round 500]
"""

from __future__ import annotations

import argparse
import contextlib
import statistics
import subprocess
import sys
import tempfile
from collections.abc import Callable, Iterator
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

BENCH = "ab"
API_KEY = "bench-key"
HEADERS = {"X-API-Key": API_KEY, "Content-Type": "application/json"}
WARM = 50


@contextlib.contextmanager
def _worktree(rev: str) -> Iterator[Path]:
    """A detached checkout of ``rev`` in a temp dir, removed afterwards."""
    with tempfile.TemporaryDirectory(prefix="ps-ab-") as tmp:
        path = Path(tmp) / "base"
        subprocess.run(
            ["git", "-C", str(REPO), "worktree", "add", "--detach", "-q", str(path), rev],
            check=True,
        )
        try:
            yield path
        finally:
            subprocess.run(
                ["git", "-C", str(REPO), "worktree", "remove", "--force", str(path)], check=False
            )


def _service(
    src: Path, port: int, tracking: str, log: Path
) -> contextlib.AbstractContextManager[None]:
    env = service_env(api_key=API_KEY, tracking_uri=tracking)
    env["PYTHONPATH"] = str(src)
    health = f"http://127.0.0.1:{port}/readyz"
    return server(uvicorn_cmd(port), health_url=health, env=env, log=log)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--base", default="HEAD~1", help="git revision to compare against")
    parser.add_argument("--rounds", type=int, default=10)
    parser.add_argument("--per-round", type=int, default=500, help="requests per side and client")
    args = parser.parse_args()
    base_rev = subprocess.run(
        ["git", "-C", str(REPO), "rev-parse", "--short", args.base],
        check=True,
        capture_output=True,
        text=True,
    ).stdout.strip()
    tracking = private_tracking_store()
    bodies = [orjson.dumps(r) for r in demo_requests(200)]
    logs = REPO / "benchmarks" / "results"
    logs.mkdir(parents=True, exist_ok=True)
    session = requests_lib.Session()
    # A new http.client connection per timed run (an idle one is closed by the server).
    clients: dict[str, Callable[[], Post]] = {
        "http.client": stdlib_post,
        "requests": lambda: session_post(session),
    }
    samples: dict[tuple[str, str], list[float]] = {}
    per_round: dict[str, list[float]] = {name: [] for name in clients}
    ports = {"base": free_port(), "new": free_port()}
    with (
        _worktree(args.base) as base,
        _service(base / "src", ports["base"], tracking, logs / "ab-base.log"),
        _service(REPO / "src", ports["new"], tracking, logs / "ab-new.log"),
    ):
        for r in range(args.rounds):
            order = ("base", "new") if r % 2 == 0 else ("new", "base")
            medians: dict[tuple[str, str], float] = {}
            for side in order:
                url = f"http://127.0.0.1:{ports[side]}/v1/score"
                for name, client in clients.items():
                    got = time_posts(client(), url, bodies, HEADERS, n=args.per_round, warm=WARM)
                    samples.setdefault((side, name), []).extend(got)
                    medians[side, name] = statistics.median(got)
            for name in clients:
                per_round[name].append(medians["new", name] / medians["base", name])
            print(f"round {r + 1} of {args.rounds} done", flush=True)
    print(f"\nbase {base_rev} vs the working tree, one lead per request, p50 in ms")
    for name in clients:
        base_ms = statistics.median(samples["base", name]) * 1e3
        new_ms = statistics.median(samples["new", name]) * 1e3
        rounds = per_round[name]
        print(
            f"{name:12} base {base_ms:.3f}  new {new_ms:.3f}  new/base {new_ms / base_ms:.3f}"
            f"  per round {' '.join(f'{x:.2f}' for x in rounds)}"
            f"  (new faster in {sum(x < 1 for x in rounds)} of {len(rounds)})"
        )
        write_result(
            BENCH,
            f"one lead, {name}",
            base=base_rev,
            base_p50_ms=round(base_ms, 4),
            new_p50_ms=round(new_ms, 4),
            new_over_base=round(new_ms / base_ms, 3),
            per_round=[round(x, 3) for x in rounds],
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
