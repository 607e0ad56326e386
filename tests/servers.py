"""A real uvicorn process for end-to-end tests: started on a free loopback port, always stopped.

Waits adapt to the host: a busy machine (load average above its core count) gets a longer limit,
and a server that still does not answer fails the test with its own log, not a bare timeout.
"""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from pathlib import Path

import httpx

# The least a server is given to become ready, on a quiet host; scaled up by the load.
BASE_PATIENCE = 120.0


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def patience(base: float = BASE_PATIENCE) -> float:
    """Seconds to wait for something a quiet host does in a few: ``base``, times the load per
    core when the host is busier than its cores (a 2-core host at load 11 waits 5.5 times as
    long)."""
    try:
        load = os.getloadavg()[0]
    except OSError:  # no load average on this platform
        return base
    return base * max(1.0, load / (os.cpu_count() or 1))


def log_tail(log: Path, chars: int = 4000) -> str:
    """The end of a server's captured output, for an assertion message."""
    try:
        text = log.read_text(errors="replace")
    except OSError as exc:
        return f"(no log: {exc})"
    return text[-chars:] or "(the server wrote nothing)"


def wait_until_ready(
    proc: subprocess.Popen[bytes], url: str, log: Path, *, base: float = BASE_PATIENCE
) -> None:
    """Poll ``url`` until it answers 200. Fails with the server's log when the process exits,
    or when it has not answered within :func:`patience` (measured again on every poll, so a host
    that gets busier while waiting extends the limit)."""
    start = time.monotonic()
    last = "no answer yet"
    while True:
        code = proc.poll()
        assert code is None, f"the server exited ({code}) before {url} answered:\n{log_tail(log)}"
        try:
            response = httpx.get(url, timeout=5)
            if response.status_code == 200:
                return
            last = f"{response.status_code} {response.text[:300]}"
        except httpx.TransportError as exc:
            last = repr(exc)
        waited = time.monotonic() - start
        limit = patience(base)
        assert waited < limit, (
            f"{url} did not answer 200 within {limit:.0f} s (load average "
            f"{os.getloadavg()[0]:.1f} on {os.cpu_count()} cores); last: {last}\n"
            f"server log:\n{log_tail(log)}"
        )
        time.sleep(0.2)


def stop(proc: subprocess.Popen[bytes]) -> None:
    """SIGTERM, as a process manager stops it; SIGKILL if it has not exited after a while."""
    proc.terminate()
    try:
        proc.wait(timeout=patience(30))
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()


@contextmanager
def uvicorn_service(
    env: Mapping[str, str],
    *,
    cwd: Path,
    args: Sequence[str] = (),
    until: str = "/readyz",
    log_level: str = "warning",
    log: list[Path] | None = None,
) -> Iterator[str]:
    """Run the service factory under uvicorn (with extra ``args`` such as ``--workers 2``); yield
    its base URL once ``until`` answers 200 (``/healthz`` for a service that is up without a
    model). The server's output goes to a file; ``log``, when given, receives its path."""
    port = free_port()
    cmd = [
        sys.executable, "-m", "uvicorn", "--factory", "predictive_scoring.serve:create_app",
        "--host", "127.0.0.1", "--port", str(port), "--log-level", log_level, *args,
    ]  # fmt: skip
    base = f"http://127.0.0.1:{port}"
    with tempfile.TemporaryDirectory(prefix="uvicorn-") as folder:
        out = Path(folder) / "server.log"
        if log is not None:
            log.append(out)
        with out.open("wb") as sink:
            proc = subprocess.Popen(
                cmd, env=dict(env), cwd=cwd, stdout=sink, stderr=subprocess.STDOUT
            )
            try:
                wait_until_ready(proc, f"{base}{until}", out)
                yield base
            finally:
                stop(proc)
