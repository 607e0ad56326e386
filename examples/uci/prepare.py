"""Turn the UCI Online Shoppers CSV into a flat export (one table, label column `Revenue`).

The data: "Online Shoppers Purchasing Intention Dataset", UCI Machine Learning Repository, id 468
(Sakar et al., 2019; CC BY 4.0): https://archive.ics.uci.edu/dataset/468/online+shoppers+purchasing+intention+dataset
Download it, unzip `online_shoppers_intention.csv` into a folder, and pass that folder as --src:

python examples/uci/prepare.py --src ../shared/data/uci_online_shoppers --out data/raw/uci
"""

from __future__ import annotations

import argparse
import json
import logging
import sys
from pathlib import Path

from predictive_scoring.adapters import UCI_SHOPPERS_FILE, uci_shoppers_to_flat
from predictive_scoring.errors import PredictiveScoringError
from predictive_scoring.io import failure_text, setup_logging

logger = logging.getLogger("examples.uci")

SOURCE = "https://archive.ics.uci.edu/dataset/468/online+shoppers+purchasing+intention+dataset"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument(
        "--src",
        type=Path,
        default=Path("../shared/data/uci_online_shoppers"),
        help=f"folder holding {UCI_SHOPPERS_FILE} (or the file itself)",
    )
    parser.add_argument("--out", type=Path, default=Path("data/raw/uci"))
    args = parser.parse_args()
    setup_logging()
    file = args.src / UCI_SHOPPERS_FILE if args.src.is_dir() else args.src
    if not file.is_file():
        logger.error(
            "--src %s: %s not found; download the UCI Online Shoppers Purchasing Intention "
            "dataset (id 468) from %s, unzip it and pass its folder as --src",
            args.src,
            UCI_SHOPPERS_FILE,
            SOURCE,
        )
        return 1
    try:
        summary = uci_shoppers_to_flat(args.src, args.out)
    except PredictiveScoringError as exc:
        logger.error("--src %s: %s", args.src, failure_text(exc))
        return 1
    logger.info("%s", json.dumps(summary, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
