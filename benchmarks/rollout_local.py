"""Local rollouts under continuous client load, and the router's own cost.

Until the model server (components/serve) is merged, the upstreams are the deploy tests' stand-in
server (tests/deploy/upstream_server.py: its own process, deterministic scores, the real server's
fault switches). For each canary — good, `invert`, `error:0.3`, `latency:20` — it prints the
outcome, the reason, how long the rollout took, how many client requests the canary answered and
how many client requests failed. Then it times one keep-alive client (its own process) posting
sequentially straight to a server and through the router.

    uv run python benchmarks/rollout_local.py [--min-requests 100] [--seconds 2] [--threads 2]
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from components.deploy.analysis import Policy
from components.deploy.local_target import LocalTarget
from components.deploy.rollout import Candidate, Rollout, WindowSpec
from components.deploy.router import Router
from tests.deploy.conftest import MODEL, LoadClient, ProcessBackend


def rollouts(args: argparse.Namespace) -> None:
    window = WindowSpec(args.seconds, args.min_requests, 120, 0.2)
    policy = Policy(max_p99_ms=args.max_p99_ms, min_canary_requests=args.min_requests)
    print(f"canary steps {args.steps}, window {args.seconds}s / {args.min_requests} requests")
    head = f"{'canary':<12}{'outcome':<13}{'s':>6}{'answered':>10}{'client ok':>11}{'failed':>8}"
    print(f"{head}  reason")
    for fault in (None, "invert", "error:0.3", "latency:20"):
        backend = ProcessBackend()
        target = LocalTarget.serve(backend, "v1", MODEL, version="v1")
        with target, LoadClient(target.url, threads=args.threads) as load:
            time.sleep(0.5)
            rollout = Rollout(target, steps=args.steps, window=window, policy=policy)
            result = rollout.run(Candidate("v2", "v2", fault))
            time.sleep(0.3)
        backend.close()
        print(
            f"{fault or 'good':<12}{result.outcome:<13}{result.seconds:>6.1f}"
            f"{result.canary_requests:>10}{load.ok:>11}{load.failed:>8}  {result.reason}"
        )


_CLIENT = """
import json, sys, time, httpx
base, seconds, model = sys.argv[1], float(sys.argv[2]), sys.argv[3]
lat = []
with httpx.Client(base_url=base) as client:
    end = time.perf_counter() + seconds
    i = 0
    while time.perf_counter() < end:
        t = time.perf_counter()
        client.post(f"/v1/models/{model}:predict", json={"instances": [{"i": i}]})
        lat.append((time.perf_counter() - t) * 1000)
        i += 1
print(json.dumps(lat))
"""


def overhead(seconds: float = 3.0) -> None:
    """One sequential keep-alive client in its own process (not sharing the router's GIL)."""
    backend = ProcessBackend()
    url = backend.start("v1", MODEL)
    with Router(url).start() as router:
        for label, base in (("direct", url), ("via router", router.url)):
            out = subprocess.run(
                [sys.executable, "-c", _CLIENT, base, str(seconds), MODEL],
                capture_output=True,
                text=True,
                check=True,
            ).stdout
            lat = sorted(json.loads(out))
            print(
                f"{label:<11} {len(lat) / seconds:7.0f} requests/s  p50 {lat[len(lat) // 2]:.2f} ms"
                f"  p99 {lat[int(len(lat) * 0.99)]:.2f} ms"
            )
    backend.close()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--min-requests", type=int, default=100)
    parser.add_argument("--seconds", type=float, default=2.0)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--max-p99-ms", type=float, default=15.0)
    parser.add_argument("--steps", type=int, nargs="+", default=[10, 50, 100])
    args = parser.parse_args()
    rollouts(args)
    overhead()


if __name__ == "__main__":
    main()
