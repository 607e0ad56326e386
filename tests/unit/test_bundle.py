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
