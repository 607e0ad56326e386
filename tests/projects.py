"""A copy of the repository in a temp dir, commands run inside it, and its CRM file scorer."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pandas as pd
import yaml

REPO = Path(__file__).resolve().parents[1]
COPY = ["pyproject.toml", "params.yaml", "dvc.yaml", "pipelines", "src", ".dvc", ".dvcignore"]

# params for a project small enough to reproduce end to end in a test
TINY = {
    "generate": {"n_leads": 2500, "events_per_lead": 25},
    "train": {"n_estimators": 300, "early_stopping_rounds": 30},
    "thresholds": {"capacity_per_week": 10, "min_recall": 0.8},
}


def run(cmd: list[str], cwd: Path, *, check: bool = True) -> subprocess.CompletedProcess[str]:
    """Run ``cmd`` in a project copy on its own ``src`` with this venv; fail with its output."""
    env = {**os.environ, "PYTHONPATH": str(cwd / "src")}
    env.pop("MLFLOW_TRACKING_URI", None)
    bindir = str(Path(sys.executable).parent)
    env["PATH"] = bindir + os.pathsep + env.get("PATH", "")
    proc = subprocess.run(cmd, cwd=cwd, env=env, capture_output=True, text=True, timeout=900)
    if check and proc.returncode != 0:
        raise AssertionError(
            f"{' '.join(cmd)} failed ({proc.returncode}):\n{proc.stdout[-4000:]}\n"
            f"{proc.stderr[-6000:]}"
        )
    return proc


def score_file(
    project: Path, leads: pd.DataFrame, events: pd.DataFrame, workdir: Path, *, as_of: str
) -> pd.DataFrame:
    """Run `predictive-scoring score` on CSV copies of leads and events; return the output."""
    leads.to_csv(workdir / "leads.csv", index=False)
    events.to_csv(workdir / "events.csv", index=False)
    out = workdir / "scored.csv"
    run(
        [
            sys.executable, "-m", "predictive_scoring.cli", "score",
            "--leads", str(workdir / "leads.csv"), "--events", str(workdir / "events.csv"),
            "--output", str(out), "--model", str(project / "models/lead-scoring"),
            "--as-of", as_of,
        ],
        project,
    )  # fmt: skip
    return pd.read_csv(out, dtype={"lead_id": str})


def make_project(dest: Path, overrides: dict[str, dict[str, object]]) -> Path:
    """Copy the repository's pipeline into ``dest`` as a fresh git repo, params overridden."""
    for name in COPY:
        src = REPO / name
        if src.is_dir():
            shutil.copytree(src, dest / name, ignore=shutil.ignore_patterns("__pycache__", "tmp"))
        else:
            shutil.copy2(src, dest / name)
    params = yaml.safe_load((dest / "params.yaml").read_text())
    for section, values in overrides.items():
        params.setdefault(section, {}).update(values)
        if section == "thresholds":
            params["thresholds"] = dict(values)
    (dest / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=False))
    (dest / ".gitignore").write_text("/mlflow.db\n/mlruns/\n")
    run(["git", "init", "-q"], dest)
    run(["git", "add", "-A"], dest)
    run(["git", "-c", "user.name=t", "-c", "user.email=t@t", "commit", "-qm", "init"], dest)
    return dest
