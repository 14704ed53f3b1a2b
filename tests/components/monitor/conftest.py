"""Helpers shared by the monitor stage's test modules: a statistics summary built with pandas and
a model server request-log line."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd


def summary(df: pd.DataFrame, schema) -> dict:
    """A statistics summary in the TFDV job's format, built with pandas (test data only)."""
    features = {}
    for name, spec in schema.features.items():
        if name not in df.columns:
            continue
        s = df[name]
        if spec.kind == "categorical":
            counts = s.value_counts()
            features[name] = {
                "kind": "categorical",
                "top_values": [[str(k), int(v)] for k, v in counts.items()],
            }
        else:
            counts, edges = np.histogram(s, bins=10)
            features[name] = {
                "kind": "numeric",
                "histogram": [
                    [float(edges[i]), float(edges[i + 1]), float(c)] for i, c in enumerate(counts)
                ],
            }
    return {"rows": len(df), "features": features}


def log_line(i: int, rows: list[dict], status=200) -> str:
    """One request-log line as the model server writes it (request id `r<i>`)."""
    return json.dumps(
        {
            "ts": 1.0 + i,
            "model": "acs-employment",
            "model_version": "3",
            "request_id": f"r{i}",
            "protocol": "v1",
            "status": status,
            "latency_ms": 0.7,
            "inputs": rows,
            "outputs": [0.1 * (k + 1) for k in range(len(rows))],
        }
    )
