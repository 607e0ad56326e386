"""Small file helpers shared by the stages and the CLI: atomic writes, logging, provenance."""

from __future__ import annotations

import json
import logging
import os
import shutil
import subprocess
import sys
import tempfile
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pandas as pd
import yaml

__all__ = [
    "atomic_dir",
    "atomic_path",
    "dvc_out_hash",
    "failure_text",
    "git_commit",
    "read_json",
    "setup_logging",
    "write_json",
    "write_parquet",
]


def setup_logging(level: str | int = "INFO") -> None:
    """Configure the root logger once, for a stage or the CLI."""
    logging.basicConfig(
        level=level,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
        datefmt="%H:%M:%S",
        stream=sys.stderr,
    )


def failure_text(exc: BaseException) -> str:
    """A stage's error for its log: one line for one problem, else one line per problem."""
    problems: list[str] = list(getattr(exc, "problems", None) or [str(exc)])
    if len(problems) == 1:
        return problems[0]
    return f"{len(problems)} problems:\n" + "\n".join(f"  - {p}" for p in problems)


@contextmanager
def atomic_path(path: str | Path) -> Iterator[Path]:
    """Yield a temp path beside ``path``; it replaces ``path`` only if the block succeeds."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    os.close(fd)
    try:
        yield Path(tmp)
        umask = os.umask(0)
        os.umask(umask)
        os.chmod(tmp, 0o666 & ~umask)  # mkstemp makes 0600; give the file the usual mode
        os.replace(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)


@contextmanager
def atomic_dir(out_dir: str | Path) -> Iterator[Path]:
    """Yield a temp folder beside ``out_dir``; it replaces ``out_dir`` only if the block
    succeeds, so a failing stage leaves the last good folder in place (and no temp folder)."""
    out_dir = Path(out_dir)
    out_dir.parent.mkdir(parents=True, exist_ok=True)
    token = uuid.uuid4().hex[:8]
    tmp = out_dir.parent / f".{out_dir.name}.tmp-{token}"
    tmp.mkdir()
    try:
        yield tmp
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    old = out_dir.parent / f".{out_dir.name}.old-{token}"
    if out_dir.exists():
        out_dir.rename(old)
    tmp.rename(out_dir)
    shutil.rmtree(old, ignore_errors=True)


def write_json(path: str | Path, data: Any) -> Path:
    """Write JSON atomically, keys sorted, NaN written as null."""
    text = json.dumps(_clean(data), indent=2, sort_keys=True, default=str)
    with atomic_path(path) as tmp:
        tmp.write_text(text + "\n")
    return Path(path)


def _clean(value: Any) -> Any:
    if isinstance(value, float) and value != value:
        return None
    if isinstance(value, dict):
        return {str(k): _clean(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_clean(v) for v in value]
    return value


def read_json(path: str | Path) -> Any:
    return json.loads(Path(path).read_text())


def write_parquet(path: str | Path, frame: pd.DataFrame) -> Path:
    """Write a parquet file atomically."""
    with atomic_path(path) as tmp:
        frame.to_parquet(tmp, index=False)
    return Path(path)


def git_commit(root: str | Path = ".") -> str:
    """The current git commit, or "unknown" outside a checkout."""
    try:
        out = subprocess.run(
            ["git", "rev-parse", "HEAD"], cwd=root, capture_output=True, text=True, check=True
        )
        return out.stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        return "unknown"


def dvc_out_hash(out_path: str, *, root: str | Path = ".") -> str:
    """The md5 DVC recorded in dvc.lock for a stage output, or "unknown"."""
    lock = Path(root) / "dvc.lock"
    if not lock.exists():
        return "unknown"
    data = yaml.safe_load(lock.read_text()) or {}
    for stage in (data.get("stages") or {}).values():
        for out in stage.get("outs", []) or []:
            if out.get("path") == out_path:
                return str(out.get("md5", "unknown"))
    return "unknown"
