"""DVC stage `generate`: simulate the demo B2B funnel into data/demo.

When ``data.dir`` points elsewhere (your own data), nothing is simulated: the stage writes a small
note into the output folder instead (or leaves an earlier demo there) and says so.
"""

from __future__ import annotations

import argparse
import logging
import sys
from pathlib import Path

from predictive_scoring.config import load_params
from predictive_scoring.errors import PredictiveScoringError
from predictive_scoring.io import failure_text, setup_logging
from predictive_scoring.synth import generate_demo

logger = logging.getLogger("pipelines.generate")

SKIPPED_NOTE = "SKIPPED.txt"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--params", default="params.yaml")
    parser.add_argument("--out", type=Path, default=Path("data/demo"))
    args = parser.parse_args()
    setup_logging()
    try:
        params = load_params(args.params)
    except PredictiveScoringError as exc:
        logger.error("generate failed: %s", failure_text(exc))
        return 1
    data_dir = Path(params.data.dir)
    if data_dir.resolve() != args.out.resolve():
        if not args.out.exists():  # DVC needs its output; a note is all it gets
            args.out.mkdir(parents=True)
            (args.out / SKIPPED_NOTE).write_text(
                f"No demo data was generated: data.dir in {args.params} points at {data_dir}.\n"
                f"Set data.dir: {args.out} to train on the simulated demo funnel.\n"
            )
        logger.info(
            "generate: skipped, data.dir is %s (your own data), not the demo folder %s",
            data_dir,
            args.out,
        )
        return 0
    summary = generate_demo(args.out, params.generate, progress=sys.stderr.isatty())
    logger.info(
        "generate: %d leads, %d events, %d outcomes, %.1f%% won -> %s",
        summary["n_leads"],
        summary["n_events"],
        summary["n_outcomes"],
        100 * summary.get("conversion_rate", 0.0),
        args.out,
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
