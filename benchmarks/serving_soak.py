"""Soak: the real model server under steady load for ten minutes with the request log on.

What a pod does all day: a fixed request rate (one-row V1 requests, every 20th a 100-row batch),
a readiness probe every second, the request log written and rotated (small files here so it
rotates several times). Reported: the server's RSS over time (sampled from /proc every 5 s; the
first minute is warm-up — allocator pools, the model's first batches — and sets the baseline),
failed requests (any non-200 answer or connection error), request and probe latency, and the
request log's files at the end (bounded: at most backups + 1 files of about the rotation size).

Pass: RSS after warm-up within 10 % of the baseline, no failed request.

    uv run python benchmarks/serving_soak.py [--minutes 10] [--rate 200] [--model-dir D]
        [--output outputs/benchmarks/serving_soak.json]
"""

from __future__ import annotations

import argparse
import http.client
import json
import os
import platform
import tempfile
import threading
import time
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import numpy as np
import pandas as pd

from benchmarks.serving_latency import DATA, train_reference
from components.common.artifacts import load_model
from components.common.config import REPO_ROOT
from components.serve.launch import start_server
from components.serve.request_log import request_log_files

NAME = "acs"
WARMUP_S = 60
BATCH_EVERY = 20  # every 20th request carries 100 rows
BATCH_ROWS = 100
LOG_MAX_MB = 2.0
LOG_BACKUPS = 3


def rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    raise RuntimeError(f"no VmRSS for pid {pid}")


def request_bodies(model_dir: Path) -> tuple[list[bytes], list[bytes]]:
    """One-row and 100-row V1 bodies from the 2016 rows (distinct rows, as production sees)."""
    _, spec = load_model(model_dir)
    names = [f["name"] for f in spec["features"]]
    data = pd.read_parquet(DATA)
    rows = data[data.year == 2016][names].sample(n=5000, random_state=0)
    records = [{k: int(v) for k, v in r.items()} for r in rows.to_dict("records")]
    one = [json.dumps({"instances": [r]}).encode() for r in records[:1000]]
    batch = [
        json.dumps({"instances": records[i : i + BATCH_ROWS]}).encode()
        for i in range(0, len(records), BATCH_ROWS)
    ]
    return one, batch


class Load:
    """`connections` keep-alive clients, each sending at rate/connections on a fixed schedule
    (an open-loop rate: a slow answer does not lower the offered load, as with real clients)."""

    def __init__(self, url: str, rate: float, connections: int, bodies: tuple[list, list]):
        self.url = urlsplit(url)
        self.interval = connections / rate
        self.connections = connections
        self.one, self.batch = bodies
        self.stop = threading.Event()
        self.lock = threading.Lock()
        self.latencies_ms: list[float] = []
        self.sent = self.failed = self.late = 0
        self.failures: list[str] = []

    def _client(self, index: int) -> None:
        conn = http.client.HTTPConnection(self.url.hostname, self.url.port, timeout=10)
        path = f"/v1/models/{NAME}:predict"
        headers = {"Content-Type": "application/json"}
        n, next_at = index, time.monotonic()
        while not self.stop.is_set():
            body = (
                self.batch[n % len(self.batch)]
                if n % BATCH_EVERY == 0
                else self.one[n % len(self.one)]
            )
            start = time.monotonic()
            error = None
            try:
                conn.request("POST", path, body=body, headers=headers)
                response = conn.getresponse()
                payload = response.read()
                if response.status != 200 or b"predictions" not in payload:
                    error = f"HTTP {response.status}: {payload[:200]!r}"
            except (OSError, http.client.HTTPException) as exc:
                error = f"{type(exc).__name__}: {exc}"
                conn.close()
                conn = http.client.HTTPConnection(self.url.hostname, self.url.port, timeout=10)
            elapsed = (time.monotonic() - start) * 1000
            with self.lock:
                self.sent += 1
                self.latencies_ms.append(elapsed)
                if error:
                    self.failed += 1
                    if len(self.failures) < 20:
                        self.failures.append(error)
            n += self.connections
            next_at += self.interval
            delay = next_at - time.monotonic()
            if delay > 0:
                self.stop.wait(delay)
            elif delay < -1.0:  # more than a second behind: count it, do not burst to catch up
                with self.lock:
                    self.late += 1
                next_at = time.monotonic()
        conn.close()

    def start(self) -> list[threading.Thread]:
        threads = [
            threading.Thread(target=self._client, args=(i,), daemon=True)
            for i in range(self.connections)
        ]
        for t in threads:
            t.start()
        return threads


def probe_loop(url: str, stop: threading.Event, out: list[float], failures: list[str]) -> None:
    parts = urlsplit(url)
    while not stop.is_set():
        start = time.monotonic()
        try:
            conn = http.client.HTTPConnection(parts.hostname, parts.port, timeout=5)
            conn.request("GET", "/v2/health/ready")
            response = conn.getresponse()
            response.read()
            conn.close()
            if response.status != 200:
                failures.append(f"probe HTTP {response.status}")
        except (OSError, http.client.HTTPException) as exc:
            failures.append(f"probe {type(exc).__name__}: {exc}")
        out.append((time.monotonic() - start) * 1000)
        stop.wait(1.0)


def percentile(values: list[float], q: float) -> float:
    return float(np.percentile(values, q)) if values else float("nan")


def run(model_dir: Path | None, minutes: float, rate: float, connections: int, output: Path):
    workdir = Path(tempfile.mkdtemp(prefix="serving-soak-"))
    if model_dir is None:
        print("training the reference LightGBM (400 trees, 63 leaves) on 2015 ...", flush=True)
        model_dir = train_reference(workdir)
    bodies = request_bodies(model_dir)
    log_path = workdir / "requests.jsonl"
    result: dict[str, Any] = {
        "machine": {"cpus": os.cpu_count(), "python": platform.python_version()},
        "load_avg_before": os.getloadavg(),
        "minutes": minutes,
        "rate_per_s": rate,
        "connections": connections,
        "mix": f"one-row V1; every {BATCH_EVERY}th request {BATCH_ROWS} rows",
        "request_log": {"max_mb": LOG_MAX_MB, "backups": LOG_BACKUPS},
    }
    server = start_server(
        model_dir,
        NAME,
        request_log=log_path,
        extra_args=[
            "--request-log-max-mb",
            str(LOG_MAX_MB),
            "--request-log-backups",
            str(LOG_BACKUPS),
        ],
    )
    samples: list[tuple[float, float]] = []
    probes: list[float] = []
    probe_failures: list[str] = []
    load = Load(server.url, rate, connections, bodies)
    stop_probe = threading.Event()
    try:
        t0 = time.monotonic()
        threads = load.start()
        prober = threading.Thread(
            target=probe_loop, args=(server.url, stop_probe, probes, probe_failures), daemon=True
        )
        prober.start()
        end = t0 + minutes * 60
        while time.monotonic() < end:
            if not server.alive():
                raise RuntimeError(f"the server exited during the soak:\n{server.log_path}")
            samples.append((time.monotonic() - t0, rss_mb(server.pid)))
            elapsed = samples[-1][0]
            if int(elapsed) % 60 < 5:
                print(
                    f"{elapsed:6.0f} s  RSS {samples[-1][1]:7.1f} MB  sent {load.sent:>7,}  "
                    f"failed {load.failed}",
                    flush=True,
                )
            time.sleep(5)
        load.stop.set()
        stop_probe.set()
        for t in [*threads, prober]:
            t.join(15)
        wall = time.monotonic() - t0
        time.sleep(2)  # the log's flusher runs every second
        log_files = [(p.name, p.stat().st_size) for p in request_log_files(log_path)]
    finally:
        server.stop()
    after = [rss for t, rss in samples if t >= WARMUP_S]
    baseline = float(np.median([rss for t, rss in samples if WARMUP_S <= t < WARMUP_S + 60]))
    times = np.array([t for t, _ in samples if t >= WARMUP_S])
    slope = float(np.polyfit(times / 60, np.array(after), 1)[0]) if len(after) > 2 else 0.0
    result.update(
        {
            "wall_s": wall,
            "requests": load.sent,
            "achieved_rate_per_s": load.sent / wall,
            "failed_requests": load.failed,
            "failures": load.failures,
            "late_schedule_resets": load.late,
            "latency_ms": {q: percentile(load.latencies_ms, float(q)) for q in ("50", "99")}
            | {"max": max(load.latencies_ms, default=float("nan"))},
            "probe_ms": {q: percentile(probes, float(q)) for q in ("50", "99")}
            | {"max": max(probes, default=float("nan")), "failures": probe_failures[:20]},
            "rss_mb": {
                "at_start": samples[0][1],
                "baseline_after_warmup": baseline,
                "min_after_warmup": min(after),
                "max_after_warmup": max(after),
                "final": after[-1],
                "max_change_vs_baseline": max(abs(r - baseline) for r in after) / baseline,
                "slope_mb_per_min": slope,
                "samples": samples,
            },
            "request_log_files": log_files,
            "load_avg_after": os.getloadavg(),
        }
    )
    rss = result["rss_mb"]
    result["pass"] = bool(
        rss["max_change_vs_baseline"] <= 0.10 and load.failed == 0 and not probe_failures
    )
    output.parent.mkdir(parents=True, exist_ok=True)
    output.write_text(json.dumps(result, indent=2))
    print(
        f"\n{load.sent:,} requests in {wall:.0f} s ({result['achieved_rate_per_s']:.0f}/s), "
        f"failed {load.failed}; latency p50 {result['latency_ms']['50']:.2f} ms, "
        f"p99 {result['latency_ms']['99']:.2f} ms; readiness probe p99 "
        f"{result['probe_ms']['99']:.1f} ms, max {result['probe_ms']['max']:.1f} ms\n"
        f"RSS: start {rss['at_start']:.1f} MB, baseline after warm-up {baseline:.1f} MB, "
        f"range {rss['min_after_warmup']:.1f}–{rss['max_after_warmup']:.1f} MB "
        f"(max change {rss['max_change_vs_baseline']:.1%}), slope {slope:+.2f} MB/min\n"
        f"request log files at the end: {log_files}\n"
        f"{'PASS' if result['pass'] else 'FAIL'}: RSS within 10 % and no failed request\n"
        f"wrote {output}"
    )
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model-dir", type=Path, default=None)
    parser.add_argument("--minutes", type=float, default=10.0)
    parser.add_argument("--rate", type=float, default=200.0, help="requests per second")
    parser.add_argument("--connections", type=int, default=4)
    parser.add_argument(
        "--output", type=Path, default=REPO_ROOT / "outputs" / "benchmarks" / "serving_soak.json"
    )
    args = parser.parse_args()
    result = run(args.model_dir, args.minutes, args.rate, args.connections, args.output)
    raise SystemExit(0 if result["pass"] else 1)


if __name__ == "__main__":
    main()
