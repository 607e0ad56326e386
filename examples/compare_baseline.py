"""Compare a run's model with a plain LightGBM (default settings) on the SAME train/test split.

Run it from the project root after `dvc repro`:

    python examples/compare_baseline.py                # reads data/features and metrics/
    python examples/compare_baseline.py --json out.json

The baseline is ``lgb.LGBMClassifier()`` with default parameters, fitted on the train split only
(no early stopping, no calibration), categorical features as pandas ``category``. Ours is read
from models/staging/predictions.parquet (the calibrated test probabilities the evaluate stage
measured), so both are scored on exactly the same test rows.
"""

from __future__ import annotations

import argparse
import json
import sys
import warnings
from pathlib import Path
from typing import Any

import lightgbm as lgb
import numpy as np
import pandas as pd
from sklearn.metrics import average_precision_score, roc_auc_score

from predictive_scoring.evaluate import expected_calibration_error
from predictive_scoring.features import FeatureDefinition
from predictive_scoring.io import read_json


def baseline_matrices(
    train: pd.DataFrame, test: pd.DataFrame, definition: FeatureDefinition
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Feature frames for the baseline: numbers as float, categoricals with the train levels."""
    names = definition.feature_names
    x_train, x_test = train[names].copy(), test[names].copy()
    for name in names:
        if name in definition.categorical_features:
            levels = sorted(train[name].dropna().astype(str).unique())
            dtype = pd.CategoricalDtype(levels)
            x_train[name] = train[name].astype("object").astype(dtype)
            seen = test[name].where(test[name].isin(levels)).astype("object")
            x_test[name] = seen.astype(dtype)  # unseen levels become missing
        else:
            x_train[name] = pd.to_numeric(train[name], errors="coerce").astype("float64")
            x_test[name] = pd.to_numeric(test[name], errors="coerce").astype("float64")
    return x_train, x_test


def scores(y: np.ndarray, p: np.ndarray, *, bins: int = 10) -> dict[str, float]:
    """ROC-AUC, PR-AUC and ECE of probabilities ``p`` for 0/1 labels ``y``."""
    return {
        "roc_auc": float(roc_auc_score(y, p)),
        "pr_auc": float(average_precision_score(y, p)),
        "ece": expected_calibration_error(y, p, bins=bins),
    }


def compare(*, features: Path, staging: Path, seed: int = 42) -> dict[str, Any]:
    """Ours vs the default-LightGBM baseline on the run's test split."""
    definition = FeatureDefinition.from_dict(read_json(features / "definition.json"))
    train = pd.read_parquet(features / "train.parquet")
    test = pd.read_parquet(features / "test.parquet")
    summary = read_json(features / "summary.json") if (features / "summary.json").exists() else {}
    x_train, x_test = baseline_matrices(train, test, definition)
    model = lgb.LGBMClassifier(random_state=seed, verbosity=-1)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        model.fit(x_train, train["label"].to_numpy())
        p_base = model.predict_proba(x_test)[:, 1]
    preds = pd.read_parquet(staging / "predictions.parquet")
    ours = preds[preds["split"] == "test"]
    key = ["lead_id", "as_of_s"]
    aligned = test[[*key, "label"]].merge(ours[[*key, "p"]], on=key, how="left", validate="1:1")
    if aligned["p"].isna().any():
        raise SystemExit(
            f"{staging / 'predictions.parquet'} does not cover {features / 'test.parquet'}: "
            "re-run `dvc repro` so both come from the same featurize run"
        )
    y = test["label"].to_numpy(dtype=np.int64)
    return {
        "split": summary.get("split", "unknown"),
        "n_train": len(train),
        "n_test": len(test),
        "test_positive_rate": float(y.mean()),
        "ours": scores(y, aligned["p"].to_numpy(dtype=np.float64)),
        "baseline": scores(y, np.asarray(p_base, dtype=np.float64)),
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--features", type=Path, default=Path("data/features"))
    parser.add_argument("--staging", type=Path, default=Path("models/staging"))
    parser.add_argument("--json", type=Path, default=None, help="also write the numbers here")
    args = parser.parse_args()
    result = compare(features=args.features, staging=args.staging)
    print(
        f"test split: {result['split']}, {result['n_test']} rows, "
        f"{100 * result['test_positive_rate']:.1f}% positive (train {result['n_train']} rows)"
    )
    print(f"{'model':<10}{'ROC-AUC':>9}{'PR-AUC':>9}{'ECE':>8}")
    for name in ("ours", "baseline"):
        m = result[name]
        print(f"{name:<10}{m['roc_auc']:>9.4f}{m['pr_auc']:>9.4f}{m['ece']:>8.4f}")
    if args.json:
        args.json.write_text(json.dumps(result, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
