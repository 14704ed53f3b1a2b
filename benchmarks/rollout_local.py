"""Local rollouts under continuous client load, and the router's own cost.

By default the upstreams are the deploy tests' stand-in server
(tests/components/deploy/upstream_server.py: its own process, deterministic scores, the real
server's fault switches). `--real` uses the real model server through `ServeBackend`
(components.serve.launch) with two real LightGBM models (a stable one and a retrained candidate,
trained by the features and train stages on samples of the bundled data) and real 2016 rows as V1
requests. For each canary — good, `invert`, `error:0.3`, `latency:20` — it prints the outcome, the
reason, how long the rollout took (with the candidate's start) and its analysis windows alone, how
many client requests the canary answered and how many client requests failed. Then it times one
keep-alive client (its own process) posting sequentially straight to a server and through the
router.

    uv run python benchmarks/rollout_local.py [--real] [--min-requests 100] [--seconds 2]
        [--threads 2]
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from components.deploy.analysis import Policy
from components.deploy.backend import ServeBackend
from components.deploy.local_target import LocalTarget
from components.deploy.rollout import Candidate, Rollout, WindowSpec
from components.deploy.router import Router
from tests.components.deploy.conftest import MODEL, LoadClient, ProcessBackend


@dataclass
class Setup:
    """What a run serves: the backend kind, the two models, the name, the requests."""

    backend: Callable[[], ProcessBackend | ServeBackend]
    stable: str
    candidate: str
    name: str
    rows: Path | None  # V1 instances for the load client (None: its synthetic pool)
    instance: dict  # one request row for the overhead client


def stand_in() -> Setup:
    return Setup(ProcessBackend, "v1", "v2", MODEL, None, {"i": 0})


def real(workdir: Path) -> Setup:
    from tests.components.deploy.real_models import stable_and_candidate, write_request_rows

    started = time.perf_counter()
    stable, candidate = stable_and_candidate(workdir)
    rows = write_request_rows(stable, workdir / "rows-2016.json")
    print(f"trained stable and candidate LightGBM in {time.perf_counter() - started:.1f} s")
    first = json.loads(rows.read_text())[0]
    return Setup(ServeBackend, str(stable), str(candidate), "acs-employment", rows, first)


def rollouts(args: argparse.Namespace, setup: Setup) -> None:
    window = WindowSpec(args.seconds, args.min_requests, 120, 0.2)
    policy = Policy(
        max_p99_ms=args.max_p99_ms,
        min_canary_requests=args.min_requests,
        latency_stable_ratio=args.latency_ratio,
    )
    print(f"canary steps {args.steps}, window {args.seconds}s / {args.min_requests} requests")
    head = (
        f"{'canary':<12}{'outcome':<13}{'s':>6}{'windows s':>10}{'answered':>10}"
        f"{'client ok':>11}{'failed':>8}"
    )
    print(f"{head}  reason")
    for fault in (None, "invert", "error:0.3", "latency:20"):
        backend = setup.backend()
        target = LocalTarget.serve(backend, setup.stable, setup.name, version="v1")
        load = LoadClient(target.url, threads=args.threads, model=setup.name, rows=setup.rows)
        with target, load:
            time.sleep(0.5)
            rollout = Rollout(target, steps=args.steps, window=window, policy=policy)
            result = rollout.run(Candidate(setup.candidate, "v2", fault))
            time.sleep(0.3)
        backend.close()
        windows_s = sum(w.seconds for w in result.windows)
        print(
            f"{fault or 'good':<12}{result.outcome:<13}{result.seconds:>6.1f}{windows_s:>10.1f}"
            f"{result.canary_requests:>10}{load.ok:>11}{load.failed:>8}  {result.reason}",
            flush=True,
        )


_CLIENT = """
import json, sys, time, httpx
base, seconds, model, instance = sys.argv[1], float(sys.argv[2]), sys.argv[3], sys.argv[4]
body = {"instances": [json.loads(instance)]}
lat = []
with httpx.Client(base_url=base) as client:
    end = time.perf_counter() + seconds
    while time.perf_counter() < end:
        t = time.perf_counter()
        resp = client.post(f"/v1/models/{model}:predict", json=body)
        lat.append((time.perf_counter() - t) * 1000)
        assert resp.status_code == 200, resp.text
print(json.dumps(lat))
"""


def overhead(setup: Setup, seconds: float = 3.0) -> None:
    """One sequential keep-alive client in its own process (not sharing the router's GIL)."""
    backend = setup.backend()
    url = backend.start(setup.stable, setup.name)
    with Router(url).start() as router:
        for label, base in (("direct", url), ("via router", router.url)):
            out = subprocess.run(
                [
                    sys.executable,
                    "-c",
                    _CLIENT,
                    base,
                    str(seconds),
                    setup.name,
                    json.dumps(setup.instance),
                ],
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
    parser.add_argument("--latency-ratio", type=float, default=1.5)
    parser.add_argument("--steps", type=int, nargs="+", default=[10, 50, 100])
    parser.add_argument(
        "--real", action="store_true", help="the real model server and real LightGBM models"
    )
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="mlpipe-rollout-") as tmp:
        setup = real(Path(tmp)) if args.real else stand_in()
        rollouts(args, setup)
        overhead(setup)


if __name__ == "__main__":
    main()
