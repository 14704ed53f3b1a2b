"""Serving latency and throughput of the model server, driven by wrk on loopback.

Starts the real server (a subprocess, as in production: uvicorn + httptools + uvloop, 1 worker,
127.0.0.1, no access log) and loads it with wrk (Debian package `wrk`; a Lua script POSTs the
body):
  - one-row V1 requests at 1, 4, 8, 16 connections (1 wrk thread: the other core is the
    server's), and one-row V2 at 1 connection: requests/s, p50, p99;
  - 1,000-row V1 requests: rows/s, against the raw model's rows/s in-process (the sklearn
    Pipeline's predict_proba on a DataFrame, and the numpy fast path) on the same rows;
  - for comparison, the same one-row V1 load through KServe's own FastAPI routes
    (`--kserve-routes`, same uvicorn) and through stock `kserve.ModelServer` serving the same
    TabularModel (benchmarks/stock_kserve_server.py): what the lean hot routes save.
Also in-process one-row latency of the numpy fast path and of the pandas path.

The default model is a reference LightGBM (400 trees, learning rate 0.05, 63 leaves,
native categoricals) trained on 2015; `--model-dir` benchmarks another one.

    uv run python benchmarks/serving_latency.py [--model-dir D] [--duration 10] [--output F]
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import platform
import re
import shutil
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from components.common.artifacts import load_model
from components.common.config import REPO_ROOT, load_data_schema
from components.serve.fast_path import build_scorer
from components.serve.launch import start_server

DATA = REPO_ROOT / "data" / "acs_employment_ma_2015_2018.parquet"
REFERENCE_PARAMS = {"n_estimators": 400, "learning_rate": 0.05, "num_leaves": 63, "n_jobs": 2}
CONNECTIONS = (1, 4, 8, 16)
BATCH_ROWS = 1000
LUA = """
local f = assert(io.open("{body}", "rb"))
wrk.method = "POST"
wrk.headers["Content-Type"] = "application/json"
wrk.body = f:read("*a")
f:close()
"""


def train_reference(root: Path) -> Path:
    from components.features.features import run as features
    from components.train.train import run as train

    schema = load_data_schema()
    features(
        str(DATA),
        schema.model_dump(mode="json"),
        {
            "split": {"method": "time", "train_window": [2015, 2015], "test_window": [2016, 2016]},
            "scaling_method": "standard",
            "categorical_encoding": "native",
        },
        str(root / "train.parquet"),
        str(root / "test.parquet"),
        str(root / "transformer"),
    )
    train(
        str(root / "train.parquet"),
        str(root / "transformer"),
        "lightgbm",
        REFERENCE_PARAMS,
        42,
        str(root / "model"),
    )
    return root / "model"


def cpu_seconds(pid: int) -> float:
    """User + system CPU time of a process (Linux /proc): the server's cost per request does not
    depend on how busy the other core is, unlike wall-clock figures."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def wrk(
    url: str, body_file: Path, connections: int, duration: int, workdir: Path, pid: int = 0
) -> dict:
    script = workdir / f"post-{body_file.stem}.lua"
    script.write_text(LUA.format(body=body_file))
    cmd = [
        "wrk",
        "-t1",
        f"-c{connections}",
        f"-d{duration}s",
        "--latency",
        "-s",
        str(script),
        url,
    ]
    cpu_before = cpu_seconds(pid) if pid else 0.0
    out = subprocess.run(cmd, capture_output=True, text=True, check=True).stdout
    cpu_used = cpu_seconds(pid) - cpu_before if pid else 0.0
    if "Non-2xx" in out or "Socket errors" in out:
        raise RuntimeError(f"wrk saw errors:\n{out}")

    def latency_ms(pct: str) -> float:
        value, unit = re.search(rf"^\s+{pct}%\s+([\d.]+)(us|ms|s)\s*$", out, re.M).groups()
        return float(value) * {"us": 1e-3, "ms": 1.0, "s": 1e3}[unit]

    requests = int(re.search(r"(\d+) requests in", out)[1])
    return {
        "connections": connections,
        "requests_per_s": float(re.search(r"Requests/sec:\s+([\d.]+)", out)[1]),
        "p50_ms": latency_ms("50"),
        "p99_ms": latency_ms("99"),
        "requests": requests,
        # server CPU per request; 1e6 / this = requests/s one free core could serve
        "server_cpu_us_per_request": cpu_used / max(requests, 1) * 1e6 if pid else None,
    }


@contextlib.contextmanager
def stock_server(model_dir: Path, name: str, timeout: float = 120):
    """benchmarks/stock_kserve_server.py in a subprocess: (url, pid) once the model is ready."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    script = Path(__file__).with_name("stock_kserve_server.py")
    proc = subprocess.Popen(
        [sys.executable, str(script), str(model_dir), name, str(port)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        cwd=REPO_ROOT,
    )
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + timeout
        while True:
            try:
                with urllib.request.urlopen(f"{url}/v2/models/{name}/ready", timeout=2) as r:
                    if r.status == 200:
                        break
            except OSError:
                pass
            if proc.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError("the stock KServe ModelServer did not start")
            time.sleep(0.2)
        yield url, proc.pid
    finally:
        proc.terminate()
        proc.wait(30)


def raw_model_rows_per_s(model_dir: Path, frame: pd.DataFrame, seconds: float = 3.0) -> dict:
    pipeline, spec = load_model(model_dir)
    names = [f["name"] for f in spec["features"]]
    batch = frame[names].head(BATCH_ROWS)
    raw = batch.to_numpy(dtype=np.float64)
    scorer = build_scorer(pipeline, spec)

    def rate(fn) -> float:
        fn()
        n, start = 0, time.perf_counter()
        while time.perf_counter() - start < seconds:
            fn()
            n += 1
        return n * len(batch) / (time.perf_counter() - start)

    def one_row_ms(fn, rows) -> float:
        times = []
        for row in rows:
            start = time.perf_counter()
            fn(row)
            times.append(time.perf_counter() - start)
        return float(np.median(times) * 1000)

    frames = [batch.iloc[i : i + 1] for i in range(200)]
    return {
        "scorer": scorer.kind,
        "pipeline_predict_proba_rows_per_s": rate(lambda: pipeline.predict_proba(batch)),
        "fast_path_rows_per_s": rate(lambda: scorer(raw)),
        "one_row_fast_path_ms": one_row_ms(scorer, [raw[i : i + 1] for i in range(200)]),
        "one_row_pandas_ms": one_row_ms(pipeline.predict_proba, frames),
    }


def bodies(model_dir: Path, frame: pd.DataFrame, workdir: Path) -> dict[str, Path]:
    _, spec = load_model(model_dir)
    names = [f["name"] for f in spec["features"]]
    rows = [
        {k: int(v) for k, v in r.items()} for r in frame[names].head(BATCH_ROWS).to_dict("records")
    ]
    kinds = {f["name"]: "INT64" if f["dtype"] == "int" else "FP64" for f in spec["features"]}
    files = {
        "v1_one": {"instances": rows[:1]},
        "v1_batch": {"instances": rows},
        "v2_one": {
            "inputs": [
                {"name": n, "shape": [1], "datatype": kinds[n], "data": [rows[0][n]]} for n in names
            ]
        },
    }
    out = {}
    for key, body in files.items():
        out[key] = workdir / f"{key}.json"
        out[key].write_text(json.dumps(body))
    return out


def run(model_dir: Path | None, duration: int, output: Path) -> dict[str, Any]:
    if shutil.which("wrk") is None:
        raise SystemExit("wrk not found: apt-get install -y wrk")
    workdir = Path(tempfile.mkdtemp(prefix="serving-bench-"))
    if model_dir is None:
        print("training the reference LightGBM (400 trees, 63 leaves) on 2015 ...", flush=True)
        model_dir = train_reference(workdir)
        test = pd.read_parquet(workdir / "test.parquet")
    else:
        data = pd.read_parquet(DATA)
        test = data[data.year == 2016]
    test = test.sample(frac=1.0, random_state=0)
    files = bodies(model_dir, test, workdir)
    name = "acs"
    result: dict[str, Any] = {
        "model_dir": str(model_dir),
        "machine": {"cpus": os.cpu_count(), "python": platform.python_version()},
        "load_avg_before": os.getloadavg(),
        "duration_s": duration,
    }
    print("raw model in-process ...", flush=True)
    result["raw_model"] = raw_model_rows_per_s(model_dir, test)
    for mode, kserve_routes in (("lean", False), ("kserve_routes", True)):
        with start_server(model_dir, name, kserve_routes=kserve_routes) as server:
            v1 = f"{server.url}/v1/models/{name}:predict"
            wrk(v1, files["v1_one"], 1, 2, workdir)  # warm-up
            points = CONNECTIONS if mode == "lean" else (1, 8)
            result[mode] = {"v1_one_row": []}
            for c in points:
                print(f"{mode}: one-row V1, {c} connection(s) ...", flush=True)
                result[mode]["v1_one_row"].append(
                    wrk(v1, files["v1_one"], c, duration, workdir, server.pid)
                )
            if mode == "lean":
                v2 = f"{server.url}/v2/models/{name}/infer"
                print("lean: one-row V2, 1 connection ...", flush=True)
                result[mode]["v2_one_row"] = wrk(
                    v2, files["v2_one"], 1, duration, workdir, server.pid
                )
                print(f"lean: {BATCH_ROWS}-row V1 batches ...", flush=True)
                batch = wrk(v1, files["v1_batch"], 1, duration, workdir, server.pid)
                batch["rows_per_s"] = batch["requests_per_s"] * BATCH_ROWS
                result[mode]["v1_batch"] = batch
    print("stock kserve.ModelServer: one-row V1, 1 and 8 connections ...", flush=True)
    with stock_server(model_dir, name) as (url, pid):
        v1 = f"{url}/v1/models/{name}:predict"
        wrk(v1, files["v1_one"], 1, 2, workdir)  # warm-up
        result["stock_modelserver"] = {
            "v1_one_row": [wrk(v1, files["v1_one"], c, duration, workdir, pid) for c in (1, 8)]
        }
    result["load_avg_after"] = os.getloadavg()
    raw = result["raw_model"]
    result["batch_vs_raw"] = {
        "vs_pipeline": result["lean"]["v1_batch"]["rows_per_s"]
        / raw["pipeline_predict_proba_rows_per_s"],
        "vs_fast_path": result["lean"]["v1_batch"]["rows_per_s"] / raw["fast_path_rows_per_s"],
    }
    output.parent.mkdir(parents=True, exist_ok=True)
    output.write_text(json.dumps(result, indent=2))
    print(table(result))
    print(f"\nwrote {output}")
    return result


def table(r: dict[str, Any]) -> str:
    lines = [
        f"\nload average before/after: {r['load_avg_before'][0]:.2f} / {r['load_avg_after'][0]:.2f}"
        " (other processes share these cores: figures are noisy)",
        f"{'path':<17} {'request':<12} {'conns':>5} {'req/s':>9} {'p50 ms':>8} {'p99 ms':>8} "
        f"{'server CPU µs/req':>18}",
    ]
    for mode in ("lean", "kserve_routes", "stock_modelserver"):
        for p in r[mode]["v1_one_row"]:
            lines.append(
                f"{mode:<17} {'V1 one row':<12} {p['connections']:>5} {p['requests_per_s']:>9,.0f} "
                f"{p['p50_ms']:>8.2f} {p['p99_ms']:>8.2f} {p['server_cpu_us_per_request']:>18.0f}"
            )
    v2, batch = r["lean"]["v2_one_row"], r["lean"]["v1_batch"]
    lines.append(
        f"{'lean':<17} {'V2 one row':<12} {1:>5} {v2['requests_per_s']:>9,.0f} "
        f"{v2['p50_ms']:>8.2f} {v2['p99_ms']:>8.2f} {v2['server_cpu_us_per_request']:>18.0f}"
    )
    lines.append(
        f"{'lean':<17} {f'V1 {BATCH_ROWS} rows':<12} {1:>5} {batch['requests_per_s']:>9,.1f} "
        f"{batch['p50_ms']:>8.2f} {batch['p99_ms']:>8.2f} "
        f"{batch['server_cpu_us_per_request']:>18.0f}"
    )
    raw = r["raw_model"]
    lines += [
        "",
        f"batch through the server : {batch['rows_per_s']:>10,.0f} rows/s",
        f"raw model, sklearn Pipeline predict_proba (DataFrame): "
        f"{raw['pipeline_predict_proba_rows_per_s']:>10,.0f} rows/s "
        f"(server = {r['batch_vs_raw']['vs_pipeline']:.2f}x)",
        f"raw model, numpy fast path: {raw['fast_path_rows_per_s']:>10,.0f} rows/s "
        f"(server = {r['batch_vs_raw']['vs_fast_path']:.2f}x)",
        f"one row in-process: fast path {raw['one_row_fast_path_ms']:.3f} ms, "
        f"pandas path {raw['one_row_pandas_ms']:.3f} ms",
    ]
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model-dir", type=Path, default=None)
    parser.add_argument("--duration", type=int, default=10, help="seconds per wrk run")
    parser.add_argument(
        "--output", type=Path, default=REPO_ROOT / "outputs" / "benchmarks" / "serving_latency.json"
    )
    args = parser.parse_args()
    run(args.model_dir, args.duration, args.output)


if __name__ == "__main__":
    main()
