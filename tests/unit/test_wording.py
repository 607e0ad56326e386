"""The docs use the API's words: the lowest band is the stage `nurture`, never "the pool"."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from predictive_scoring.thresholds import STAGE_NAMES

ROOT = Path(__file__).resolve().parents[2]
DOCS = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]


@pytest.mark.parametrize("doc", DOCS, ids=lambda p: p.name)
def test_the_lowest_band_has_the_apis_name(doc: Path) -> None:
    text = doc.read_text(encoding="utf-8")
    # "the pool" or a `pool` stage or band; a thread or connection pool is another thing
    band = r"\bthe pool\b|`pool`|\bpool (?:stage|band)\b"
    pools = [m.group(0) for m in re.finditer(band, text, re.I)]
    assert pools == [], f"{doc.name} calls the lowest band 'pool'; the API says {STAGE_NAMES[-1]}"


def test_the_readme_names_the_lowest_stage_as_the_api_does() -> None:
    assert STAGE_NAMES[-1] == "nurture"
    assert "`nurture`" in (ROOT / "README.md").read_text(encoding="utf-8")
