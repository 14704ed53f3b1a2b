"""Tuning throughput (trials/minute) and CPU use for two ways of filling 2 cores.

  A. two studies at once, 1 estimator thread each   (the default: tuning_parallelism 2,
     threads_per_trial 1 — what kfp.local's ParallelFor does with two algorithms)
  B. one study at a time, 2 estimator threads each  (tuning_parallelism 1, threads_per_trial 2)

Both tune the same two families (LightGBM and XGBoost) for a fixed number of trials each on the
default training window, with the default search spaces. Prints wall time, trials/min and CPU
utilisation (CPU seconds / (wall seconds x cores)) per variant.

    uv run python benchmarks/tuning_throughput.py [--trials 8] [--families lightgbm xgboost]
"""

from __future__ import annotations

import argparse
import json
import multiprocessing as mp
import os
import resource
import tempfile
import time
from pathlib import Path

from components.common.config import load_settings
from components.features.features import run as build_features
from components.ingest.ingest import run as ingest
from components.tune.tune import run as tune


def _children_cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def _tune(args: tuple[str, str, str, dict, str]) -> dict:
    train, transformer, algorithm, training, out = args
    result = tune(train, transformer, algorithm, training, out)
    return {k: result[k] for k in ("algorithm", "trials", "trials_pruned", "best_score")}


def prepare(folder: Path) -> tuple[str, str, dict]:
    settings = load_settings()
    cfg = settings.pipeline
    data = folder / "data.parquet"
    ingest(settings.resolve_source(), str(data), cfg.data_ingestion.model_dump(mode="json"), "year")
    build_features(
        str(data),
        settings.schema_.model_dump(mode="json"),
        cfg.feature_engineering.model_dump(mode="json"),
        str(folder / "train.parquet"),
        str(folder / "test.parquet"),
        str(folder / "transformer"),
    )
    training = cfg.model_training.model_dump(mode="json")
    return str(folder / "train.parquet"), str(folder / "transformer"), training


def variant(name: str, parallel: int, threads: int, trials: int, families, prepared, folder):
    train, transformer, training = prepared
    training = {**training, "max_trials": trials, "time_budget_s": 10_000.0}
    training["threads_per_trial"] = threads
    jobs = [(train, transformer, f, training, str(folder / f"{name}-{f}")) for f in families]
    cpu0, wall0 = _children_cpu(), time.perf_counter()
    # a fresh process per study, as kfp.local runs each tune task in its own process
    with mp.get_context("spawn").Pool(parallel, maxtasksperchild=1) as pool:
        results = pool.map(_tune, jobs, chunksize=1)
    wall = time.perf_counter() - wall0
    cpu = _children_cpu() - cpu0
    total = sum(r["trials"] for r in results)
    cores = os.cpu_count() or 1
    return {
        "variant": name,
        "parallel_studies": parallel,
        "threads_per_trial": threads,
        "trials": total,
        "wall_s": round(wall, 1),
        "trials_per_min": round(total / wall * 60, 2),
        "cpu_s": round(cpu, 1),
        "cpu_utilisation": round(cpu / (wall * cores), 2),
        "families": results,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--trials", type=int, default=8, help="trials per family")
    parser.add_argument("--families", nargs="+", default=["lightgbm", "xgboost"])
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="mlpipe-tune-bench-") as tmp:
        folder = Path(tmp)
        prepared = prepare(folder)
        rows = [
            variant("A: 2 studies x 1 thread", 2, 1, args.trials, args.families, prepared, folder),
            variant("B: 1 study x 2 threads", 1, 2, args.trials, args.families, prepared, folder),
        ]
    for row in rows:
        print(json.dumps(row))
    for row in rows:
        print(
            f"{row['variant']}: {row['trials']} trials in {row['wall_s']}s = "
            f"{row['trials_per_min']} trials/min, CPU utilisation {row['cpu_utilisation']:.0%}"
        )


if __name__ == "__main__":
    main()
