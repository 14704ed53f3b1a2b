"""Local pipeline overhead: wall time of `mlpipe run` against the sum of its tasks' own time.

Runs the training pipeline twice in a fresh output folder (cold cache, then an unchanged re-run)
on the bundled data and prints, per run: wall time, the sum of the tasks' wall and CPU time as the
tasks measured them, and the ratio wall / sum (1.0 = no orchestration overhead). A task's own time
starts after its process started and imported its stage: that start-up (interpreter, kfp executor,
imports) is reported apart, per task and summed (`startup_s`), as the main part of the overhead.

    uv run python benchmarks/pipeline_overhead.py [--output-dir D] [--set key=value ...]
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
from pathlib import Path

from components.common.config import load_settings
from pipelines.cli_args import parse_overrides
from pipelines.local_run import run_local


def measure(settings, out: Path, label: str) -> dict:
    result = run_local(settings, out)
    if not result.ok:
        sys.exit(f"{label} run failed at {result.failed_stage}: {result.error}")
    executed = [t for t in result.tasks if not t["cached"]]
    task_wall = sum(t["wall_s"] for t in executed)
    task_cpu = sum(t["cpu_s"] for t in executed)
    startup = sum(t.get("startup_s") or 0.0 for t in executed)
    return {
        "run": label,
        "wall_s": result.wall_s,
        "tasks_executed": len(executed),
        "tasks_cached": len(result.tasks) - len(executed),
        "sum_task_wall_s": round(task_wall, 2),
        "sum_task_cpu_s": round(task_cpu, 2),
        "wall_over_task_wall": round(result.wall_s / task_wall, 2) if task_wall else None,
        "sum_task_startup_s": round(startup, 2),
        "per_task": {t["task"]: (t["wall_s"], t["cached"]) for t in result.tasks},
        "per_task_startup_s": {t["task"]: t.get("startup_s") for t in executed},
        "roc_auc": result.metrics.get("roc_auc"),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--output-dir", default=None, help="default: a temporary folder")
    parser.add_argument("--set", action="append", default=[], metavar="KEY=VALUE")
    args = parser.parse_args()
    settings = load_settings(overrides=parse_overrides(args.set))
    with tempfile.TemporaryDirectory(prefix="mlpipe-bench-") as tmp:
        out = Path(args.output_dir or tmp)
        cold = measure(settings, out, "cold")
        warm = measure(settings, out, "cached re-run")
    for row in (cold, warm):
        print(json.dumps(row))
    print(
        f"\ncold run: {cold['wall_s']:.1f}s wall, tasks' own time {cold['sum_task_wall_s']:.1f}s "
        f"(cpu {cold['sum_task_cpu_s']:.1f}s) -> wall/tasks ratio {cold['wall_over_task_wall']}; "
        f"tasks' start-up (process start + imports, not in their own time) "
        f"{cold['sum_task_startup_s']:.1f}s"
    )
    print(
        f"cached re-run: {warm['wall_s']:.1f}s wall ({warm['tasks_cached']} tasks from cache) = "
        f"{warm['wall_s'] / cold['wall_s']:.1%} of the cold run"
    )


if __name__ == "__main__":
    main()
