"""LightGBM training with native categoricals, early stopping on valid, and calibration.

Also the train stage's output and the :class:`~predictive_scoring.scoring.Scorer` built from it,
through which every later stage measures the model it exports.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import lightgbm as lgb
import numpy as np
import pandas as pd

from predictive_scoring.calibration import Calibrator, fit_calibrator
from predictive_scoring.config import TrainParams
from predictive_scoring.errors import BundleError, FeatureError
from predictive_scoring.features import FeatureDefinition, encode_categories
from predictive_scoring.ingress import input_profile
from predictive_scoring.io import read_json, write_json

if TYPE_CHECKING:
    from predictive_scoring.scoring import Scorer
    from predictive_scoring.thresholds import Thresholds

__all__ = [
    "MAX_LEVELS",
    "STAGING_MODEL",
    "STAGING_RUN",
    "STAGING_TRAINING",
    "TrainingResult",
    "category_levels",
    "encode_frame",
    "scorer_probabilities",
    "staging_run_id",
    "staging_scorer",
    "train_model",
    "write_staging",
]

logger = logging.getLogger(__name__)

MAX_LEVELS = 200
# The train stage's output (models/staging): the model text, and the calibrator, category levels
# and feature definition; beside them, the MLflow run they belong to. The run id differs on every
# `dvc repro`, so it sits in a file of its own that .dvcignore keeps out of the output's hash:
# a clean repro writes the dvc.lock that is committed.
STAGING_MODEL = "model.txt"
STAGING_TRAINING = "training.json"
STAGING_RUN = "run.json"


def category_levels(
    frame: pd.DataFrame, definition: FeatureDefinition, *, max_levels: int = MAX_LEVELS
) -> dict[str, list[str]]:
    """Levels of each categorical feature seen in training, most frequent first.

    Rarer levels than the ``max_levels`` most frequent ones score as unseen (missing).
    """
    levels: dict[str, list[str]] = {}
    for name in definition.categorical_features:
        counts = frame[name].dropna().astype(str).value_counts()
        ordered = sorted(counts.items(), key=lambda kv: (-kv[1], kv[0]))
        levels[name] = [str(level) for level, _ in ordered[:max_levels]]
    return levels


def encode_frame(
    frame: pd.DataFrame, definition: FeatureDefinition, levels: Mapping[str, list[str]]
) -> np.ndarray:
    """The model matrix of a featurised frame: float64, categoricals as level codes."""
    missing = [n for n in definition.feature_names if n not in frame.columns]
    if missing:
        raise FeatureError(f"feature columns missing from the featurised data: {missing}")
    cols = []
    for name in definition.feature_names:
        if name in levels:
            values = [v if isinstance(v, str) else None for v in frame[name].tolist()]
            cols.append(encode_categories(values, levels[name]))
        else:
            cols.append(pd.to_numeric(frame[name], errors="coerce").to_numpy(dtype=np.float64))
    if not cols:
        return np.empty((len(frame), 0))
    return np.ascontiguousarray(np.column_stack(cols), dtype=np.float64)


@dataclass
class TrainingResult:
    booster: lgb.Booster
    calibrator: Calibrator
    levels: dict[str, list[str]]
    best_iteration: int
    feature_names: list[str] = field(default_factory=list)
    raw: dict[str, np.ndarray] = field(default_factory=dict)
    calibrated: dict[str, np.ndarray] = field(default_factory=dict)
    labels: dict[str, np.ndarray] = field(default_factory=dict)
    inputs: dict[str, list[str]] = field(default_factory=dict)

    def importance(self) -> pd.DataFrame:
        """Gain and split importance per feature, highest gain first."""
        names = self.feature_names or self.booster.feature_name()
        return (
            pd.DataFrame(
                {
                    "feature": names,
                    "gain": self.booster.feature_importance("gain"),
                    "split": self.booster.feature_importance("split"),
                }
            )
            .sort_values("gain", ascending=False)
            .reset_index(drop=True)
        )


def lightgbm_names(names: list[str]) -> list[str]:
    """Feature names LightGBM accepts (no JSON punctuation), unique, in the same order.

    CRM exports have headers like "Lead Source [web]"; the definition keeps them as they are and
    only the model text uses these.
    """
    out: list[str] = []
    for name in names:
        safe = re.sub(r"[^0-9A-Za-z_]+", "_", name).strip("_") or "feature"
        candidate, k = safe, 1
        while candidate in out:
            k += 1
            candidate = f"{safe}_{k}"
        out.append(candidate)
    return out


def lgb_params(params: TrainParams) -> dict[str, Any]:
    """LightGBM parameters from the train section; deterministic for a fixed seed."""
    return {
        "objective": params.objective,
        "learning_rate": params.learning_rate,
        "num_leaves": params.num_leaves,
        "max_depth": params.max_depth,
        "min_child_samples": params.min_child_samples,
        "feature_fraction": params.feature_fraction,
        "bagging_fraction": params.bagging_fraction,
        "bagging_freq": params.bagging_freq,
        "lambda_l2": params.lambda_l2,
        "max_cat_to_onehot": params.max_cat_to_onehot,
        "cat_smooth": params.cat_smooth,
        "seed": params.seed,
        "deterministic": True,
        "force_row_wise": True,
        "num_threads": params.num_threads,
        "verbosity": -1,
    }


@contextmanager
def _rounds_bar(*, enabled: bool, total: int) -> Iterator[Callable[[Any], None]]:
    """A LightGBM callback that advances a rich progress bar (a no-op when disabled)."""
    if not enabled:
        yield lambda env: None
        return
    from rich.progress import Progress

    with Progress(transient=True) as bar:
        task = bar.add_task("boosting (early stopping on valid)", total=total)
        yield lambda env: bar.update(task, completed=env.iteration + 1)


def train_model(
    frames: Mapping[str, pd.DataFrame],
    definition: FeatureDefinition,
    params: TrainParams,
    *,
    label: str = "label",
    progress: bool = False,
) -> TrainingResult:
    """Fit on ``train``, stop early and calibrate on ``valid``; predict every split given.

    ``progress`` shows a progress bar over boosting rounds (for a terminal, not CI logs).
    """
    for split in ("train", "valid"):
        if split not in frames or frames[split].empty:
            raise FeatureError(f"the '{split}' split is empty; add data or change the split")
        if frames[split][label].nunique() < 2:
            raise FeatureError(
                f"the '{split}' split has only one class in '{label}'; widen the horizon "
                "or add data"
            )
    levels = category_levels(frames["train"], definition)
    names = definition.feature_names
    cats = definition.categorical_features
    matrices = {s: encode_frame(f, definition, levels) for s, f in frames.items()}
    labels = {s: f[label].to_numpy(dtype=np.int64) for s, f in frames.items()}
    dtrain = lgb.Dataset(
        matrices["train"],
        label=labels["train"],
        feature_name=lightgbm_names(names),
        categorical_feature=[names.index(c) for c in cats],
        free_raw_data=False,
    )
    dvalid = lgb.Dataset(matrices["valid"], label=labels["valid"], reference=dtrain)
    callbacks: list[Any] = [
        lgb.early_stopping(params.early_stopping_rounds, verbose=False),
        lgb.log_evaluation(period=0),
    ]
    with _rounds_bar(enabled=progress, total=params.n_estimators) as advance:
        booster = lgb.train(
            lgb_params(params),
            dtrain,
            num_boost_round=params.n_estimators,
            valid_sets=[dvalid],
            valid_names=["valid"],
            callbacks=[*callbacks, advance],
        )
    best = booster.best_iteration or booster.current_iteration()
    # Keep only the trees up to the best iteration, so every consumer of the model text agrees.
    booster = lgb.Booster(model_str=booster.model_to_string(num_iteration=best))
    raw = {s: np.asarray(booster.predict(m), dtype=np.float64) for s, m in matrices.items()}
    calibrator = fit_calibrator(
        raw["valid"], labels["valid"], method=params.calibration, seed=params.seed
    )
    calibrated = {s: calibrator.transform(p) for s, p in raw.items()}
    logger.info("trained %d trees (best iteration), calibration=%s", best, calibrator.method)
    return TrainingResult(
        booster=booster,
        calibrator=calibrator,
        levels=levels,
        best_iteration=int(best),
        feature_names=list(names),
        raw=raw,
        calibrated=calibrated,
        labels=labels,
        inputs=input_profile(frames["train"], definition),
    )


def write_staging(
    out: Path, result: TrainingResult, definition: FeatureDefinition, *, run_id: str
) -> None:
    """Write the model text and training.json, from which :func:`staging_scorer` builds the
    scorer that the thresholds, evaluate and export stages all use, and run.json."""
    out.mkdir(parents=True, exist_ok=True)
    result.booster.save_model(str(out / STAGING_MODEL))
    training = {
        "best_iteration": result.best_iteration,
        "levels": result.levels,
        "calibrator": result.calibrator.to_dict(),
        "definition": definition.to_dict(),
        "inputs": result.inputs,
    }
    write_json(out / STAGING_TRAINING, training)
    write_json(out / STAGING_RUN, {"run_id": run_id})


def staging_run_id(staging: Path) -> str:
    """The MLflow run that trained the model in ``staging`` (thresholds, evaluate and export log
    to it)."""
    path = staging / STAGING_RUN
    if not path.is_file():
        raise BundleError(
            f"{path} is missing: the MLflow run of {staging} is unknown; run `dvc repro -f train`"
        )
    return str(read_json(path)["run_id"])


def staging_scorer(
    staging: Path,
    *,
    thresholds: Thresholds | None = None,
    metadata: Mapping[str, Any] | None = None,
) -> Scorer:
    """The scorer built from the train stage's output: the object export writes as the bundle.

    The thresholds stage needs the scorer's probabilities before any cut-off exists; without
    ``thresholds`` the scorer gets placeholder cut-offs, which its probabilities never depend on.
    """
    from predictive_scoring.scoring import Scorer
    from predictive_scoring.thresholds import Thresholds

    model, meta = staging / STAGING_MODEL, staging / STAGING_TRAINING
    for required in (model, meta):
        if not required.is_file():
            raise BundleError(f"{required}: not found; run the train stage (`dvc repro train`)")
    training = read_json(meta)
    try:
        booster = lgb.Booster(model_file=str(model))
    except lgb.basic.LightGBMError as exc:
        raise BundleError(f"{model}: LightGBM cannot read it ({exc}); re-run train") from exc
    unchosen = {"mql": "not chosen yet", "sql": "not chosen yet"}
    return Scorer(
        definition=FeatureDefinition.from_dict(training["definition"]),
        levels=training["levels"],
        booster=booster,
        calibrator=Calibrator.from_dict(training["calibrator"]),
        thresholds=thresholds or Thresholds(mql=0.0, sql=1.0, base_rate=0.0, method=unchosen),
        metadata={"inputs": training.get("inputs", {}), **(metadata or {})},
    )


def scorer_probabilities(scorer: Scorer, frame: pd.DataFrame) -> np.ndarray:
    """A scorer's calibrated probabilities for featurised snapshots, encoded with the scorer's
    own definition and category levels (as promotion measures a bundle)."""
    return scorer.predict_matrix(encode_frame(frame, scorer.definition, scorer.levels))
