"""The funnel report as a browser shows it: headless Chromium, offline, no complaints."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from tests.browser import CHROMIUM_ENV, is_local, visit

from predictive_scoring.config import DataParams, GenerateParams, Params
from predictive_scoring.funnel import build_funnel_report, render_html
from predictive_scoring.schema import load_raw
from predictive_scoring.synth import generate_demo
from predictive_scoring.thresholds import Thresholds

pytestmark = pytest.mark.browser


@pytest.fixture(scope="module")
def report_page(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The report of a small demo funnel, with scored test snapshots for the grade summary."""
    root = tmp_path_factory.mktemp("funnel-browser")
    generate_demo(root / "raw", GenerateParams(n_leads=600, events_per_lead=10))
    params = Params(data=DataParams(dir=str(root / "raw")))
    raw = load_raw(params.data, root=root / "raw")
    rng = np.random.default_rng(0)
    p = rng.beta(1, 6, size=400)
    predictions = pd.DataFrame(
        {"split": "test", "p": p, "label": (rng.random(400) < p).astype("int64")}
    )
    report = build_funnel_report(
        raw,
        params,
        predictions=predictions,
        thresholds=Thresholds(mql=0.1, sql=0.3, base_rate=0.12),
    )
    page = root / "funnel.html"
    page.write_text(render_html(report), encoding="utf-8")
    return page


def test_report_renders_offline_without_console_errors(report_page: Path) -> None:
    found = visit(report_page.as_uri())
    assert found.console_errors == []
    assert found.page_errors == []
    assert found.external_requests == []
    assert all(is_local(url) for url in found.requests)
    assert found.title.startswith("Funnel report")
    # what the reader sees first: the summary, then the plots and tables
    assert found.text.index("Summary") < found.text.index("Volume per stage and month")
    for words in ("MQL", "SQL", "Median time between stages", "How each grade converted"):
        assert words in found.text


def test_the_check_sees_an_external_request_and_a_console_error(tmp_path: Path) -> None:
    """The check itself: a page that reaches out and logs an error is caught, and blocked."""
    page = tmp_path / "bad.html"
    page.write_text(
        "<!DOCTYPE html><html><head><link rel='icon' href='data:,'>"
        "<script>console.error('broken')</script></head>"
        "<body><img src='https://cdn.example.com/x.png'></body></html>"
    )
    found = visit(page.as_uri())
    assert found.external_requests == ["https://cdn.example.com/x.png"]
    assert "broken" in found.console_errors


def test_without_chromium_the_browser_tests_skip_saying_how_to_get_it(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    pytest.importorskip("playwright", reason="the dev extra's playwright is checked first")
    monkeypatch.setenv(CHROMIUM_ENV, str(tmp_path / "no-such-chromium"))
    with pytest.raises(pytest.skip.Exception) as skipped:
        visit((tmp_path / "any.html").as_uri())
    assert "apt-get install -y chromium" in str(skipped.value)
