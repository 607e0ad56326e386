"""A scorer trained in-process on the demo funnel with params.yaml's defaults, once per session.

The demo's ground truth (``predictive_scoring.synth``): a lead converts with probability
``sigmoid(-3.9 + 2.4 fit + 2.0 intent)``. Fit rises with seniority, industry, function, country
and source, peaks at mid-size companies and falls for free-mail addresses; intent drives how much
a lead engages, and hot events (pricing-page views, demo requests) gather in the days before
each funnel stage.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import pytest
from tests.demo_leads import NOW

from predictive_scoring.config import DataParams, FeaturizeParams, GenerateParams, TrainParams
from predictive_scoring.dataset import featurize_files
from predictive_scoring.scoring import LeadInput, Scorer
from predictive_scoring.synth import generate_demo
from predictive_scoring.thresholds import Thresholds
from predictive_scoring.train import train_model


@pytest.fixture(scope="session")
def demo_scorer(tmp_path_factory: pytest.TempPathFactory) -> Scorer:
    """LightGBM with calibration on 20,000 demo leads, as `dvc repro` trains it (5-30 s)."""
    raw = tmp_path_factory.mktemp("model-demo") / "raw"
    generate_demo(raw, GenerateParams(n_leads=20_000, months=24, seed=42))
    features = featurize_files(DataParams(dir=str(raw)), FeaturizeParams(), root=raw)
    # One thread: the same trees on any machine, and no fight for cores with other tests.
    result = train_model(features.frames, features.definition, TrainParams(num_threads=1))
    return Scorer(
        definition=features.definition,
        levels=result.levels,
        booster=result.booster,
        calibrator=result.calibrator,
        thresholds=Thresholds(mql=0.1, sql=0.3, base_rate=0.1),
        metadata={"name": "lead-scoring", "version": "model-tests"},
    )


@pytest.fixture(scope="session")
def probabilities(demo_scorer: Scorer) -> Callable[[Sequence[LeadInput]], list[float]]:
    """Score leads together in one call at the fixed clock; their probabilities, in order."""

    def score(leads: Sequence[LeadInput]) -> list[float]:
        return [r.probability for r in demo_scorer.score(list(leads), now=NOW, n_reasons=0)]

    return score
