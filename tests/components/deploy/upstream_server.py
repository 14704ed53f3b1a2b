"""A tiny model server for the deploy tests (stdlib only, its own process): V1
`POST /v1/models/{name}:predict` and V2 `POST /v2/models/{name}/infer`, readiness
`GET /v2/health/ready`, and the fault switches of the real server (`invert`, `error:0.3`,
`latency:20`, comma-separated).

Scores are deterministic per instance (a hash of it): about 60 % of instances score low and
widely spread, 40 % high and tight, so inverting the scores changes the distribution plainly.

    python upstream_server.py --name m [--fault invert] [--port 0]   # prints "PORT <n>"
"""

from __future__ import annotations

import argparse
import hashlib
import json
import random
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer


def score(instance: object) -> float:
    digest = hashlib.sha256(json.dumps(instance, sort_keys=True).encode()).digest()
    u, v = digest[0] / 255, int.from_bytes(digest[1:5], "big") / 2**32
    return 0.02 + 0.45 * v**2 if u < 0.6 else 0.85 + 0.13 * v


class Faults:
    def __init__(self, spec: str | None) -> None:
        self.invert = False
        self.error_rate = 0.0
        self.latency_s = 0.0
        for part in filter(None, (spec or "").split(",")):
            name, _, value = part.strip().partition(":")
            if name == "invert":
                self.invert = True
            elif name == "error":
                self.error_rate = float(value)
            elif name == "latency":
                self.latency_s = float(value) / 1000
            else:
                raise SystemExit(f"unknown fault {part!r}")
        self.rng = random.Random(7)


def make_handler(name: str, faults: Faults) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"  # keep-alive
        disable_nagle_algorithm = True  # headers and body are two writes: no 40 ms stalls

        def log_message(self, *args: object) -> None:
            pass

        def _send(self, status: int, doc: object) -> None:
            body = json.dumps(doc).encode()
            self.send_response(status)
            self.send_header("content-type", "application/json")
            self.send_header("content-length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def do_GET(self) -> None:
            if self.path in ("/v2/health/ready", "/v2/health/live"):
                self._send(200, {"ready": True})
            else:
                self._send(404, {"error": f"no route {self.path}"})

        def do_POST(self) -> None:
            length = int(self.headers.get("content-length") or 0)
            doc = json.loads(self.rfile.read(length) or b"{}")
            if faults.latency_s:
                time.sleep(faults.latency_s)
            if faults.error_rate and faults.rng.random() < faults.error_rate:
                self._send(500, {"error": "injected fault"})
                return
            if self.path == f"/v1/models/{name}:predict":
                rows = doc.get("instances", [])
            elif self.path == f"/v2/models/{name}/infer":
                rows = [inp.get("data") for inp in doc.get("inputs", [])][:1] or []
                rows = rows[0] if rows else []
            else:
                self._send(404, {"error": f"no model at {self.path}"})
                return
            scores = [score(r) for r in rows]
            if faults.invert:
                scores = [1 - s for s in scores]
            if "/v2/" in self.path:
                out = {"name": "predictions", "shape": [len(scores)], "datatype": "FP64"}
                self._send(200, {"model_name": name, "outputs": [{**out, "data": scores}]})
            else:
                self._send(200, {"predictions": scores})

    return Handler


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--name", required=True)
    parser.add_argument("--port", type=int, default=0)
    parser.add_argument("--fault", default=None)
    args = parser.parse_args()
    server = ThreadingHTTPServer(
        ("127.0.0.1", args.port), make_handler(args.name, Faults(args.fault))
    )
    server.daemon_threads = True
    print(f"PORT {server.server_address[1]}", flush=True)
    server.serve_forever(poll_interval=0.05)  # until SIGTERM


if __name__ == "__main__":
    main()
