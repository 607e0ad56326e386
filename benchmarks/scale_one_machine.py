"""Measured limits on one machine: generate, featurize (DuckDB) and train at 1M leads / 50M events.

Not a test. Each step runs in its own Python process, watched by a psutil poller that sums the
resident memory of the whole process tree (Java included, for Spark) every 0.2 s and stops the
step if it passes ``--kill-above-gb``. Results go to ``<out>/results.json`` and the log.

    python benchmarks/scale_one_machine.py run --out /tmp/scale \
        --n-leads 1000000 --events-per-lead 50 --steps generate featurize train

Steps: ``generate`` (synth.generate_demo), ``validate`` (schema.validate: the events read in
batches), ``featurize_pandas`` (schema.load_raw with the events in pandas, then featurize_dataset:
the in-memory path), ``featurize`` (dataset.featurize_files: the events read by DuckDB straight
from Parquet), ``featurize_spark`` (the same on Spark local[*]), ``train`` (train.train_model with
TrainParams() on the featurize output).

``repro`` runs the whole DVC pipeline instead, in a project folder (a checkout whose params.yaml
points at the big data), and gives each stage its wall time and the peak resident memory of the
process tree while that stage's script runs (DVC's own hashing and caching between stages is
reported as ``dvc``):

    python benchmarks/scale_one_machine.py repro --project /tmp/scale/repo --out /tmp/scale
"""

from __future__ import annotations

import argparse
import json
import logging
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import psutil

logger = logging.getLogger("benchmarks.scale_one_machine")

STEPS = ("generate", "validate", "featurize_pandas", "featurize", "featurize_spark", "train")
GB = 1024**3


def _tree_rss(proc: psutil.Process) -> int:
    total = 0
    for p in [proc, *proc.children(recursive=True)]:
        try:
            total += p.memory_info().rss
        except (psutil.NoSuchProcess, psutil.AccessDenied):
            continue
    return total


def _watch(cmd: list[str], *, kill_above: float, log: Path) -> dict[str, Any]:
    """Run cmd, polling the tree's RSS; returns wall time, peak RSS and exit status."""
    started = time.perf_counter()
    with log.open("a") as fh:
        fh.write(f"\n$ {' '.join(cmd)}\n")
        fh.flush()
        child = subprocess.Popen(cmd, stdout=fh, stderr=subprocess.STDOUT)
        proc = psutil.Process(child.pid)
        peak = 0
        killed = False
        while child.poll() is None:
            try:
                peak = max(peak, _tree_rss(proc))
            except psutil.NoSuchProcess:
                break
            if peak > kill_above * GB and not killed:
                killed = True
                for p in [*proc.children(recursive=True), proc]:
                    try:
                        p.kill()
                    except psutil.NoSuchProcess:
                        continue
            time.sleep(0.2)
        code = child.wait()
    return {
        "wall_s": round(time.perf_counter() - started, 1),
        "peak_rss_gb": round(peak / GB, 2),
        "exit_code": code,
        "killed_above_gb": kill_above if killed else None,
    }


def _log_rss_every(seconds: float) -> None:
    """Log this process's RSS now and then, to see which phase of a step holds the memory."""
    import threading

    me = psutil.Process()

    def loop() -> None:
        while True:
            logger.info("rss %.2f GB", me.memory_info().rss / GB)
            time.sleep(seconds)

    threading.Thread(target=loop, daemon=True).start()


def _step(name: str, args: argparse.Namespace) -> dict[str, Any]:
    """One step, run inside the child process; returns facts worth recording."""
    import pandas as pd

    _log_rss_every(10.0)

    from predictive_scoring.config import DataParams, FeaturizeParams, GenerateParams, TrainParams

    out = Path(args.out)
    raw_dir = out / "raw"
    feat_dir = out / ("features_spark" if name == "featurize_spark" else "features")
    data = DataParams(dir=str(raw_dir))
    fparams = FeaturizeParams()
    facts: dict[str, Any] = {}
    if name == "generate":
        from predictive_scoring.synth import generate_demo

        gen = GenerateParams(n_leads=args.n_leads, events_per_lead=args.events_per_lead)
        facts = generate_demo(raw_dir, gen)
    elif name == "validate":
        from predictive_scoring.schema import validate

        report = validate(data, root=raw_dir, batch_rows=args.batch_rows)
        facts = {"n_leads": report.n_leads, "n_events": report.n_events}
        facts["warnings"] = report.warnings
    elif name in ("featurize_pandas", "featurize", "featurize_spark"):
        from predictive_scoring.batch import connect_duckdb
        from predictive_scoring.dataset import featurize_dataset, featurize_files
        from predictive_scoring.io import write_json
        from predictive_scoring.schema import load_raw

        t0 = time.perf_counter()
        if name == "featurize_pandas":
            raw = load_raw(data, root=raw_dir)
            facts["load_raw_s"] = round(time.perf_counter() - t0, 1)
            features = featurize_dataset(raw, data, fparams, con=connect_duckdb())
        elif name == "featurize":
            con = connect_duckdb(memory_limit=args.duckdb_memory_limit)
            features = featurize_files(data, fparams, root=raw_dir, con=con)
        else:
            from predictive_scoring.spark import spark_connection

            conf = {"spark.master": "local[*]", "spark.driver.memory": args.spark_driver_memory}
            features = featurize_files(data, fparams, root=raw_dir, con=spark_connection(conf))
        feat_dir.mkdir(parents=True, exist_ok=True)
        for split, frame in features.frames.items():
            frame.to_parquet(feat_dir / f"{split}.parquet", index=False)
        write_json(feat_dir / "definition.json", features.definition.to_dict())
        facts["snapshots"] = {s: len(f) for s, f in features.frames.items()}
        facts["n_features"] = len(features.definition.feature_names)
    elif name == "train":
        from predictive_scoring.features import FeatureDefinition
        from predictive_scoring.train import train_model

        definition = FeatureDefinition.from_dict(
            json.loads((out / "features" / "definition.json").read_text())
        )
        frames = {
            s: pd.read_parquet(out / "features" / f"{s}.parquet") for s in ("train", "valid")
        }
        result = train_model(frames, definition, TrainParams())
        facts = {
            "rows": {s: len(f) for s, f in frames.items()},
            "n_features": len(definition.feature_names),
            "best_iteration": result.best_iteration,
            "matrix_gb_float64": round(
                sum(len(f) for f in frames.values()) * len(definition.feature_names) * 8 / GB, 2
            ),
        }
    return facts


def _stage_of(procs: list[psutil.Process]) -> str:
    """The DVC stage whose ``pipelines/<stage>.py`` runs among ``procs``, else ``dvc``."""
    for p in procs:
        try:
            for part in p.cmdline():
                text = str(part)
                if text.startswith("pipelines/") and text.endswith(".py"):
                    return text.removeprefix("pipelines/").removesuffix(".py")
        except (psutil.NoSuchProcess, psutil.AccessDenied):
            continue
    return "dvc"


def _watch_stages(cmd: list[str], *, cwd: Path, log: Path, kill_above: float) -> dict[str, Any]:
    """Run ``dvc repro``, attributing wall time and peak tree RSS to the running stage; stop
    the whole tree if it passes ``kill_above`` GB (the machine is shared)."""
    stages: dict[str, dict[str, float]] = {}
    killed: str | None = None
    started = time.perf_counter()
    with log.open("a") as fh:
        fh.write(f"\n$ (cd {cwd} && {' '.join(cmd)})\n")
        fh.flush()
        child = subprocess.Popen(cmd, cwd=cwd, stdout=fh, stderr=subprocess.STDOUT)
        proc = psutil.Process(child.pid)
        last = time.perf_counter()
        while child.poll() is None:
            try:
                procs = [proc, *proc.children(recursive=True)]
            except psutil.NoSuchProcess:
                break
            stage = _stage_of(procs)
            rss = _tree_rss(proc)
            now = time.perf_counter()
            entry = stages.setdefault(stage, {"wall_s": 0.0, "peak_rss_gb": 0.0})
            entry["wall_s"] += now - last
            entry["peak_rss_gb"] = max(entry["peak_rss_gb"], rss / GB)
            last = now
            if rss > kill_above * GB and killed is None:
                killed = stage
                for p in [*procs[1:], proc]:
                    try:
                        p.kill()
                    except psutil.NoSuchProcess:
                        continue
            time.sleep(0.2)
        code = child.wait()
    for entry in stages.values():
        entry["wall_s"] = round(entry["wall_s"], 1)
        entry["peak_rss_gb"] = round(entry["peak_rss_gb"], 2)
    return {
        "command": " ".join(cmd),
        "wall_s": round(time.perf_counter() - started, 1),
        "exit_code": code,
        "killed_in_stage": killed,
        "stages": stages,
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)
    repro = sub.add_parser("repro")
    repro.add_argument("--project", type=Path, required=True, help="a checkout to run dvc in")
    repro.add_argument("--out", default="/tmp/scale", help="where results.json and the log go")
    repro.add_argument("--kill-above-gb", type=float, default=16.0)
    repro.add_argument("dvc_args", nargs="*", help="more arguments for dvc repro")
    for command in ("run", "step"):
        p = sub.add_parser(command)
        p.add_argument("--out", default="/tmp/scale")
        p.add_argument("--n-leads", type=int, default=1_000_000)
        p.add_argument("--events-per-lead", type=float, default=50.0)
        p.add_argument("--duckdb-memory-limit", default="4GB")
        p.add_argument("--spark-driver-memory", default="6g")
        p.add_argument("--kill-above-gb", type=float, default=12.0)
        p.add_argument("--batch-rows", type=int, default=1_000_000, help="validate's batches")
        if command == "run":
            p.add_argument("--steps", nargs="+", choices=STEPS, default=["generate", "featurize"])
        else:
            p.add_argument("name", choices=STEPS)
            p.add_argument("--facts", type=Path, required=True)
    args = parser.parse_args()
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(message)s")
    if args.command == "repro":
        out = Path(args.out)
        out.mkdir(parents=True, exist_ok=True)
        measured = _watch_stages(
            ["dvc", "repro", *args.dvc_args],
            cwd=args.project,
            log=out / "benchmark.log",
            kill_above=args.kill_above_gb,
        )
        results_path = out / "results.json"
        results = json.loads(results_path.read_text()) if results_path.exists() else {}
        results["repro"] = measured
        results_path.write_text(json.dumps(results, indent=2))
        logger.info("repro: %s", json.dumps(measured))
        return 0 if measured["exit_code"] == 0 else 1
    if args.command == "step":
        facts = _step(args.name, args)
        args.facts.write_text(json.dumps(facts, default=str))
        return 0
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    results_path = out / "results.json"
    results = json.loads(results_path.read_text()) if results_path.exists() else {}
    for name in args.steps:
        facts_path = out / f"{name}.facts.json"
        facts_path.unlink(missing_ok=True)
        cmd = [sys.executable, __file__, "step", name, "--facts", str(facts_path)]
        cmd += ["--out", str(out), "--n-leads", str(args.n_leads)]
        cmd += ["--events-per-lead", str(args.events_per_lead)]
        cmd += ["--duckdb-memory-limit", args.duckdb_memory_limit]
        cmd += ["--spark-driver-memory", args.spark_driver_memory]
        cmd += ["--batch-rows", str(args.batch_rows)]
        measured = _watch(cmd, kill_above=args.kill_above_gb, log=out / "benchmark.log")
        if facts_path.exists():
            measured["facts"] = json.loads(facts_path.read_text())
        results[name] = measured
        results_path.write_text(json.dumps(results, indent=2))
        logger.info("%s: %s", name, json.dumps(measured))
    return 0


if __name__ == "__main__":
    sys.exit(main())
