"""DVC stage `validate`: check the raw tables against the data contract and look for leakage.

On any problem it lists them all (file, column, example rows), exits non-zero and writes nothing:
the last good report stays in place (written atomically; ``persist: true`` in dvc.yaml keeps DVC
from deleting it first). The events are read in batches (``schema.validate``), so memory does not
grow with their number.
"""

from __future__ import annotations

import argparse
import logging
import sys
from pathlib import Path

from predictive_scoring.config import load_params
from predictive_scoring.errors import PredictiveScoringError
from predictive_scoring.io import failure_text, setup_logging, write_json
from predictive_scoring.leakage import raise_if_strict
from predictive_scoring.schema import validate

logger = logging.getLogger("pipelines.validate")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--params", default="params.yaml")
    parser.add_argument("--report", type=Path, default=Path("reports/validation.json"))
    args = parser.parse_args()
    setup_logging()
    try:
        params = load_params(args.params)
        report = validate(
            params.data, root=Path(params.data.dir), target_stage=params.featurize.target_stage
        )
        # Each flag is said once: as a warning, or (strict) in the error that stops the stage.
        raise_if_strict(report.leakage, params.data)
        for flag in [*report.leakage, *report.review]:
            logger.warning("%s", flag.message())
    except PredictiveScoringError as exc:
        logger.error("validate failed (%s kept as it was): %s", args.report, failure_text(exc))
        return 1
    write_json(args.report, report.to_dict())
    logger.info(
        "validate: %d leads, %d events, %d outcomes, %d attributes, %d warnings, "
        "%d leakage flags, %d columns to review -> %s",
        report.n_leads,
        report.n_events,
        report.n_outcomes,
        len(report.attribute_types),
        len(report.warnings),
        len(report.leakage),
        len(report.review),
        args.report,
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
