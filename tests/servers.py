"""A real uvicorn process for end-to-end tests: started on a free loopback port, always stopped."""

from __future__ import annotations

import socket
import subprocess
import sys
import time
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from pathlib import Path

import httpx


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@contextmanager
def uvicorn_service(
    env: Mapping[str, str], *, cwd: Path, ready_timeout: float = 60.0, args: Sequence[str] = ()
) -> Iterator[str]:
    """Run the service factory under uvicorn (with extra ``args`` such as ``--workers 2``); yield
    its base URL once /readyz answers. Stopped by SIGTERM, as a process manager stops it."""
    port = free_port()
    cmd = [
        sys.executable, "-m", "uvicorn", "--factory", "predictive_scoring.serve:create_app",
        "--host", "127.0.0.1", "--port", str(port), "--log-level", "warning", *args,
    ]  # fmt: skip
    proc = subprocess.Popen(
        cmd, env=dict(env), cwd=cwd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT
    )
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + ready_timeout
        while True:
            assert proc.poll() is None, proc.stdout.read().decode() if proc.stdout else ""
            try:
                if httpx.get(f"{base}/readyz", timeout=1).status_code == 200:
                    break
            except httpx.TransportError:
                pass
            assert time.monotonic() < deadline, "uvicorn did not become ready"
            time.sleep(0.1)
        yield base
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
        if proc.stdout:
            proc.stdout.close()
