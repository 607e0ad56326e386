"""scripts/setup.sh: a re-run with nothing changed skips pip; a change or --force installs."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
FAKE_PYTHON = """#!/bin/sh
echo "$*" >> "$(dirname "$0")/../calls.log"
[ "$1" = "-VV" ] && echo "Python 3.11.7 (fake)"
exit 0
"""


@pytest.fixture
def project(tmp_path: Path) -> Path:
    """A copy of setup.sh next to a pyproject.toml, with a .venv whose python only logs."""
    if shutil.which("sha256sum") is None:
        pytest.skip("needs sha256sum (coreutils)")
    (tmp_path / "scripts").mkdir()
    shutil.copy(ROOT / "scripts" / "setup.sh", tmp_path / "scripts" / "setup.sh")
    (tmp_path / "pyproject.toml").write_text('[project]\nname = "x"\n')
    bin_dir = tmp_path / ".venv" / "bin"
    bin_dir.mkdir(parents=True)
    (bin_dir / "python").write_text(FAKE_PYTHON)
    (bin_dir / "python").chmod(0o755)
    (bin_dir / "activate").write_text(f'PATH="{bin_dir}:$PATH"\n')
    return tmp_path


def _setup(project: Path, *args: str) -> tuple[str, list[str]]:
    log = project / ".venv" / "calls.log"
    log.unlink(missing_ok=True)
    env = {**os.environ, "PYTHON": sys.executable, "PREDICTIVE_SCORING_SYSTEM_PACKAGES": "0"}
    done = subprocess.run(
        ["bash", "scripts/setup.sh", *args],
        cwd=project,
        env=env,
        capture_output=True,
        text=True,
        check=True,
        timeout=60,
    )
    calls = log.read_text().splitlines() if log.exists() else []
    return done.stdout, [c for c in calls if c.startswith("-m pip install")]


def test_a_rerun_with_nothing_changed_skips_pip(project: Path) -> None:
    out, pip = _setup(project, "dev,spark")
    assert "installing predictive-scoring[dev,spark]" in out
    assert any("-e .[dev,spark]" in call for call in pip)
    start = time.perf_counter()
    out, pip = _setup(project, "dev,spark")
    assert pip == [] and "up to date" in out
    assert time.perf_counter() - start < 5


@pytest.mark.parametrize(
    "change",
    ["pyproject", "extras", "force"],
)
def test_a_change_or_force_installs_again(project: Path, change: str) -> None:
    _setup(project, "dev")
    args = ["dev"]
    if change == "pyproject":
        with (project / "pyproject.toml").open("a") as f:
            f.write('version = "2"\n')
    elif change == "extras":
        args = ["dev,spark"]
    else:
        args = ["dev", "--force"]
    out, pip = _setup(project, *args)
    assert "installing" in out and pip


def test_an_unknown_option_is_refused(project: Path) -> None:
    with pytest.raises(subprocess.CalledProcessError) as failed:
        _setup(project, "--fast")
    assert "unknown option --fast" in failed.value.stderr


FAKE_APT = """#!/bin/sh
echo "apt-get $*" >> "$(dirname "$0")/apt.log"
[ -z "$APT_FAILS" ]
"""


@pytest.fixture
def bare_path(tmp_path: Path) -> Path:
    """A PATH with the shell tools setup.sh uses, a root `id`, a logging apt-get, and no java
    or chromium."""
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    for tool in ("bash", "dirname", "sha256sum", "cut", "tr", "cat", "rm"):
        found = shutil.which(tool)
        if found is None:
            pytest.skip(f"needs {tool}")
        (bin_dir / tool).symlink_to(found)
    (bin_dir / "id").write_text("#!/bin/sh\necho 0\n")
    (bin_dir / "apt-get").write_text(FAKE_APT)
    for name in ("id", "apt-get"):
        (bin_dir / name).chmod(0o755)
    return bin_dir


def _setup_as_root(
    project: Path, bare_path: Path, extras: str, **env: str
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [str(bare_path / "bash"), "scripts/setup.sh", extras],
        cwd=project,
        env={"PATH": str(bare_path), "PYTHON": sys.executable, **env},
        capture_output=True,
        text=True,
        timeout=60,
    )


def test_as_root_it_installs_java_and_chromium_when_missing(
    project: Path, bare_path: Path
) -> None:
    done = _setup_as_root(project, bare_path, "dev,spark")
    assert done.returncode == 0, done.stderr
    calls = (bare_path / "apt.log").read_text().splitlines()
    assert calls[0] == "apt-get update -qq"
    assert calls[1].startswith("apt-get install -y -qq --no-install-recommends")
    assert calls[1].endswith("default-jre-headless chromium")


def test_without_the_dev_extra_it_leaves_chromium_alone(project: Path, bare_path: Path) -> None:
    done = _setup_as_root(project, bare_path, "spark")
    assert done.returncode == 0, done.stderr
    assert (bare_path / "apt.log").read_text().splitlines()[1].endswith(" default-jre-headless")


def test_it_can_be_told_to_leave_the_system_alone(project: Path, bare_path: Path) -> None:
    done = _setup_as_root(project, bare_path, "dev,spark", PREDICTIVE_SCORING_SYSTEM_PACKAGES="0")
    assert done.returncode == 0, done.stderr
    assert not (bare_path / "apt.log").exists()
    assert "sudo apt-get install -y default-jre-headless chromium" in done.stdout


def test_a_failed_apt_get_stops_setup_and_says_how_to_go_on(
    project: Path, bare_path: Path
) -> None:
    done = _setup_as_root(project, bare_path, "dev", APT_FAILS="1")
    assert done.returncode == 1
    assert "PREDICTIVE_SCORING_SYSTEM_PACKAGES=0" in done.stderr
