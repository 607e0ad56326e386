"""Turn the Olist marketing-funnel export into the data contract (leads + outcomes, no events).

The data: "Marketing Funnel by Olist" on Kaggle (CC BY-NC-SA 4.0),
https://www.kaggle.com/datasets/olistbr/marketing-funnel-olist, the companion of the "Brazilian
E-Commerce Public Dataset by Olist" (https://www.kaggle.com/datasets/olistbr/brazilian-ecommerce).
Download it, unzip olist_marketing_qualified_leads_dataset.csv and olist_closed_deals_dataset.csv
into one folder, and pass that folder as --src:

python examples/olist/prepare.py --src ../shared/data/olist_marketing_funnel --out data/raw/olist
python examples/olist/prepare.py --leaky --out data/raw/olist_leaky   # the leakage demo
"""

from __future__ import annotations

import argparse
import json
import logging
import sys
from pathlib import Path

from predictive_scoring.adapters import OLIST_DEALS_FILE, OLIST_MQL_FILE, olist_to_contract
from predictive_scoring.errors import PredictiveScoringError
from predictive_scoring.io import failure_text, setup_logging

logger = logging.getLogger("examples.olist")

SOURCE = "https://www.kaggle.com/datasets/olistbr/marketing-funnel-olist"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument(
        "--src",
        type=Path,
        default=Path("../shared/data/olist_marketing_funnel"),
        help=f"folder holding {OLIST_MQL_FILE} and {OLIST_DEALS_FILE}",
    )
    parser.add_argument("--out", type=Path, default=Path("data/raw/olist"))
    parser.add_argument(
        "--leaky", action="store_true", help="also join the closed-deal columns (they leak)"
    )
    args = parser.parse_args()
    setup_logging()
    missing = [
        name for name in (OLIST_MQL_FILE, OLIST_DEALS_FILE) if not (args.src / name).is_file()
    ]
    if missing:
        logger.error(
            "--src %s: %s not found; download the Marketing Funnel by Olist dataset from %s, "
            "unzip it and pass its folder as --src",
            args.src,
            " and ".join(missing),
            SOURCE,
        )
        return 1
    try:
        summary = olist_to_contract(args.src, args.out, join_closed_deal_columns=args.leaky)
    except PredictiveScoringError as exc:
        logger.error("--src %s: %s", args.src, failure_text(exc))
        return 1
    logger.info("%s", json.dumps(summary, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
