"""A copy of the repository in a temp dir with tiny params, reproduced once per session."""

from __future__ import annotations

import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.projects import make_project, run

TINY = {
    "generate": {"n_leads": 2500, "events_per_lead": 25},
    "train": {"n_estimators": 300, "early_stopping_rounds": 30},
    "thresholds": {"capacity_per_week": 10, "min_recall": 0.8},
}


@pytest.fixture(scope="session")
def project(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    """The repository reproduced end to end with tiny params (`dvc repro`)."""
    dest = make_project(tmp_path_factory.mktemp("project"), TINY)
    proc = run([sys.executable, "-m", "dvc", "repro"], dest)
    (dest / "repro.log").write_text(proc.stdout + proc.stderr)
    yield dest
