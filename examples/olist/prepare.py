"""Turn the Olist marketing-funnel export into the data contract (leads + outcomes, no events).

python examples/olist/prepare.py --src ../shared/data/olist_marketing_funnel --out data/raw/olist
python examples/olist/prepare.py --leaky --out data/raw/olist_leaky   # the leakage demo
"""

from __future__ import annotations

import argparse
import json
import logging
from pathlib import Path

from predictive_scoring.adapters import olist_to_contract
from predictive_scoring.io import setup_logging

logger = logging.getLogger("examples.olist")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--src", type=Path, default=Path("../shared/data/olist_marketing_funnel"))
    parser.add_argument("--out", type=Path, default=Path("data/raw/olist"))
    parser.add_argument(
        "--leaky", action="store_true", help="also join the closed-deal columns (they leak)"
    )
    args = parser.parse_args()
    setup_logging()
    summary = olist_to_contract(args.src, args.out, join_closed_deal_columns=args.leaky)
    logger.info("%s", json.dumps(summary, indent=2))


if __name__ == "__main__":
    main()
