"""The TFDV side of the monitor stage. Runs only in the tfdv environment (TFDV 1.16, pandas 1.5):

    python -m components.monitor.stats_job --data batch.parquet --schema schema.json \
        --features-json '["AGEP", ...]' --out DIR

Computes the batch's statistics with the champion's TFDV schema (categorical codes marked
categorical, so top values and L-infinity are meaningful: README "Two kinds of data checks") and
validates them against it (values outside a domain, missing features: blocking anomalies). Only the
model's features are looked at: a request log has no id, time or label column.

DIR (written atomically): batch_stats.pb (TFDV, binary), batch_stats.json (the same compact
summary validate writes for the training window), anomalies.json ({"findings": [...]}).
Exit code 0 when statistics were computed, 2 for a bad argument, 1 for anything unexpected.
"""

from __future__ import annotations

import argparse
import json
import resource
import sys
import time
from pathlib import Path
from typing import Any

from components.common.artifacts import atomic_dir, write_json
from components.common.tfdv_stats import anomaly_reasons, for_tfdv, import_tfdv, summarize_stats


def log(message: str) -> None:
    print(f"monitor: {message}", flush=True)


def feature_schema(tfdv_schema: dict[str, Any], features: list[str]) -> Any:
    """The champion's TFDV schema reduced to the model's features."""
    from google.protobuf import json_format
    from tensorflow_metadata.proto.v0 import schema_pb2

    schema = json_format.ParseDict(tfdv_schema, schema_pb2.Schema(), ignore_unknown_fields=True)
    keep = [f for f in schema.feature if f.name in set(features)]
    del schema.feature[:]
    schema.feature.extend(keep)
    return schema


def findings(anomalies: Any) -> list[dict[str, Any]]:
    return [
        {"feature": name, "check": f"tfdv:{kind}", "description": text}
        for name, kind, text, _ in anomaly_reasons(anomalies)
    ]


def compute(data_path: str, schema_json: dict[str, Any], features: list[str], out_dir: str):
    import pandas as pd

    t0 = time.perf_counter()
    tfdv = import_tfdv()
    log(f"TFDV {tfdv.__version__} imported in {time.perf_counter() - t0:.1f} s")
    df = pd.read_parquet(data_path)
    present = [f for f in features if f in df.columns]
    schema = feature_schema(schema_json.get("tfdv_schema", schema_json), features)
    schema.dataset_constraints.ClearField("min_examples_count")  # batch size: the policy's call
    t1 = time.perf_counter()
    options = tfdv.StatsOptions(schema=schema, num_top_values=50)
    stats = tfdv.generate_statistics_from_dataframe(for_tfdv(df[present]), stats_options=options)
    found = findings(tfdv.validate_statistics(stats, schema))
    seconds = time.perf_counter() - t1
    log(f"statistics of {len(df):,} rows in {seconds:.2f} s ({len(found)} anomalies)")
    with atomic_dir(out_dir) as tmp:
        (tmp / "batch_stats.pb").write_bytes(stats.SerializeToString())
        write_json(summarize_stats(stats), tmp / "batch_stats.json")
        write_json(
            {
                "findings": found,
                "rows": len(df),
                "stats_seconds": round(seconds, 3),
                "peak_rss_mb": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1),
            },
            tmp / "anomalies.json",
        )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m components.monitor.stats_job")
    parser.add_argument("--data", required=True, help="the batch (Parquet)")
    parser.add_argument("--schema", required=True, help="the champion's schema.json")
    parser.add_argument("--features-json", required=True, help="the model's feature names")
    parser.add_argument("--out", required=True, help="output folder (replaced atomically)")
    args = parser.parse_args(argv)
    try:
        schema_json = json.loads(Path(args.schema).read_text())
        features = json.loads(args.features_json)
    except (OSError, ValueError) as exc:
        print(f"monitor: invalid argument: {exc}", file=sys.stderr)
        return 2
    compute(args.data, schema_json, features, args.out)
    return 0


if __name__ == "__main__":
    sys.exit(main())
