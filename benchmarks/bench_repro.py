"""``dvc repro`` of the demo from a clean state, in a temp copy of the repository.

Not a test. The copy is made as tests/integration/conftest.py does (sources, params.yaml with
the default params, dvc.yaml, a fresh git repository; no data, no cache, no MLflow store), then
``python -m dvc repro`` runs once; the wall time of each stage comes from its log lines.

    python benchmarks/bench_repro.py [--keep]
"""

from __future__ import annotations

import argparse
import re
import shutil
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _common import REPO, child_peak_rss_mb, machine_info, print_table, write_result

sys.path.insert(0, str(REPO / "tests" / "integration"))

BENCH = "repro"
TARGET_S = 180.0


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--keep", action="store_true", help="keep the temp copy")
    args = parser.parse_args()
    from conftest import make_project, run  # tests/integration/conftest.py

    print(f"machine: {machine_info()}", flush=True)
    dest = Path(tempfile.mkdtemp(prefix="bench-repro-"))
    try:
        make_project(dest, {})
        started = time.perf_counter()
        proc = run([sys.executable, "-m", "dvc", "repro"], dest)
        wall = time.perf_counter() - started
        log = proc.stdout + proc.stderr
        (REPO / "benchmarks" / "results").mkdir(parents=True, exist_ok=True)
        (REPO / "benchmarks" / "results" / "repro.log").write_text(log)
        stages = re.findall(r"Running stage '([^']+)'", log)
        row = {
            "wall_s": round(wall, 1),
            "target_s": TARGET_S,
            "within_target": wall <= TARGET_S,
            "stages": stages,
            "peak_rss_mb": round(child_peak_rss_mb(), 1),
        }
        write_result(BENCH, "dvc repro (demo, default params, clean)", **row)
        print_table(
            "dvc repro from a clean state",
            [row],
            ["wall_s", "target_s", "within_target", "peak_rss_mb"],
        )
        print(f"stages: {', '.join(stages)}")
    finally:
        if args.keep:
            print(f"kept {dest}")
        else:
            shutil.rmtree(dest, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
