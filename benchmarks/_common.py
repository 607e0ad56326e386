"""Shared helpers for the benchmark scripts: machine facts, percentiles, results, demo leads.

Not a test and not library code: each script prints its table and appends one JSON line per
result to ``benchmarks/results/results.jsonl`` (kept out of git by the ``.gitignore`` there).
"""

from __future__ import annotations

import http.client
import json
import os
import platform
import resource
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from datetime import UTC, datetime
from importlib import metadata
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import numpy as np

REPO = Path(__file__).resolve().parents[1]
RESULTS = REPO / "benchmarks" / "results" / "results.jsonl"
PACKAGES = (
    "numpy",
    "pandas",
    "pyarrow",
    "duckdb",
    "ibis-framework",
    "lightgbm",
    "mlflow",
    "fastapi",
    "uvicorn",
    "pydantic",
    "orjson",
    "httpx",
    "uvloop",
    "httptools",
)


def _cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown"


def _memory_gb() -> float:
    try:
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemTotal:"):
                return round(int(line.split()[1]) / 1024**2, 1)
    except OSError:
        pass
    return float("nan")


def machine_info() -> dict[str, Any]:
    """CPU model, cores, memory, Python and the versions of the packages that matter here."""
    versions: dict[str, str] = {}
    for name in PACKAGES:
        try:
            versions[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            continue
    return {
        "cpu": _cpu_model(),
        "cores": os.cpu_count(),
        "memory_gb": _memory_gb(),
        "python": platform.python_version(),
        "platform": platform.platform(),
        "packages": versions,
    }


def percentiles(samples_s: Sequence[float]) -> dict[str, float]:
    """p50/p90/p99/mean/max in milliseconds of latencies given in seconds."""
    a = np.asarray(samples_s, dtype=np.float64) * 1000.0
    if a.size == 0:
        return {"n": 0}
    return {
        "n": int(a.size),
        "p50_ms": round(float(np.percentile(a, 50)), 4),
        "p90_ms": round(float(np.percentile(a, 90)), 4),
        "p99_ms": round(float(np.percentile(a, 99)), 4),
        "mean_ms": round(float(a.mean()), 4),
        "max_ms": round(float(a.max()), 4),
    }


def write_result(bench: str, name: str, **values: Any) -> dict[str, Any]:
    """Append one JSON line (benchmark, result name, values, machine, time) to results.jsonl."""
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    row = {
        "bench": bench,
        "name": name,
        "at": datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ"),
        **values,
        "machine": machine_info(),
    }
    with RESULTS.open("a") as fh:
        fh.write(json.dumps(row, default=str) + "\n")
    return row


def print_table(title: str, rows: Sequence[dict[str, Any]], columns: Sequence[str]) -> None:
    """A plain fixed-width table on stdout."""
    print(f"\n## {title}")
    widths = [max(len(c), *(len(_fmt(r.get(c))) for r in rows)) for c in columns]
    print("  ".join(c.ljust(w) for c, w in zip(columns, widths, strict=True)))
    for r in rows:
        print("  ".join(_fmt(r.get(c)).ljust(w) for c, w in zip(columns, widths, strict=True)))


def _fmt(value: Any) -> str:
    if value is None:
        return "-"
    if isinstance(value, float):
        return f"{value:.4g}" if abs(value) < 1000 else f"{value:,.0f}"
    return str(value)


def free_port() -> int:
    """A free TCP port on 127.0.0.1."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def wait_http(
    url: str, *, timeout_s: float = 120.0, proc: subprocess.Popen[Any] | None = None
) -> None:
    """Poll ``url`` until it answers 200, or fail (with the process's exit code if it died)."""
    import httpx

    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if proc is not None and proc.poll() is not None:
            raise RuntimeError(f"server exited with {proc.returncode} before {url} answered")
        try:
            if httpx.get(url, timeout=2.0).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.25)
    raise RuntimeError(f"{url} did not answer within {timeout_s:.0f} s")


@contextmanager
def server(cmd: list[str], *, health_url: str, env: dict[str, str], log: Path) -> Iterator[None]:
    """Run a server subprocess until the block ends; it is stopped by its own pid."""
    with log.open("w") as fh:
        proc = subprocess.Popen(
            cmd, cwd=REPO, env=env, stdout=fh, stderr=subprocess.STDOUT, start_new_session=True
        )
        try:
            wait_http(health_url, proc=proc, timeout_s=180.0)
            yield
        finally:
            proc.terminate()
            try:
                proc.wait(timeout=20)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()


def private_tracking_store(model: str = "lead-scoring", alias: str = "champion") -> str:
    """A copy of the project's MLflow store in a temp dir, with ``alias`` set if it is missing.

    The artifacts stay where the project's store points; only the copy's aliases may change, so
    the benchmark never moves the project's own champion.
    """
    import shutil
    import tempfile

    import mlflow
    from mlflow import MlflowClient
    from mlflow.exceptions import MlflowException

    src = REPO / "mlflow.db"
    if not src.exists():
        raise SystemExit(f"{src} not found: run `dvc repro` first")
    dest = Path(tempfile.mkdtemp(prefix="bench-mlflow-")) / "mlflow.db"
    shutil.copy2(src, dest)
    uri = f"sqlite:///{dest}"
    mlflow.set_tracking_uri(uri)
    client = MlflowClient()
    try:
        client.get_model_version_by_alias(model, alias)
    except MlflowException:
        latest = max(int(v.version) for v in client.search_model_versions(f"name='{model}'"))
        client.set_registered_model_alias(model, alias, str(latest))
        print(f"(no @{alias} in {src}: the benchmark's copy sets it on version {latest})")
    return uri


def service_env(*, api_key: str, tracking_uri: str | None = None) -> dict[str, str]:
    """Environment for our service: one key, the champion from ``tracking_uri`` or the bundle."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("PREDICTIVE_SCORING_")}
    env["PREDICTIVE_SCORING_API_KEYS"] = api_key
    env["PYTHONPATH"] = str(REPO / "src")
    if tracking_uri:
        env["PREDICTIVE_SCORING_TRACKING_URI"] = tracking_uri
    env["PATH"] = str(Path(sys.executable).parent) + os.pathsep + env.get("PATH", "")
    return env


def child_peak_rss_mb() -> float:
    """Peak RSS of the largest child process waited for so far (Linux reports KiB)."""
    return resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024.0


def demo_requests(
    n: int, *, events_min: int = 40, events_max: int = 60, seed: int = 0
) -> list[dict[str, Any]]:
    """``n`` request bodies built from data/demo: leads with 40-60 events, scored at their last
    event plus a day (so every event counts)."""
    import pandas as pd

    leads = pd.read_parquet(REPO / "data" / "demo" / "leads.parquet")
    events = pd.read_parquet(
        REPO / "data" / "demo" / "events.parquet", columns=["lead_id", "ts", "event_type"]
    )
    sizes = events.groupby("lead_id").size()
    pool = sizes[(sizes >= events_min) & (sizes <= events_max)].index.to_numpy()
    rng = np.random.default_rng(seed)
    chosen = set(rng.choice(pool, size=min(n, len(pool)), replace=False).tolist())
    ev = events[events["lead_id"].isin(chosen)].sort_values(["lead_id", "ts"])
    by_lead = {k: g for k, g in ev.groupby("lead_id")}
    rows = leads[leads["lead_id"].isin(chosen)]
    out: list[dict[str, Any]] = []
    iso = "%Y-%m-%dT%H:%M:%SZ"
    for rec in rows.to_dict("records"):
        g = by_lead[rec["lead_id"]]
        attrs = {
            k: (None if (isinstance(v, float) and np.isnan(v)) else v)
            for k, v in rec.items()
            if k not in ("lead_id", "created_at")
        }
        as_of = g["ts"].max() + pd.Timedelta(days=1)
        out.append(
            {
                "lead_id": rec["lead_id"],
                "attributes": attrs,
                "created_at": rec["created_at"].strftime(iso),
                "events": [
                    {"event_type": t, "ts": ts.strftime(iso)}
                    for t, ts in zip(g["event_type"], g["ts"], strict=True)
                ],
                "as_of": as_of.strftime(iso),
            }
        )
    return out


def lead_inputs(requests: Sequence[dict[str, Any]]) -> list[Any]:
    """The same leads as :class:`~predictive_scoring.scoring.LeadInput`, as the service builds."""
    from datetime import datetime as dt

    from predictive_scoring.scoring import LeadInput

    def secs(text: str) -> int:
        return int(dt.strptime(text, "%Y-%m-%dT%H:%M:%SZ").replace(tzinfo=UTC).timestamp())

    return [
        LeadInput(
            lead_id=r["lead_id"],
            attributes=r["attributes"],
            events=[(e["event_type"], secs(e["ts"])) for e in r["events"]],
            created_at=float(secs(r["created_at"])),
            as_of=secs(r["as_of"]),
        )
        for r in requests
    ]


def mlflow_body(requests: Sequence[dict[str, Any]]) -> dict[str, Any]:
    """The same leads in the pyfunc's input shape (``dataframe_split``, events as JSON text)."""
    columns = ["lead_id", "created_at", "as_of", "events"]
    attr_names: list[str] = []
    for r in requests:
        for k in r["attributes"]:
            if k not in attr_names:
                attr_names.append(k)
    columns += attr_names
    data = [
        [r["lead_id"], r["created_at"], r["as_of"], json.dumps(r["events"])]
        + [r["attributes"].get(k) for k in attr_names]
        for r in requests
    ]
    return {"dataframe_split": {"columns": columns, "data": data}}


def uvicorn_cmd(port: int, *, host: str = "127.0.0.1", workers: int = 1) -> list[str]:
    """Our service under uvicorn, as the README runs it, quiet (no access log)."""
    return [
        sys.executable,
        "-m",
        "uvicorn",
        "--factory",
        "predictive_scoring.serve:create_app",
        "--host",
        host,
        "--port",
        str(port),
        "--workers",
        str(workers),
        "--log-level",
        "warning",
        "--no-access-log",
    ]


# A client's POST: (url, body, headers) -> (status, body). The response is read in full.
Post = Callable[[str, bytes, dict[str, str]], tuple[int, bytes]]


def time_posts(
    post: Post, url: str, bodies: Sequence[bytes], headers: dict[str, str], *, n: int, warm: int
) -> list[float]:
    """Seconds per request for ``n`` POSTs in sequence after ``warm`` untimed ones; bodies cycle.

    Any status but 200 stops the run with the URL named.
    """
    samples: list[float] = []
    for i in range(warm + n):
        body = bodies[i % len(bodies)]
        start = time.perf_counter()
        status, _ = post(url, body, headers)
        took = time.perf_counter() - start
        if status != 200:
            raise RuntimeError(f"{url}: HTTP {status}")
        if i >= warm:
            samples.append(took)
    return samples


def stdlib_post(timeout: float = 300.0) -> Post:
    """A POST through ``http.client`` on one kept-alive connection per host and port.

    Make one per timed run: servers close a kept-alive connection left idle for a few seconds
    (uvicorn after 5), and ``http.client`` does not reconnect by itself.
    """
    connections: dict[tuple[str, int], http.client.HTTPConnection] = {}

    def post(url: str, body: bytes, headers: dict[str, str]) -> tuple[int, bytes]:
        parts = urlsplit(url)
        host, port = parts.hostname or "127.0.0.1", parts.port or 80
        conn = connections.get((host, port))
        if conn is None:
            conn = connections[host, port] = http.client.HTTPConnection(
                host, port, timeout=timeout
            )
        path = parts.path + (f"?{parts.query}" if parts.query else "")
        conn.request("POST", path, body=body, headers=headers)
        response = conn.getresponse()
        return response.status, response.read()

    return post


def session_post(session: Any) -> Post:
    """A POST through a ``requests.Session`` (or anything with the same ``post``)."""

    def post(url: str, body: bytes, headers: dict[str, str]) -> tuple[int, bytes]:
        r = session.post(url, data=body, headers=headers)
        return r.status_code, r.content

    return post


def httpx_post(client: Any) -> Post:
    """A POST through an ``httpx.Client`` (bytes go in ``content``, as httpx wants them)."""

    def post(url: str, body: bytes, headers: dict[str, str]) -> tuple[int, bytes]:
        r = client.post(url, content=body, headers=headers)
        return r.status_code, r.content

    return post
