"""`predictive-scoring promote` on a real MLflow store: no-op when already champion, and a
test set that changed shape is refused with what to do, never compared or a traceback."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from typer.testing import CliRunner

from predictive_scoring.cli import app as cli
from predictive_scoring.errors import PromotionRefused
from predictive_scoring.registry import metric_on_features, promote_challenger
from predictive_scoring.scoring import Scorer
from tests.registries import MODEL, client_of, register
from tests.scorers import build_scorer

pytestmark = [pytest.mark.integration, pytest.mark.slow]


@pytest.fixture
def project(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """An empty project (default params) as the working directory; version 1 is challenger."""
    for name in list(os.environ):
        if name.startswith("PREDICTIVE_SCORING_") or name == "MLFLOW_TRACKING_URI":
            monkeypatch.delenv(name)
    (tmp_path / "params.yaml").write_text("{}\n")
    register(
        build_scorer(version="run-1", seed=0, rounds=20),
        project=tmp_path,
        alias="challenger",
        metrics={"test_roc_auc": 0.80, "test_n": 1000},
    )
    monkeypatch.chdir(tmp_path)
    return tmp_path


def _promote(*args: str) -> tuple[int, str]:
    result = CliRunner().invoke(cli, ["promote", *args])
    assert result.exception is None or isinstance(result.exception, SystemExit), result.exc_info
    return result.exit_code, result.output


def _champion(project: Path) -> str:
    return str(client_of(project).get_model_version_by_alias(MODEL, "champion").version)


def test_promoting_twice_says_already_champion(project: Path) -> None:
    code, out = _promote()
    assert code == 0 and "promoted lead-scoring v1 to @champion: test roc_auc 0.8000" in out
    code, out = _promote()
    assert code == 0, out
    assert out.strip() == "lead-scoring v1 is already @champion; nothing changed"
    assert _champion(project) == "1"


def test_logged_test_sets_of_another_shape_are_not_compared(project: Path) -> None:
    assert _promote()[0] == 0
    register(
        build_scorer(version="run-2", seed=1, rounds=30),
        project=project,
        alias="challenger",
        metrics={"test_roc_auc": 0.70, "test_n": 1500},
    )
    code, out = _promote()
    assert code == 1 and "Traceback" not in out
    assert "the test set changed shape between champion v1 and challenger v2" in out
    assert "tested on 1000 rows, challenger v2 on 1500" in out
    assert "`predictive-scoring promote --force`" in out
    assert _champion(project) == "1"

    code, out = _promote("--force")
    assert code == 0, out
    assert "promoted lead-scoring v2 to @champion: test roc_auc 0.7000 (not compared:" in out
    assert _champion(project) == "2"


def _test_set(scorer: Scorer, n: int = 200) -> pd.DataFrame:
    """A featurised test set for ``scorer``'s definition: level names and numbers, 0/1 labels."""
    rng = np.random.default_rng(0)
    columns = {
        name: (
            rng.choice(scorer.levels[name], size=n)
            if name in scorer.levels
            else rng.normal(size=n)
        )
        for name in scorer.feature_names
    }
    return pd.DataFrame(columns).assign(label=np.arange(n) % 2)


def test_a_champion_that_cannot_be_scored_on_the_test_set_is_not_compared(
    project: Path,
) -> None:
    assert _promote()[0] == 0
    register(build_scorer(version="run-2", seed=1, rounds=30), project=project, alias="challenger")
    # The current test set was featurised for the challenger; the champion's definition had a
    # feature the new one dropped (simulated by dropping it from the champion's copy).
    full = _test_set(build_scorer(version="x", seed=1, rounds=1))
    dropped = full.columns[0]

    def measure(scorer: Scorer) -> float:
        frame = full if scorer.version == "2" else full.drop(columns=[dropped])
        return metric_on_features(scorer, frame, metric="roc_auc")

    kwargs = dict(
        model_name=MODEL,
        challenger_alias="challenger",
        champion_alias="champion",
        metric="roc_auc",
        greater_is_better=True,
        root=project,
        measure=measure,
    )
    with pytest.raises(PromotionRefused) as err:
        promote_challenger(**kwargs)  # type: ignore[arg-type]
    message = str(err.value)
    assert "cannot be compared on the same test set" in message
    assert "champion v1 cannot be scored on it" in message and dropped in message
    assert "`predictive-scoring promote --force`" in message
    assert _champion(project) == "1"

    forced = promote_challenger(force=True, **kwargs)  # type: ignore[arg-type]
    assert forced["promoted"] and "not_comparable" in forced
    assert _champion(project) == "2"
    again = promote_challenger(**kwargs)  # type: ignore[arg-type]
    assert again["already_champion"] and not again["promoted"]


def test_a_version_carries_a_few_readable_metrics_and_a_description(project: Path) -> None:
    """The lineage every score carries, the test metrics promotion compares (and the ECE), and a
    description a person reads; not every metric of the run."""
    register(
        build_scorer(version="run-2", seed=1, rounds=30),
        project=project,
        alias="challenger",
        metrics={"test_roc_auc": 0.8123, "test_n": 1000, "test_lift_top5": 5.0, "test_brier": 0.1},
    )
    mv = client_of(project).get_model_version(MODEL, "2")
    metric_tags = {k for k in mv.tags if k.startswith("test_")}
    assert metric_tags == {"test_roc_auc", "test_n"}  # of the ones logged: promotion's
    assert {"model_version", "definition_hash", "data_hash"} <= set(mv.tags)
    assert "ROC AUC 0.812" in mv.description and "SQL at p >= " in mv.description
    assert "predictive_scoring.pending" not in mv.tags
