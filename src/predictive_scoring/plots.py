"""Evaluation plots as PNG files, and downsampled curve points for DVC plots.

Figures are built with ``matplotlib.figure.Figure`` directly, never pyplot: no global state, no
backend selection at import, and PNGs render through Agg.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import numpy.typing as npt
from matplotlib.axes import Axes
from matplotlib.figure import Figure
from sklearn.metrics import (
    average_precision_score,
    precision_recall_curve,
    roc_auc_score,
    roc_curve,
)

from predictive_scoring.errors import FeatureError
from predictive_scoring.evaluate import calibration_bins, gains_curve
from predictive_scoring.thresholds import Thresholds, check_labels_and_scores

__all__ = [
    "curve_points",
    "plot_calibration",
    "plot_gains",
    "plot_importance",
    "plot_pr",
    "plot_roc",
    "plot_score_histogram",
]

logger = logging.getLogger(__name__)

DPI = 100
_SIZE = (6.4, 4.8)


def _downsample(n: int, max_points: int) -> npt.NDArray[np.int64]:
    """Indices of at most ``max_points`` evenly spread points, first and last always kept."""
    if n <= max_points:
        return np.arange(n, dtype=np.int64)
    return np.unique(np.linspace(0, n - 1, max_points).round().astype(np.int64))


def curve_points(
    y: npt.ArrayLike, p: npt.ArrayLike, *, max_points: int = 200, bins: int = 10
) -> dict[str, list[dict[str, float]]]:
    """ROC, PR, calibration and gains points (at most ``max_points`` each) for DVC JSON plots."""
    y_arr, p_arr = check_labels_and_scores(y, p, context="curve points")
    fpr, tpr, _ = roc_curve(y_arr, p_arr)
    precision, recall, _ = precision_recall_curve(y_arr, p_arr)
    predicted, observed, counts = calibration_bins(y_arr, p_arr, bins=bins)
    fractions, captures = gains_curve(y_arr, p_arr)
    grid = np.linspace(0.0, 1.0, min(max_points, 101))
    grid_capture = np.interp(grid, fractions, captures)
    roc_idx = _downsample(fpr.size, max_points)
    # precision_recall_curve runs from low to high thresholds; reverse so recall rises
    precision, recall = precision[::-1], recall[::-1]
    pr_idx = _downsample(recall.size, max_points)
    return {
        "roc": [{"fpr": float(fpr[i]), "tpr": float(tpr[i])} for i in roc_idx],
        "pr": [{"recall": float(recall[i]), "precision": float(precision[i])} for i in pr_idx],
        "calibration": [
            {"predicted": float(a), "observed": float(b), "count": float(c)}
            for a, b, c in zip(predicted, observed, counts, strict=True)
        ],
        "gains": [
            {"fraction": float(f), "capture": float(c)}
            for f, c in zip(grid, grid_capture, strict=True)
        ],
    }


def _save(fig: Figure, path: str | Path) -> Path:
    out = Path(path)
    out.parent.mkdir(parents=True, exist_ok=True)
    fig.tight_layout()
    fig.savefig(out, dpi=DPI, format="png")
    logger.debug("wrote %s", out)
    return out


def _new_axes(title: str, *, xlabel: str, ylabel: str) -> tuple[Figure, Axes]:
    fig = Figure(figsize=_SIZE, dpi=DPI)
    ax = fig.add_subplot()
    ax.set_title(title)
    ax.set_xlabel(xlabel)
    ax.set_ylabel(ylabel)
    ax.grid(alpha=0.3)
    return fig, ax


def plot_roc(
    y: npt.ArrayLike, p: npt.ArrayLike, path: str | Path, *, title: str = "ROC curve"
) -> Path:
    """ROC curve with its AUC and the random diagonal."""
    y_arr, p_arr = check_labels_and_scores(y, p, context="ROC plot")
    fpr, tpr, _ = roc_curve(y_arr, p_arr)
    auc = float(roc_auc_score(y_arr, p_arr))
    fig, ax = _new_axes(title, xlabel="False positive rate", ylabel="True positive rate")
    ax.plot(fpr, tpr, label=f"model (AUC = {auc:.3f})")
    ax.plot([0, 1], [0, 1], linestyle="--", color="grey", label="random")
    ax.set_xlim(0, 1)
    ax.set_ylim(0, 1)
    ax.legend(loc="lower right")
    return _save(fig, path)


def plot_pr(
    y: npt.ArrayLike,
    p: npt.ArrayLike,
    path: str | Path,
    *,
    title: str = "Precision-recall curve",
) -> Path:
    """Precision-recall curve with average precision and the base rate as the random baseline."""
    y_arr, p_arr = check_labels_and_scores(y, p, context="PR plot")
    precision, recall, _ = precision_recall_curve(y_arr, p_arr)
    ap = float(average_precision_score(y_arr, p_arr))
    fig, ax = _new_axes(title, xlabel="Recall", ylabel="Precision")
    ax.step(recall, precision, where="post", label=f"model (AP = {ap:.3f})")
    base = float(y_arr.mean())
    ax.axhline(base, linestyle="--", color="grey", label=f"base rate ({base:.3f})")
    ax.set_xlim(0, 1)
    ax.set_ylim(0, 1.02)
    ax.legend(loc="upper right")
    return _save(fig, path)


def plot_calibration(
    y: npt.ArrayLike,
    p: npt.ArrayLike,
    path: str | Path,
    *,
    bins: int = 10,
    title: str = "Calibration (reliability curve)",
) -> Path:
    """Observed vs predicted rate per equal-width bin, with the diagonal and the bin counts."""
    predicted, observed, counts = calibration_bins(y, p, bins=bins)
    fig = Figure(figsize=(6.4, 6.4), dpi=DPI)
    top, bottom = fig.subplots(2, 1, sharex=True, gridspec_kw={"height_ratios": [3, 1]})
    top.plot([0, 1], [0, 1], linestyle="--", color="grey", label="perfectly calibrated")
    top.plot(predicted, observed, marker="o", label="model")
    top.set_title(title)
    top.set_ylabel("Observed conversion rate")
    top.set_xlim(0, 1)
    top.set_ylim(0, 1)
    top.grid(alpha=0.3)
    top.legend(loc="upper left")
    edges = np.linspace(0.0, 1.0, bins + 1)
    bin_idx = np.minimum((predicted * bins).astype(np.int64), bins - 1)
    bottom.bar(edges[bin_idx], counts, width=1.0 / bins, align="edge", edgecolor="white")
    bottom.set_yscale("log")
    bottom.set_xlabel("Predicted probability")
    bottom.set_ylabel("Leads per bin")
    bottom.grid(alpha=0.3)
    return _save(fig, path)


def plot_gains(
    y: npt.ArrayLike,
    p: npt.ArrayLike,
    path: str | Path,
    *,
    title: str = "Cumulative gains",
) -> Path:
    """Share of conversions captured vs share of leads worked, against random ordering."""
    fractions, captures = gains_curve(y, p)
    fig, ax = _new_axes(
        title, xlabel="Share of leads (highest scores first)", ylabel="Share of conversions"
    )
    ax.plot(fractions, captures, label="model")
    ax.plot([0, 1], [0, 1], linestyle="--", color="grey", label="random")
    ax.set_xlim(0, 1)
    ax.set_ylim(0, 1.02)
    ax.legend(loc="lower right")
    return _save(fig, path)


def plot_score_histogram(
    p: npt.ArrayLike,
    thresholds: Thresholds,
    path: str | Path,
    *,
    bins: int = 50,
    title: str = "Score distribution and MQL/SQL cut-offs",
) -> Path:
    """Histogram of probabilities with the MQL and SQL cut-offs as labelled vertical lines."""
    p_arr = np.asarray(p, dtype=np.float64).ravel()
    p_arr = p_arr[np.isfinite(p_arr)]
    # zoom on the populated range: scores of rare outcomes often stay far below 1
    upper = min(1.0, 1.05 * max(float(p_arr.max(initial=0.0)), thresholds.sql))
    fig, ax = _new_axes(title, xlabel="Predicted probability", ylabel="Leads")
    ax.hist(p_arr, bins=bins, range=(0.0, upper), color="tab:blue", alpha=0.8)
    for value, name, colour in (
        (thresholds.sql, "SQL", "tab:red"),
        (thresholds.mql, "MQL", "tab:orange"),
    ):
        share = float((p_arr >= value).mean()) if p_arr.size else 0.0
        ax.axvline(
            value,
            color=colour,
            linestyle="--",
            linewidth=1.5,
            label=f"{name} cut-off {value:.3f} ({share:.1%} of leads at or above)",
        )
    ax.set_yscale("log")
    ax.set_xlim(0, upper)
    ax.legend(loc="upper right")
    return _save(fig, path)


def plot_importance(
    names: Sequence[str],
    gains: Sequence[float] | npt.ArrayLike,
    path: str | Path,
    *,
    top: int = 20,
    title: str = "Feature importance (gain)",
) -> Path:
    """Horizontal bars of the ``top`` features by gain, largest at the top."""
    gain_arr = np.asarray(gains, dtype=np.float64).ravel()
    if gain_arr.size != len(names):
        raise FeatureError(
            f"plot_importance: {len(names)} feature names but {gain_arr.size} gains; "
            "pass the names in the model's feature order"
        )
    order = np.argsort(-gain_arr, kind="stable")[:top][::-1]
    fig = Figure(figsize=(7.5, max(3.0, 0.3 * order.size + 1.2)), dpi=DPI)
    ax = fig.add_subplot()
    ax.barh([str(names[i]) for i in order], gain_arr[order], color="tab:blue")
    ax.set_title(title)
    ax.set_xlabel("Total gain")
    ax.grid(axis="x", alpha=0.3)
    return _save(fig, path)
