"""Scale: the training pipeline on 10x the bundled rows against 1x, tuning off.

Builds a 10x dataset from data/acs_employment_ma_2015_2018.parquet of rows that are other people,
not copies (copies, even perturbed ones, leak across CV folds: early stopping then runs to the
round cap on rows the held-out fold also holds, and test AUC falls): copy 0 is the original; in
each copy k >= 1 every row keeps its label, sex, year and age (jittered by -1/0/+1) and takes
each block of related answers (origin; household; schooling and military service; disability)
from its own random person of the same label, sex, age decade and year. Each block keeps its
internal structure and its link to the label within the stratum, while a synthetic row is no
longer a near-copy of the row it started from. Then runs `pipelines.local_run.run_local` with
`model_training.hyperparameter_tuning=false` on 1x and on 10x, each in a fresh temporary output
folder, and prints wall time and peak RSS per task for both and the ratios (issue 16 targets:
wall <= 10x of 1x, peak RSS of any task <= 6 GB).

    .venv/bin/python benchmarks/scale.py [--factor 10] [--seed 0] [--keep DIR] [--set k=v ...]

Measured on an idle 2-core machine: the 10x window (2015-2016) has 1.38 M rows, 60.3 % of them
repeating another's features and label (the bundled window: 46.9 %). At 6611db5: wall 52.2 s (1x)
vs 425.9 s (10x) = 8.15x; peak task RSS 1411 MB (validate), under the 6 GB target; test AUC
0.9133 at 10x vs 0.903. The ratio is above an earlier commit's 7.1x (71 s vs 508 s) because the
1x run's fixed costs fell by more than the 10x run's time did. Per task at that earlier commit:
tasks' CPU 11.7x; tune (10.4x) and evaluate (16.6x) grow with the rows, faster than them for
evaluate: more rows of other people carry more boosting rounds before early stopping (an honest
cost of more data, not a leak); train takes over tune's fold models (3.7x, 1.6 s); the fixed
costs (track, gate, register, deploy) stay ~1-3x. Before train took over the fold models it
fitted them again: 12.8x (1388 s vs 108 s), train alone 34x.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
from pathlib import Path

import numpy as np
import pandas as pd

from components.common.config import REPO_ROOT, load_settings
from components.validate.checks import Contract, duplicate_row_share
from pipelines.cli_args import parse_overrides
from pipelines.local_run import run_local

BUNDLED = REPO_ROOT / "data" / "acs_employment_ma_2015_2018.parquet"
BLOCKS = (
    ["CIT", "NATIVITY", "ANC", "RAC1P", "MIG"],  # origin
    ["MAR", "RELP", "ESP"],  # household
    ["SCHL", "MIL"],  # schooling, military service
    ["DIS", "DEAR", "DEYE", "DREM"],  # disability
)
STRATUM = ["employed", "SEX", "year"]  # plus the age decade
WALL_TARGET = 10.0
RSS_TARGET_MB = 6 * 1024


def scaled(df: pd.DataFrame, factor: int, seed: int = 0) -> pd.DataFrame:
    """`df` and `factor - 1` recombined copies of it (see the module docstring), ids unique."""
    rng = np.random.default_rng(seed)
    strata = df[STRATUM].assign(decade=df["AGEP"] // 10)
    codes = strata.groupby(list(strata.columns), sort=True).ngroup().to_numpy()
    by_stratum = np.argsort(codes, kind="stable")
    lo, hi = int(df["AGEP"].min()), int(df["AGEP"].max())
    id_step = int(df["id"].max()) + 1
    parts = [df]
    for k in range(1, factor):
        copy = df.copy()
        for columns in BLOCKS:
            # row by_stratum[i] takes the block of row donors[i]: same stratum, random order
            donors = np.lexsort((rng.random(len(df)), codes))
            block = df[columns].to_numpy()
            taken = np.empty_like(block)
            taken[by_stratum] = block[donors]
            copy[columns] = taken
        copy["AGEP"] = np.clip(df["AGEP"].to_numpy() + rng.integers(-1, 2, len(df)), lo, hi)
        copy["id"] = df["id"] + k * id_step
        parts.append(copy)
    return pd.concat(parts, ignore_index=True)


def measure(settings, out: Path, label: str) -> dict:
    result = run_local(settings, out)
    if not result.ok:
        print(f"{label} run failed at {result.failed_stage}: {result.error}", file=sys.stderr)
    return {
        "run": label,
        "ok": result.ok,
        "wall_s": result.wall_s,
        "roc_auc": result.metrics.get("roc_auc"),
        "cpu_s": round(sum(t["cpu_s"] for t in result.tasks), 1),
        "tasks": {
            t["task"]: {
                "wall_s": t["wall_s"],
                "cpu_s": t["cpu_s"],
                "peak_rss_mb": t["peak_rss_mb"],
                "rows": t.get("rows"),
            }
            for t in result.tasks
        },
    }


def _ratio(a: float | None, b: float | None) -> str:
    return f"{b / a:.1f}x" if a and b is not None else "-"


def report(one: dict, big: dict, factor: int) -> None:
    """Per task: wall, CPU (steadier than wall on a shared machine) and peak RSS, 1x vs 10x."""
    cols = [("wall_s", "wall s", ".1f"), ("cpu_s", "cpu s", ".1f"), ("peak_rss_mb", "MB", ".0f")]
    head = "".join(f" {f'{n} 1x':>9} {f'{n} {factor}x':>10} {'ratio':>6}" for _, n, _ in cols)
    print(f"\n{'task':<26}{head}")
    for task in dict.fromkeys([*one["tasks"], *big["tasks"]]):
        a, b = one["tasks"].get(task, {}), big["tasks"].get(task, {})
        cells = "".join(
            f" {a.get(k, 0):>9{fmt}} {b.get(k, 0):>10{fmt}} {_ratio(a.get(k), b.get(k)):>6}"
            for k, _, fmt in cols
        )
        print(f"{task:<26}{cells}")
    wall_ratio = big["wall_s"] / one["wall_s"]
    peak = max((t["peak_rss_mb"] for t in big["tasks"].values()), default=0.0)
    print(
        f"pipeline wall: 1x {one['wall_s']:.1f}s, {factor}x {big['wall_s']:.1f}s -> "
        f"{wall_ratio:.2f}x (target <= {WALL_TARGET:g}x: "
        f"{'met' if wall_ratio <= WALL_TARGET else 'MISSED'})"
    )
    print(
        f"tasks' CPU: 1x {one['cpu_s']:.1f}s, {factor}x {big['cpu_s']:.1f}s -> "
        f"{_ratio(one['cpu_s'], big['cpu_s'])}"
    )
    print(
        f"peak task RSS at {factor}x: {peak:.0f} MB (target <= {RSS_TARGET_MB} MB: "
        f"{'met' if peak <= RSS_TARGET_MB else 'MISSED'})"
    )
    print(f"test AUC: 1x {one['roc_auc']}, {factor}x {big['roc_auc']}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--factor", type=int, default=10)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--keep", default=None, help="keep the data and outputs in this folder")
    parser.add_argument("--set", action="append", default=[], metavar="KEY=VALUE")
    args = parser.parse_args()
    overrides = {"model_training.hyperparameter_tuning": False, **parse_overrides(args.set)}
    with tempfile.TemporaryDirectory(prefix="mlpipe-scale-") as tmp:
        root = Path(args.keep or tmp)
        root.mkdir(parents=True, exist_ok=True)
        data = root / f"acs_x{args.factor}.parquet"
        settings = load_settings(overrides=overrides)
        big_df = scaled(pd.read_parquet(BUNDLED), args.factor, args.seed)
        big_df.to_parquet(data, index=False)
        contract = Contract.from_dict(settings.schema_.model_dump(mode="json"))
        window = settings.pipeline.data_ingestion.window
        in_window = big_df[big_df["year"].between(window.start, window.end)]
        print(
            f"{args.factor}x dataset: {len(big_df):,} rows ({len(in_window):,} in the ingest "
            f"window), duplicated feature+label rows {duplicate_row_share(in_window, contract):.1%}"
            f" in the window, {duplicate_row_share(big_df, contract):.1%} overall"
        )
        del big_df, in_window
        one = measure(settings, root / "out-1x", "1x")
        big_settings = load_settings(
            overrides={**overrides, "data_ingestion.source_url": str(data)}
        )
        big = measure(big_settings, root / f"out-{args.factor}x", f"{args.factor}x")
    for row in (one, big):
        print(json.dumps(row))
    report(one, big, args.factor)


if __name__ == "__main__":
    main()
