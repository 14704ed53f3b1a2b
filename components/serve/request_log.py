"""The request/response log: one JSON line per request, written off the request path.

`write()` only appends the entry to an in-memory buffer (a deque append, no I/O, no encoding); a
daemon thread encodes and appends the buffered lines to the file every `flush_interval_s` and
`close()` flushes what is left at shutdown. This file is the input of drift monitoring: the rows
the model saw in production and the scores it gave, per model version.

Line format (one object per request):
  {"ts": "2026-11-27T07:30:00.123456+00:00", "model": "acs-employment", "model_version": "3",
   "request_id": "...", "protocol": "v1", "status": 200, "latency_ms": 0.41,
   "inputs": [{"AGEP": 35, "SCHL": 21, ...}], "outputs": [0.8731]}
Rejected requests (status 4xx/5xx) carry "error" instead of inputs/outputs.
"""

from __future__ import annotations

import collections
import threading
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np
import orjson


class RequestLog:
    def __init__(
        self,
        path: str | Path,
        features: list[tuple[str, bool]],
        flush_interval_s: float = 1.0,
    ) -> None:
        """`features`: (name, is_integer) in the order of the matrices passed to write()."""
        self.path = Path(path)
        self.names = [name for name, _ in features]
        self.integer = [is_int for _, is_int in features]
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self.flush_interval_s = flush_interval_s
        self._buffer: collections.deque[tuple] = collections.deque()
        self._lock = threading.Lock()  # one flusher at a time (the thread or close())
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="request-log", daemon=True)
        self._thread.start()
        self.written = 0

    def write(
        self,
        *,
        model: str,
        model_version: str,
        request_id: str,
        protocol: str,
        status: int,
        latency_ms: float,
        raw: np.ndarray | None = None,
        scores: np.ndarray | None = None,
        error: str | None = None,
    ) -> None:
        """Queue one entry (cheap: the row dicts are built by the flushing thread)."""
        self._buffer.append(
            (time.time(), model, model_version, request_id, protocol, status, latency_ms,
             raw, scores, error)
        )  # fmt: skip

    def flush(self) -> int:
        with self._lock:
            lines = []
            while self._buffer:
                lines.append(self._encode(self._buffer.popleft()))
            if lines:
                with self.path.open("ab") as fh:
                    fh.write(b"".join(lines))
                self.written += len(lines)
            return len(lines)

    def close(self) -> None:
        self._stop.set()
        self._thread.join(timeout=5)
        self.flush()

    def _run(self) -> None:
        while not self._stop.wait(self.flush_interval_s):
            try:
                self.flush()
            except OSError:  # a full disk must not take the server down; retried next tick
                continue

    def _encode(self, entry: tuple) -> bytes:
        ts, model, version, request_id, protocol, status, latency_ms, raw, scores, error = entry
        record: dict[str, Any] = {
            "ts": datetime.fromtimestamp(ts, UTC).isoformat(),
            "model": model,
            "model_version": version,
            "request_id": request_id,
            "protocol": protocol,
            "status": status,
            "latency_ms": round(latency_ms, 4),
        }
        if raw is not None:
            columns = [
                raw[:, j].astype(np.int64).tolist() if is_int else raw[:, j].tolist()
                for j, is_int in enumerate(self.integer)
            ]
            record["inputs"] = [
                dict(zip(self.names, row, strict=True)) for row in zip(*columns, strict=True)
            ]
        if scores is not None:
            record["outputs"] = np.asarray(scores, dtype=np.float64).tolist()
        if error is not None:
            record["error"] = error
        return orjson.dumps(record) + b"\n"


def read_request_log(path: str | Path) -> list[dict[str, Any]]:
    """Every entry of a request log (for monitoring and tests)."""
    text = Path(path).read_bytes()
    return [orjson.loads(line) for line in text.splitlines() if line.strip()]
