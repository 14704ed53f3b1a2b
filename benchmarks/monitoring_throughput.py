"""Monitoring throughput: rows/s through statistics (TFDV, in the tfdv environment) + drift, on
the bundled data — all 277,677 rows as one batch, and each year as a batch.

    uv run python benchmarks/monitoring_throughput.py [--repeat 1]

The reference (the champion's companions: training statistics and TFDV schema of 2015) is made
once by validate's TFDV job, exactly as a training run makes it. Each measurement is timed with
perf_counter around the work: `end to end` = launching the TFDV job (its ~8 s import included) +
statistics + anomalies + drift; `statistics` = generate_statistics + validate_statistics inside
the job; `drift` = the per-feature measures in the main process. Peak RSS is the TFDV job's.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path

import pandas as pd

from components.common.config import REPO_ROOT, load_data_schema
from components.common.tfdv_env import tfdv_python
from components.monitor import drift
from components.monitor.monitor import compute_statistics

DATA = REPO_ROOT / "data" / "acs_employment_ma_2015_2018.parquet"


def reference(work: Path, schema_dict: dict) -> Path:
    """train_stats.json + schema.json of 2015 (validate's TFDV job) + champion.json."""
    import subprocess

    from components.common.tfdv_env import job_environment

    out = work / "validate"
    split = {"method": "time", "train_window": [2015, 2015], "test_window": [2016, 2016]}
    cmd = [tfdv_python("benchmark"), "-m", "components.validate.tfdv_job", "--data", str(DATA)]
    cmd += ["--schema-json", json.dumps(schema_dict), "--split-json", json.dumps(split)]
    with job_environment() as env:
        subprocess.run([*cmd, "--out", str(out)], env=env, check=True, capture_output=True)
    ref = work / "reference"
    ref.mkdir()
    for name in ("train_stats.json", "schema.json"):
        (ref / name).write_text((out / "statistics" / name).read_text())
    features = list(schema_dict["features"])
    meta = {"features": features, "label": schema_dict["label"]["name"], "version": "bench"}
    (ref / "champion.json").write_text(json.dumps(meta))
    return ref


def measure(batch: Path, ref: Path, work: Path, schema) -> dict:
    train = json.loads((ref / "train_stats.json").read_text())
    t0 = time.perf_counter()
    anomalies = compute_statistics(str(batch), str(ref), str(work / "stats"), log=lambda s: None)
    t1 = time.perf_counter()
    summary = json.loads((work / "stats" / "batch_stats.json").read_text())
    drifts = drift.measure(train, summary, schema)
    t2 = time.perf_counter()
    rows = anomalies["rows"]
    top = max(
        (m for m in drifts.values() if m.get("value") is not None),
        key=lambda m: m["value"] / m["threshold"],
    )
    return {
        "rows": rows,
        "end_to_end_s": round(t2 - t0, 2),
        "rows_per_s_end_to_end": round(rows / (t2 - t0)),
        "statistics_s": anomalies["stats_seconds"],
        "drift_s": round(t2 - t1, 4),
        "rows_per_s_statistics_drift": round(rows / (anomalies["stats_seconds"] + (t2 - t1))),
        "peak_rss_mb": anomalies["peak_rss_mb"],
        "drifted": drift.drifted(drifts),
        "max_drift_vs_threshold": round(top["value"] / top["threshold"], 4),
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=1)
    args = parser.parse_args()
    import yaml

    schema_dict = yaml.safe_load((REPO_ROOT / "config" / "data_schema.yaml").read_text())
    schema = load_data_schema()
    df = pd.read_parquet(DATA)
    with tempfile.TemporaryDirectory(prefix="mlpipe-bench-monitor-") as tmp:
        work = Path(tmp)
        ref = reference(work, schema_dict)
        batches = {"all years": df}
        batches.update({str(y): g for y, g in df.groupby("year")})
        print(
            f"{'batch':<10} {'rows':>8} {'end-to-end s':>13} {'rows/s':>9} {'stats s':>8} "
            f"{'drift s':>8} {'rows/s (stats+drift)':>21} {'peak MB':>8}  drifted"
        )
        for name, part in batches.items():
            path = work / f"batch-{name.replace(' ', '_')}.parquet"
            part.to_parquet(path, index=False)
            for _ in range(args.repeat):
                r = measure(path, ref, work, schema)
                print(
                    f"{name:<10} {r['rows']:>8,} {r['end_to_end_s']:>13.2f} "
                    f"{r['rows_per_s_end_to_end']:>9,} {r['statistics_s']:>8.2f} "
                    f"{r['drift_s']:>8.4f} {r['rows_per_s_statistics_drift']:>21,} "
                    f"{r['peak_rss_mb']:>8.0f}  {r['drifted'] or '-'}",
                    flush=True,
                )
    return 0


if __name__ == "__main__":
    sys.exit(main())
