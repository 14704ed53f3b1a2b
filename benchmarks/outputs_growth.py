"""Growth of outputs/ over unchanged runs: what a cached `mlpipe run` adds to the disk.

One cold run in a fresh output folder on the bundled data (hyperparameter tuning off by default,
so it takes ~1-2 min on 2 cores), then `--runs` unchanged re-runs (default 20; each ~1.5 min:
gate, register and deploy are never cached). After each run it measures the folder's disk use
like `du` (allocated blocks, each hard-linked inode counted once) and prints the growth per
top-level subfolder; at the end the total growth over the re-runs in MB (target: < 2 MB for 20).

    uv run python benchmarks/outputs_growth.py [--runs 20] [--output-dir D] [--set key=value ...]
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
from pathlib import Path

from components.common.config import load_settings
from pipelines.cli_args import parse_overrides
from pipelines.local_run import run_local

FAST = ["model_training.hyperparameter_tuning=false"]


def disk_use(root: Path) -> dict[str, int]:
    """Bytes allocated per top-level subfolder (and "total"), hard links counted once."""
    seen: set[tuple[int, int]] = set()
    use: dict[str, int] = {"total": 0}
    for dirpath, dirnames, filenames in os.walk(root):
        for name in dirnames + filenames:
            path = Path(dirpath) / name
            st = path.lstat()
            if (st.st_dev, st.st_ino) in seen:
                continue
            seen.add((st.st_dev, st.st_ino))
            top = path.relative_to(root).parts[0]
            use[top] = use.get(top, 0) + st.st_blocks * 512
            use["total"] += st.st_blocks * 512
    return use


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=20, help="unchanged re-runs after the cold one")
    parser.add_argument("--output-dir", default=None, help="default: a temporary folder")
    parser.add_argument("--set", action="append", default=None, metavar="KEY=VALUE")
    args = parser.parse_args()
    settings = load_settings(overrides=parse_overrides(FAST if args.set is None else args.set))
    with tempfile.TemporaryDirectory(prefix="mlpipe-growth-") as tmp:
        out = Path(args.output_dir or tmp)
        first = run_local(settings, out)
        if not first.ok:
            sys.exit(f"cold run failed at {first.failed_stage}: {first.error}")
        base = previous = disk_use(out)
        print(f"after the cold run ({first.wall_s:.0f} s): {base['total'] / 1e6:.2f} MB")
        for i in range(1, args.runs + 1):
            result = run_local(settings, out)
            if not result.ok:
                sys.exit(f"re-run {i} failed at {result.failed_stage}: {result.error}")
            now = disk_use(out)
            grew = {k: round((v - previous.get(k, 0)) / 1e6, 3) for k, v in now.items()}
            cached = sum(t["cached"] for t in result.tasks)
            print(json.dumps({"run": i, "wall_s": result.wall_s, "cached": cached, "mb": grew}))
            previous = now
        total = (previous["total"] - base["total"]) / 1e6
        per = {k: round((v - base.get(k, 0)) / 1e6, 2) for k, v in previous.items()}
    print(f"\noutputs/ grew {total:.2f} MB over {args.runs} unchanged re-runs ({per})")
    if args.runs:
        print(f"per re-run: {total / args.runs:.3f} MB; target < 2 MB for 20 re-runs")


if __name__ == "__main__":
    main()
