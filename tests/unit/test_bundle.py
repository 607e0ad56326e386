"""The bundle on disk: written atomically, read back whole, every damaged part named."""

from __future__ import annotations

import json
from dataclasses import replace
from pathlib import Path

import pytest
from tests.scorers import NOW, build_scorer

from predictive_scoring.bundle import META_FILE, read_bundle, write_bundle
from predictive_scoring.errors import BundleError
from predictive_scoring.scoring import LeadInput, Scorer


@pytest.fixture(scope="module")
def saved(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return build_scorer(version="3", seed=0, rounds=5).save(
        tmp_path_factory.mktemp("bundle") / "b"
    )


def test_a_bundle_reads_back_as_it_was_written(saved: Path, tmp_path: Path) -> None:
    scorer = Scorer.load(saved)
    again = Scorer.load(scorer.save(tmp_path / "again"))
    assert again.version == "3" and again.levels == scorer.levels
    assert again.definition == scorer.definition
    assert read_bundle(saved).metadata["model_sha256"]


@pytest.mark.parametrize(
    ("part", "damage"),
    [
        ("calibrator", {}),  # no 'method'
        ("thresholds", {"mql": "high"}),
        ("definition", {"event_types": 3}),
    ],
)
def test_a_malformed_part_is_a_bundle_error_naming_it(
    saved: Path, tmp_path: Path, part: str, damage: object
) -> None:
    copy = Scorer.load(saved).save(tmp_path / "copy")
    meta = json.loads((copy / META_FILE).read_text())
    meta[part] = damage
    (copy / META_FILE).write_text(json.dumps(meta))
    with pytest.raises(BundleError, match=f"the '{part}' part is missing or malformed"):
        Scorer.load(copy)


def test_a_failed_write_leaves_the_old_bundle(saved: Path, tmp_path: Path) -> None:
    target = Scorer.load(saved).save(tmp_path / "live")
    before = (target / META_FILE).read_text()
    parts = read_bundle(saved)

    class FullDisk:
        def save_model(self, filename: str) -> None:
            raise OSError(f"{filename}: no space left on device")

    with pytest.raises(OSError, match="no space left"):
        write_bundle(target, replace(parts, booster=FullDisk()))  # type: ignore[arg-type]
    assert (target / META_FILE).read_text() == before
    assert [p.name for p in tmp_path.iterdir()] == ["live"]  # no temp folder left behind


def _dead_pid() -> int:
    """The id of a process that has exited."""
    import subprocess
    import sys

    proc = subprocess.Popen([sys.executable, "-c", "pass"])
    proc.wait()
    return proc.pid


def test_a_rewrite_swaps_the_folder_whole_and_leaves_nothing_beside_it(
    saved: Path, tmp_path: Path
) -> None:
    target = build_scorer(version="1", seed=1, rounds=5).save(tmp_path / "live")
    inode = target.stat().st_ino
    Scorer.load(saved).save(target)
    assert Scorer.load(target).version == "3"
    assert target.stat().st_ino != inode  # a new folder took the old one's place
    assert [p.name for p in tmp_path.iterdir()] == ["live"]


def test_the_next_write_removes_what_a_killed_write_left(saved: Path, tmp_path: Path) -> None:
    target = Scorer.load(saved).save(tmp_path / "live")
    dead = _dead_pid()
    (tmp_path / f".live.{dead}.x1y2z3").mkdir()  # killed while writing its temp folder
    (tmp_path / ".live.1.abcdef").mkdir()  # pid 1 lives: another writer's, left alone
    Scorer.load(saved).save(target)
    assert sorted(p.name for p in tmp_path.iterdir()) == [".live.1.abcdef", "live"]


def test_a_write_killed_between_its_two_renames_gets_the_old_bundle_back(
    saved: Path, tmp_path: Path
) -> None:
    """Where the file system cannot exchange two folders, a write renames the old bundle aside
    first; killed right then, the next write restores it before anything else."""
    aside = Scorer.load(saved).save(tmp_path / f".live.old-{_dead_pid()}")
    before = (aside / META_FILE).read_text()
    failing = replace(read_bundle(saved), booster=_FullDisk())
    with pytest.raises(OSError, match="no space left"):
        write_bundle(tmp_path / "live", failing)  # type: ignore[arg-type]
    assert ((tmp_path / "live") / META_FILE).read_text() == before
    assert [p.name for p in tmp_path.iterdir()] == ["live"]


class _FullDisk:
    def save_model(self, filename: str) -> None:
        raise OSError(f"{filename}: no space left on device")


def test_a_replaced_scorer_is_freed_without_the_cyclic_collector(saved: Path) -> None:
    """The service only freezes the heap on a swap (no full collection): that is safe only while
    a scorer holds no reference cycle, so that dropping the last handle frees it."""
    import gc
    import weakref

    from predictive_scoring.serve.state import ModelHandle

    gc.disable()
    try:
        scorer = Scorer.load(saved)
        handle = ModelHandle.of(scorer)
        lead = LeadInput("a", events=[("web_visit", NOW - 3_600)], created_at=NOW - 86_400)
        assert handle.scorer.score([lead], now=NOW, n_reasons=3)[0].positive is not None
        alive = weakref.ref(scorer)
        del scorer, handle
        assert alive() is None
    finally:
        gc.enable()
