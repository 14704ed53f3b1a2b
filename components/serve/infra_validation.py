"""Infra validation: does the candidate's server answer what the model answers offline?

Starts the candidate's model server (launch.start_server), sends real test rows as one-row and
batch requests over V1 and V2, and checks every answer against the offline scores (the sklearn
Pipeline's predict_proba, abs tolerance 1e-6), the V2 metadata against the feature spec, and the
p99 latency of one-row requests against a budget. Returns a report dict; raises
InfraValidationError (with the report) naming every check that failed.
"""

from __future__ import annotations

import http.client
import json
import time
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import numpy as np

from components.common import categories
from components.serve.launch import RunningServer, start_server
from components.serve.validation import V2_DATATYPES

DEFAULT_ROWS = 200
DEFAULT_BATCH = 50
DEFAULT_TOLERANCE = 1e-6
DEFAULT_P99_BUDGET_MS = 50.0


class InfraValidationError(RuntimeError):
    def __init__(self, message: str, report: dict[str, Any]) -> None:
        self.report = report
        super().__init__(message)


class _Client:
    """One keep-alive HTTP connection (what a real client would use)."""

    def __init__(self, url: str) -> None:
        parts = urlsplit(url)
        self.conn = http.client.HTTPConnection(parts.hostname, parts.port, timeout=30)
        self.count = 0

    def request(self, method: str, path: str, body: Any = None) -> tuple[int, Any, float]:
        data = None if body is None else json.dumps(body).encode()
        headers = {"Content-Type": "application/json"} if data else {}
        self.count += 1
        start = time.perf_counter()
        self.conn.request(method, path, body=data, headers=headers)
        response = self.conn.getresponse()
        payload = response.read()
        elapsed_ms = (time.perf_counter() - start) * 1000
        try:
            parsed = json.loads(payload) if payload else None
        except ValueError:
            parsed = payload.decode(errors="replace")
        return response.status, parsed, elapsed_ms

    def close(self) -> None:
        self.conn.close()


def _rows_and_reference(model_dir: str | Path, test_data: Any, n_rows: int):
    import pandas as pd

    from components.serve.model_source import load_model_source

    loaded = load_model_source(model_dir)
    names = [f["name"] for f in loaded.spec["features"]]
    frame = test_data if isinstance(test_data, pd.DataFrame) else pd.read_parquet(test_data)
    missing = [n for n in names if n not in frame.columns]
    if missing:
        raise ValueError(f"test data lacks feature column {missing[0]!r}")
    frame = frame[names].head(n_rows).reset_index(drop=True)
    classes = list(loaded.pipeline.classes_)
    reference = loaded.pipeline.predict_proba(frame)[:, classes.index(1)]
    rows = [
        {k: (v.item() if hasattr(v, "item") else v) for k, v in row.items()}
        for row in frame.to_dict(orient="records")
    ]
    # the test rows hold a string feature's codes; a client sends its texts
    for entry in loaded.spec["features"]:
        if categories.is_string(entry):
            texts = categories.decode([r[entry["name"]] for r in rows], entry)
            for row, text in zip(rows, texts, strict=True):
                row[entry["name"]] = text
    return loaded.spec, names, rows, reference


def _v2_body(names: list[str], spec: dict[str, Any], rows: list[dict[str, Any]]):
    kinds = {f["name"]: V2_DATATYPES[f["dtype"]] for f in spec["features"]}
    return {
        "inputs": [
            {"name": n, "shape": [len(rows)], "datatype": kinds[n], "data": [r[n] for r in rows]}
            for n in names
        ]
    }


def check_server(
    server: RunningServer | str,
    name: str,
    spec: dict[str, Any],
    names: list[str],
    rows: list[dict[str, Any]],
    reference: np.ndarray,
    *,
    batch_size: int = DEFAULT_BATCH,
    tolerance: float = DEFAULT_TOLERANCE,
    p99_budget_ms: float = DEFAULT_P99_BUDGET_MS,
) -> dict[str, Any]:
    """Run every check against a running server; the report (no raising)."""
    url = server if isinstance(server, str) else server.url
    client = _Client(url)
    failures: list[str] = []
    diffs: dict[str, float] = {}
    v1_path, v2_path = f"/v1/models/{name}:predict", f"/v2/models/{name}/infer"

    def compare(mode: str, got: list[float] | None, want: np.ndarray, status: int, body: Any):
        if status != 200 or got is None or len(got) != len(want):
            failures.append(f"{mode}: HTTP {status} {str(body)[:200]}")
            return
        diff = float(np.max(np.abs(np.asarray(got, dtype=np.float64) - want)))
        diffs[mode] = max(diffs.get(mode, 0.0), diff)

    try:
        status, meta, _ = client.request("GET", f"/v2/models/{name}")
        served = [i.get("name") for i in (meta or {}).get("inputs", [])] if status == 200 else []
        if served != names:
            failures.append(f"V2 metadata: inputs {served} differ from the feature spec {names}")

        latencies = []
        for i, row in enumerate(rows):
            status, body, ms = client.request("POST", v1_path, {"instances": [row]})
            latencies.append(ms)
            got = body.get("predictions") if isinstance(body, dict) else None
            compare("v1_one_row", got, reference[i : i + 1], status, body)
        for i, row in enumerate(rows[: max(1, len(rows) // 4)]):
            status, body, _ = client.request("POST", v2_path, _v2_body(names, spec, [row]))
            compare("v2_one_row", _v2_scores(body), reference[i : i + 1], status, body)
        for start in range(0, len(rows), batch_size):
            part = rows[start : start + batch_size]
            want = reference[start : start + batch_size]
            status, body, _ = client.request("POST", v1_path, {"instances": part})
            got = body.get("predictions") if isinstance(body, dict) else None
            compare("v1_batch", got, want, status, body)
            status, body, _ = client.request("POST", v2_path, _v2_body(names, spec, part))
            compare("v2_batch", _v2_scores(body), want, status, body)
    finally:
        client.close()

    for mode, diff in diffs.items():
        if diff > tolerance:
            failures.append(
                f"{mode}: answers differ from the offline predict_proba by up to {diff:.3g} "
                f"(tolerance {tolerance:g})"
            )
    lat = np.asarray(latencies) if latencies else np.asarray([np.nan])
    p50, p99 = float(np.percentile(lat, 50)), float(np.percentile(lat, 99))
    if not p99 <= p99_budget_ms:
        failures.append(
            f"latency: one-row p99 {p99:.2f} ms exceeds the budget {p99_budget_ms:g} ms"
        )
    return {
        "passed": not failures,
        "failures": _dedupe(failures),
        "rows": len(rows),
        "max_abs_diff": diffs,
        "tolerance": tolerance,
        "latency_ms": {"p50": round(p50, 3), "p99": round(p99, 3), "budget_p99": p99_budget_ms},
        "requests": client.count,
    }


def _v2_scores(body: Any) -> list[float] | None:
    try:
        (output,) = [o for o in body["outputs"] if o["name"] == "predictions"]
        return output["data"]
    except (KeyError, TypeError, ValueError):
        return None


def _dedupe(items: list[str]) -> list[str]:
    """The first failure of each check, with how many more of the same kind followed."""
    first: dict[str, str] = {}
    counts: dict[str, int] = {}
    for item in items:
        key = item.split(":", 1)[0]
        counts[key] = counts.get(key, 0) + 1
        first.setdefault(key, item)
    return [f"{msg} (+{counts[k] - 1} more)" if counts[k] > 1 else msg for k, msg in first.items()]


def validate_infra(
    model_dir: str | Path,
    test_data: Any,
    name: str = "candidate",
    *,
    n_rows: int = DEFAULT_ROWS,
    batch_size: int = DEFAULT_BATCH,
    tolerance: float = DEFAULT_TOLERANCE,
    p99_budget_ms: float = DEFAULT_P99_BUDGET_MS,
    fault: str | list[str] | None = None,
    timeout: float = 60,
) -> dict[str, Any]:
    """Start the candidate's server, check it (see the module docstring), stop it.

    `test_data`: a DataFrame or a Parquet path holding the feature columns. Raises
    InfraValidationError naming the failed checks; returns the report when all pass."""
    spec, names, rows, reference = _rows_and_reference(model_dir, test_data, n_rows)
    start = time.perf_counter()
    with start_server(model_dir, name, fault=fault, timeout=timeout) as server:
        startup_s = time.perf_counter() - start
        report = check_server(
            server,
            name,
            spec,
            names,
            rows,
            reference,
            batch_size=batch_size,
            tolerance=tolerance,
            p99_budget_ms=p99_budget_ms,
        )
        if not server.alive():
            report["failures"].append("the server died during validation")
            report["passed"] = False
    report["startup_s"] = round(startup_s, 3)
    report["model"] = str(model_dir)
    if not report["passed"]:
        raise InfraValidationError(
            f"infra validation of {model_dir} failed: " + "; ".join(report["failures"]), report
        )
    return report
