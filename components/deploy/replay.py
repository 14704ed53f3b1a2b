"""Replayed traffic for a local rollout rehearsal: client threads send real test rows (V1, one row
per request) to the router until stopped, and count what failed. On a cluster real users are the
traffic; on a laptop this stands in for them so the canary windows have something to judge."""

from __future__ import annotations

import http.client
import json
import threading
from collections import Counter
from typing import Any
from urllib.parse import urlparse


class Replay:
    """`with Replay(url, name, rows): ...` — `clients` threads, keep-alive connections."""

    def __init__(self, url: str, name: str, rows: list[dict[str, Any]], clients: int = 2) -> None:
        if not rows:
            raise ValueError("no rows to replay")
        parsed = urlparse(url)
        self.host, self.port = parsed.hostname or "127.0.0.1", parsed.port or 80
        self.path = f"/v1/models/{name}:predict"
        self.bodies = [json.dumps({"instances": [row]}).encode() for row in rows]
        self.clients = clients
        self.ok = 0
        self.failures: Counter[str] = Counter()
        self._stop = threading.Event()
        self._lock = threading.Lock()
        self._threads: list[threading.Thread] = []

    def _client(self, offset: int) -> None:
        conn = http.client.HTTPConnection(self.host, self.port, timeout=10)
        i = offset
        while not self._stop.is_set():
            body = self.bodies[i % len(self.bodies)]
            i += self.clients
            try:
                conn.request("POST", self.path, body, {"Content-Type": "application/json"})
                response = conn.getresponse()
                response.read()
                outcome = None if response.status == 200 else f"HTTP {response.status}"
            except (OSError, http.client.HTTPException) as exc:
                outcome = type(exc).__name__
                conn.close()
                conn = http.client.HTTPConnection(self.host, self.port, timeout=10)
            with self._lock:
                if outcome is None:
                    self.ok += 1
                else:
                    self.failures[outcome] += 1
        conn.close()

    @property
    def failed(self) -> int:
        return sum(self.failures.values())

    def __enter__(self) -> Replay:
        for k in range(self.clients):
            thread = threading.Thread(target=self._client, args=(k,), daemon=True)
            thread.start()
            self._threads.append(thread)
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        for thread in self._threads:
            thread.join(timeout=15)
