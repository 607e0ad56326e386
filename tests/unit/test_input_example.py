"""The registered model's input example is one the model admits, whatever inputs it requires."""

from __future__ import annotations

from tests.scorers import build_scorer

from predictive_scoring.ingress import ModelInputs
from predictive_scoring.registry import LeadScoringPyfunc, _input_example


def test_the_input_example_fills_every_required_attribute() -> None:
    scorer = build_scorer(version="example", seed=3, rounds=5)
    # a flat export's model: every attribute was always filled in training, so each is required
    scorer.inputs = ModelInputs.of(
        scorer.definition,
        scorer.levels,
        {"required": ["created_at", "industry", "employees"], "non_negative": ["employees"]},
    )
    example = _input_example(scorer)
    assert example.loc[0, "industry"] in scorer.levels["industry"]
    assert example.loc[0, "employees"] >= 0

    model = LeadScoringPyfunc()
    model.scorer = scorer
    scored = model.score_frame(example)
    assert list(scored["lead_id"]) == ["L-example"]
    assert 0.0 < float(scored["probability"].iloc[0]) < 1.0
