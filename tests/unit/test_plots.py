"""PNG writers and the downsampled curve points for DVC plots."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from predictive_scoring.errors import FeatureError
from predictive_scoring.plots import (
    curve_points,
    plot_calibration,
    plot_gains,
    plot_importance,
    plot_pr,
    plot_roc,
    plot_score_histogram,
)
from predictive_scoring.thresholds import Thresholds

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


@pytest.fixture
def scored() -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(0)
    p = rng.beta(1, 6, size=5000)
    y = (rng.random(5000) < p).astype(int)
    return y, p


def _is_png(path: Path) -> bool:
    return path.stat().st_size > 5000 and path.read_bytes()[:8] == PNG_MAGIC


def test_plots_write_png_files(scored: tuple[np.ndarray, np.ndarray], tmp_path: Path) -> None:
    y, p = scored
    t = Thresholds(mql=0.1, sql=0.35, base_rate=float(y.mean()))
    written = [
        plot_roc(y, p, tmp_path / "roc.png"),
        plot_pr(y, p, tmp_path / "pr.png"),
        plot_calibration(y, p, tmp_path / "calibration.png"),
        plot_gains(y, p, tmp_path / "gains.png"),
        plot_score_histogram(p, t, tmp_path / "nested" / "scores.png"),
        plot_importance(
            [f"feature_{i}" for i in range(30)], np.arange(30.0), tmp_path / "importance.png"
        ),
    ]
    assert all(_is_png(path) for path in written)
    assert written[4] == tmp_path / "nested" / "scores.png"


def test_plot_importance_checks_lengths(tmp_path: Path) -> None:
    with pytest.raises(FeatureError, match="2 feature names but 3 gains"):
        plot_importance(["a", "b"], [1.0, 2.0, 3.0], tmp_path / "x.png")


def test_curve_points_are_bounded_and_json_ready(scored: tuple[np.ndarray, np.ndarray]) -> None:
    y, p = scored
    points = curve_points(y, p)
    assert set(points) == {"roc", "pr", "calibration", "gains"}
    assert all(1 < len(rows) <= 200 for rows in points.values())
    assert sum(r["count"] for r in points["calibration"]) == len(p)
    assert all(r["count"] > 0 for r in points["calibration"])  # empty bins are left out
    roc = points["roc"]
    assert (roc[0]["fpr"], roc[0]["tpr"]) == (0.0, 0.0)
    assert (roc[-1]["fpr"], roc[-1]["tpr"]) == (1.0, 1.0)
    assert points["gains"][0] == {"fraction": 0.0, "capture": 0.0}
    assert points["gains"][-1] == {"fraction": 1.0, "capture": 1.0}
    recalls = [r["recall"] for r in points["pr"]]
    assert recalls == sorted(recalls)
    assert set(points["pr"][0]) == {"recall", "precision"}
    json.dumps(points)


def test_curve_points_keep_small_curves_whole() -> None:
    y = np.array([0, 1, 0, 1])
    p = np.array([0.1, 0.4, 0.35, 0.8])
    points = curve_points(y, p)
    assert len(points["pr"]) == 5
    assert [r["predicted"] for r in points["calibration"]] == [0.1, 0.35, 0.4, 0.8]
