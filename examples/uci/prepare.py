"""Turn the UCI Online Shoppers CSV into a flat export (one table, label column `Revenue`).

python examples/uci/prepare.py --src ../shared/data/uci_online_shoppers --out data/raw/uci
"""

from __future__ import annotations

import argparse
import json
import logging
from pathlib import Path

from predictive_scoring.adapters import uci_shoppers_to_flat
from predictive_scoring.io import setup_logging

logger = logging.getLogger("examples.uci")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--src", type=Path, default=Path("../shared/data/uci_online_shoppers"))
    parser.add_argument("--out", type=Path, default=Path("data/raw/uci"))
    args = parser.parse_args()
    setup_logging()
    summary = uci_shoppers_to_flat(args.src, args.out)
    logger.info("%s", json.dumps(summary, indent=2))


if __name__ == "__main__":
    main()
