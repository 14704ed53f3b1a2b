"""The TFDV side of `mlpipe schema infer`. Runs only in the tfdv environment (TFDV 1.16):

    python -m components.validate.draft_job --data data.parquet --out tfdv.json

Computes the data's statistics and TFDV's own inferred schema (tfdv.infer_schema) and writes what
the draft uses per column: TFDV's type, missing count, distinct count (text columns), min/max
(numeric), and the string domain TFDV infers for a text column. Exit code 0 when written, 1 for
anything unexpected.
"""

from __future__ import annotations

import argparse
import sys
from typing import Any

from components.common.artifacts import atomic_path, write_json
from components.common.tfdv_stats import for_tfdv, import_tfdv, summarize_stats


def log(message: str) -> None:
    print(f"schema infer: {message}", flush=True)


def summarize(stats: Any, schema: Any) -> dict[str, Any]:
    """Per column: the statistics' summary plus what infer_schema decided."""
    from tensorflow_metadata.proto.v0 import schema_pb2

    summary = summarize_stats(stats)
    domains = {d.name: list(d.value) for d in schema.string_domain}
    for feature in schema.feature:
        entry = summary["features"].setdefault(feature.name, {})
        entry["inferred_type"] = schema_pb2.FeatureType.Name(feature.type)
        entry["presence_min_fraction"] = feature.presence.min_fraction
        if feature.HasField("domain") and feature.domain in domains:
            entry["string_domain"] = domains[feature.domain]
        entry.pop("histogram", None)  # the draft has no use for it
        entry.pop("top_values", None)
    return summary


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m components.validate.draft_job")
    parser.add_argument("--data", required=True, help="the data (Parquet)")
    parser.add_argument("--out", required=True, help="the JSON file to write")
    args = parser.parse_args(argv)
    import pandas as pd

    tfdv = import_tfdv()
    df = pd.read_parquet(args.data)
    stats = tfdv.generate_statistics_from_dataframe(for_tfdv(df))
    schema = tfdv.infer_schema(stats, infer_feature_shape=False)
    summary = summarize(stats, schema) | {"tfdv_version": tfdv.__version__}
    with atomic_path(args.out, ".json") as tmp:
        write_json(summary, tmp)
    log(f"TFDV {tfdv.__version__}: statistics and inferred schema of {len(df):,} rows")
    return 0


if __name__ == "__main__":
    sys.exit(main())
