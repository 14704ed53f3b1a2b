"""Quality of the tuned model with the default config, over several seeds.

Runs the whole training pipeline locally (kfp.local, cold cache, a fresh folder per seed) on the
bundled data — train 2015, test 2016 — and prints per seed: the selected family and its test ROC
AUC, each family's best cross-validated AUC, trials run, trials/minute, and the run's wall time.

    uv run python benchmarks/tuned_model_quality.py [--seeds 42 7 2026] [--set key=value ...]
"""

from __future__ import annotations

import argparse
import json
import tempfile

from components.common.config import load_settings
from pipelines.cli_args import parse_overrides
from pipelines.local_run import run_local


def one_seed(seed: int, overrides: dict) -> dict:
    settings = load_settings(overrides={**overrides, "model_training.seed": seed})
    with tempfile.TemporaryDirectory(prefix=f"mlpipe-quality-{seed}-") as tmp:
        result = run_local(settings, tmp)
    if not result.ok:
        raise SystemExit(f"seed {seed}: failed at {result.failed_stage}: {result.error}")
    families = {}
    for row in result.tasks:
        if row["task"].startswith("tune-"):
            details = row.get("metrics") or {}
            families[row["task"].removeprefix("tune-")] = {
                "cv_roc_auc": round(details.get("cv_roc_auc", float("nan")), 5),
                "trials": details.get("trials"),
                "tune_wall_s": row["wall_s"],
                "trials_per_min": round(details.get("trials", 0) / row["wall_s"] * 60, 2)
                if row["wall_s"]
                else None,
            }
    select = next(r for r in result.tasks if r["task"] == "select")
    return {
        "seed": seed,
        "selected": (select.get("details") or {}).get("selected"),
        "test_roc_auc": round(result.metrics["roc_auc"], 5),
        "pipeline_wall_s": result.wall_s,
        "families": families,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", nargs="+", type=int, default=[42, 7, 2026])
    parser.add_argument("--set", action="append", default=[], metavar="KEY=VALUE")
    args = parser.parse_args()
    overrides = parse_overrides(args.set)
    rows = [one_seed(seed, overrides) for seed in args.seeds]
    for row in rows:
        print(json.dumps(row))
    print()
    for row in rows:
        fams = ", ".join(
            f"{name} cv {f['cv_roc_auc']} ({f['trials']} trials, {f['trials_per_min']}/min)"
            for name, f in row["families"].items()
        )
        print(
            f"seed {row['seed']}: test AUC {row['test_roc_auc']} ({row['selected']}), "
            f"wall {row['pipeline_wall_s']:.0f}s; {fams}"
        )


if __name__ == "__main__":
    main()
