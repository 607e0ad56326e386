"""Probability calibration: isotonic or Platt, chosen out of fold on the validation split."""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any, Literal

import numpy as np
from sklearn.isotonic import IsotonicRegression
from sklearn.linear_model import LogisticRegression
from sklearn.metrics import log_loss
from sklearn.model_selection import StratifiedKFold

__all__ = ["Calibrator", "fit_calibrator"]

Method = Literal["isotonic", "platt", "none"]
_EPS = 1e-6


def _clip(p: np.ndarray) -> np.ndarray:
    """``np.clip(p, _EPS, 1 - _EPS)`` as the two ufuncs it is (the same values, NaN kept), without
    ``np.clip``'s Python wrappers, which cost a one-lead request more than the arithmetic."""
    return np.asarray(np.minimum(np.maximum(p, _EPS), 1 - _EPS), dtype=np.float64)


def _logit(p: np.ndarray) -> np.ndarray:
    p = _clip(p)
    return np.asarray(np.log(p / (1 - p)), dtype=np.float64)


@dataclass(frozen=True)
class Calibrator:
    """Maps raw model probabilities to calibrated ones; stored as plain numbers, no pickle."""

    method: Method
    x: tuple[float, ...] = ()
    y: tuple[float, ...] = ()
    a: float = 1.0
    b: float = 0.0
    scores: dict[str, float] = field(default_factory=dict)
    _x: np.ndarray = field(init=False, repr=False, compare=False)
    _y: np.ndarray = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        # The isotonic knots as arrays once, not per call (a one-lead request pays for it).
        object.__setattr__(self, "_x", np.asarray(self.x, dtype=np.float64))
        object.__setattr__(self, "_y", np.asarray(self.y, dtype=np.float64))

    def transform(self, p: np.ndarray) -> np.ndarray:
        p = np.asarray(p, dtype=np.float64)
        if self.method == "isotonic":
            out = np.interp(p, self._x, self._y)
        elif self.method == "platt":
            out = 1.0 / (1.0 + np.exp(-(self.a * _logit(p) + self.b)))
        else:
            out = p
        return _clip(out)

    def to_dict(self) -> dict[str, Any]:
        return {
            "method": self.method,
            "x": list(self.x),
            "y": list(self.y),
            "a": self.a,
            "b": self.b,
            "scores": dict(self.scores),
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Calibrator:
        return cls(
            method=data["method"],
            x=tuple(float(v) for v in data.get("x", ())),
            y=tuple(float(v) for v in data.get("y", ())),
            a=float(data.get("a", 1.0)),
            b=float(data.get("b", 0.0)),
            scores={k: float(v) for k, v in data.get("scores", {}).items()},
        )


def _fit(method: Method, p: np.ndarray, y: np.ndarray) -> Calibrator:
    if method == "isotonic":
        iso = IsotonicRegression(y_min=_EPS, y_max=1 - _EPS, out_of_bounds="clip").fit(p, y)
        return Calibrator(
            method="isotonic",
            x=tuple(float(v) for v in iso.X_thresholds_),
            y=tuple(float(v) for v in iso.y_thresholds_),
        )
    if method == "platt":
        lr = LogisticRegression(C=1e6).fit(_logit(p).reshape(-1, 1), y)
        return Calibrator(method="platt", a=float(lr.coef_[0, 0]), b=float(lr.intercept_[0]))
    return Calibrator(method="none")


def fit_calibrator(
    p: np.ndarray,
    y: np.ndarray,
    *,
    method: Literal["auto", "isotonic", "platt", "none"],
    seed: int,
) -> Calibrator:
    """Fit on validation predictions; "auto" picks the lower out-of-fold log loss."""
    p = np.asarray(p, dtype=np.float64)
    y = np.asarray(y, dtype=np.int64)
    candidates: list[Method] = ["isotonic", "platt"] if method == "auto" else [method]
    scores: dict[str, float] = {}
    n_pos = int(y.sum())
    folds = min(5, n_pos, len(y) - n_pos)
    if len(candidates) > 1 and folds >= 2:
        skf = StratifiedKFold(n_splits=folds, shuffle=True, random_state=seed)
        for cand in candidates:
            oof = np.empty_like(p)
            for fit_idx, eval_idx in skf.split(p, y):
                oof[eval_idx] = _fit(cand, p[fit_idx], y[fit_idx]).transform(p[eval_idx])
            scores[cand] = float(log_loss(y, oof, labels=[0, 1]))
        best: Method = min(scores, key=lambda k: scores[k])  # type: ignore[arg-type]
    else:
        best = candidates[0]
    fitted = _fit(best, p, y)
    return Calibrator(
        method=fitted.method,
        x=fitted.x,
        y=fitted.y,
        a=fitted.a,
        b=fitted.b,
        scores={k: v for k, v in scores.items() if not math.isnan(v)},
    )
