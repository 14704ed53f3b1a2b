"""Continuous client load for the deploy tests, in its own process (so it does not share the
test process's GIL with the router): `threads` keep-alive clients send V1 predict requests of one
instance from a fixed pool until stdin closes, then print one JSON line: ok, failures by reason.
The pool is synthetic (for the stand-in server) unless ROWS names a JSON file holding a list of
instances (real rows for the real model server, which rejects anything its feature spec does not
declare).

    python load_client.py URL MODEL [threads] [ROWS]
"""

from __future__ import annotations

import json
import random
import sys
import threading
from collections import Counter

import httpx


def main() -> None:
    url, model = sys.argv[1], sys.argv[2]
    threads = int(sys.argv[3]) if len(sys.argv) > 3 else 2
    if len(sys.argv) > 4:
        with open(sys.argv[4]) as f:
            pool = json.load(f)
    else:
        rng = random.Random(0)
        pool = [{"AGEP": rng.randint(17, 90), "SCHL": rng.randint(1, 24)} for _ in range(500)]
    target = f"{url}/v1/models/{model}:predict"
    stop = threading.Event()
    lock = threading.Lock()
    ok = [0]
    failures: Counter[str] = Counter()

    def run(seed: int) -> None:
        local = random.Random(seed)
        with httpx.Client(timeout=10) as client:
            while not stop.is_set():
                try:
                    resp = client.post(target, json={"instances": [local.choice(pool)]})
                    failure = None if resp.status_code == 200 else f"HTTP {resp.status_code}"
                except httpx.HTTPError as exc:
                    failure = type(exc).__name__
                with lock:
                    if failure is None:
                        ok[0] += 1
                    else:
                        failures[failure] += 1

    workers = [threading.Thread(target=run, args=(i,)) for i in range(threads)]
    for w in workers:
        w.start()
    print("STARTED", flush=True)
    sys.stdin.read()  # until the test closes our stdin
    stop.set()
    for w in workers:
        w.join(15)
    print(json.dumps({"ok": ok[0], "failures": dict(failures)}), flush=True)


if __name__ == "__main__":
    main()
