"""DVC stage `generate`: simulate the demo B2B funnel into data/demo."""

from __future__ import annotations

import argparse
import logging
import sys
from pathlib import Path

from predictive_scoring.config import load_params
from predictive_scoring.io import setup_logging
from predictive_scoring.synth import generate_demo

logger = logging.getLogger("pipelines.generate")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--params", default="params.yaml")
    parser.add_argument("--out", type=Path, default=Path("data/demo"))
    args = parser.parse_args()
    setup_logging()
    params = load_params(args.params).generate
    summary = generate_demo(args.out, params, progress=sys.stderr.isatty())
    logger.info(
        "generate: %d leads, %d events, %d outcomes, %.1f%% won -> %s",
        summary["n_leads"],
        summary["n_events"],
        summary["n_outcomes"],
        100 * summary.get("conversion_rate", 0.0),
        args.out,
    )


if __name__ == "__main__":
    main()
