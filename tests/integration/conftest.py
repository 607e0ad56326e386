"""A copy of the repository in a temp dir with tiny params, reproduced once per session."""

from __future__ import annotations

import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.projects import TINY, make_project, run


@pytest.fixture(scope="session")
def project(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    """The repository reproduced end to end with tiny params (`dvc repro`)."""
    dest = make_project(tmp_path_factory.mktemp("project"), TINY)
    proc = run([sys.executable, "-m", "dvc", "repro"], dest)
    (dest / "repro.log").write_text(proc.stdout + proc.stderr)
    yield dest
