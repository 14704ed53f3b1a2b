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

Bounded: before a flush would take the file past `max_bytes` it is rotated like logging's
RotatingFileHandler — `requests.jsonl` → `requests.jsonl.1` → ... → `requests.jsonl.<backups>`,
the oldest dropped — so the log never holds more than (backups + 1) files of about `max_bytes`.
`request_log_files(path)` lists them oldest first; `read_request_log` reads them all.
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

DEFAULT_MAX_BYTES = 100 * 1024 * 1024
DEFAULT_BACKUPS = 5


class RequestLog:
    def __init__(
        self,
        path: str | Path,
        features: list[tuple[str, bool]],
        flush_interval_s: float = 1.0,
        max_bytes: int = DEFAULT_MAX_BYTES,
        backups: int = DEFAULT_BACKUPS,
    ) -> None:
        """`features`: (name, is_integer) in the order of the matrices passed to write();
        `max_bytes` per file (0 = never rotate), `backups` rotated files kept."""
        if max_bytes < 0 or backups < 0:
            raise ValueError("max_bytes and backups must be >= 0")
        self.max_bytes = max_bytes
        self.backups = backups
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
                data = b"".join(lines)
                if self.max_bytes and self._size() + len(data) > self.max_bytes:
                    self._rotate()
                with self.path.open("ab") as fh:
                    fh.write(data)
                self.written += len(lines)
            return len(lines)

    def _size(self) -> int:
        try:
            return self.path.stat().st_size
        except FileNotFoundError:
            return 0

    def _rotate(self) -> None:
        """path.<backups-1> → path.<backups> (replacing it), ..., path → path.1; with no
        backups the file is just started again."""
        if self._size() == 0:
            return
        if self.backups == 0:
            self.path.unlink()
            return
        for n in range(self.backups - 1, 0, -1):
            older = _rotated(self.path, n)
            if older.exists():
                older.replace(_rotated(self.path, n + 1))
        self.path.replace(_rotated(self.path, 1))

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


def _rotated(path: Path, n: int) -> Path:
    return path.with_name(f"{path.name}.{n}")


def request_log_files(path: str | Path) -> list[Path]:
    """The files of a (rotated) request log, oldest first: path.<N>, ..., path.1, path."""
    path = Path(path)
    rotated = []
    for candidate in path.parent.glob(f"{path.name}.*"):
        suffix = candidate.name[len(path.name) + 1 :]
        if suffix.isdigit():
            rotated.append((int(suffix), candidate))
    files = [p for _, p in sorted(rotated, reverse=True)]
    return [*files, path] if path.exists() else files


def read_request_log(path: str | Path) -> list[dict[str, Any]]:
    """Every entry of a request log, its rotated files included, oldest first (for monitoring
    and tests)."""
    return [
        orjson.loads(line)
        for file in request_log_files(path)
        for line in file.read_bytes().splitlines()
        if line.strip()
    ]
