"""Waiting for a server a test started, reading `mlpipe serve`'s banner, answering with JSON,
and starting `mlflow server` (test support)."""

from __future__ import annotations

import contextlib
import json
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from http.server import BaseHTTPRequestHandler
from pathlib import Path

import requests


def send_json(handler: BaseHTTPRequestHandler, status: int, doc: object) -> None:
    """Answer a stand-in server's request with `doc` as JSON."""
    body = json.dumps(doc).encode()
    handler.send_response(status)
    handler.send_header("Content-Type", "application/json")
    handler.send_header("Content-Length", str(len(body)))
    handler.end_headers()
    handler.wfile.write(body)


def serve_banner(proc: subprocess.Popen, timeout_s: float) -> str:
    """What `mlpipe serve` printed up to its banner's last line ("Ctrl-C stops the server.");
    AssertionError with the output when it exits or `timeout_s` passes first."""
    lines, deadline = [], time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        line = proc.stdout.readline()
        assert line, "".join(lines)
        lines.append(line)
        if "Ctrl-C" in line:
            return "".join(lines)
    raise AssertionError("".join(lines))


def wait_http(
    url: str, timeout: float, alive: Callable[[], bool] = lambda: True, what: str = ""
) -> None:
    """Until `url` answers below 500; RuntimeError after `timeout` s or once `alive()` is false
    (the process died: no point waiting)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            if requests.get(url, timeout=5).status_code < 500:
                return
        except requests.RequestException:
            pass
        if not alive():
            break
        time.sleep(0.3)
    raise RuntimeError(f"{what or url} did not answer within {timeout:g} s")


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@contextlib.contextmanager
def server_process(
    argv: Sequence[str],
    health_url: str,
    log_path: Path,
    env: Mapping[str, str] | None = None,
    timeout: float = 120,
) -> Iterator[subprocess.Popen]:
    """Run `argv` in its own process group (servers such as `mlflow server` fork workers) until
    `health_url` answers; the process until the block ends, then the whole group is stopped.
    RuntimeError with the end of its log when it does not come up."""
    with open(log_path, "w") as log:
        proc = subprocess.Popen(
            list(argv), stdout=log, stderr=subprocess.STDOUT, start_new_session=True,
            env=dict(env) if env is not None else None,
        )  # fmt: skip
    try:
        try:
            wait_http(health_url, timeout, lambda: proc.poll() is None, Path(argv[0]).name)
        except RuntimeError as exc:
            raise RuntimeError(f"{exc}: {log_path.read_text()[-3000:]}") from None
        yield proc
    finally:
        os.killpg(proc.pid, signal.SIGTERM)
        try:
            proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait(timeout=5)


@contextlib.contextmanager
def mlflow_server_process(
    folder: Path,
    extra_args: Sequence[str] = (),
    env: Mapping[str, str] | None = None,
    timeout: float = 120,
) -> Iterator[str]:
    """A real `mlflow server` (this environment's) on a free port of 127.0.0.1, SQLite and
    artifacts in `folder`, with `extra_args` and `env` added to this process's environment; its
    URL until the block ends. RuntimeError with the end of its log when it does not come up."""
    port = free_port()
    binary = Path(sys.executable).parent / "mlflow"
    argv = [str(binary), "server", "--host", "127.0.0.1", "--port", str(port), "--workers", "1",
            "--backend-store-uri", f"sqlite:///{folder / 'server.db'}",
            "--artifacts-destination", str(folder / "artifacts"), *extra_args]  # fmt: skip
    uri = f"http://127.0.0.1:{port}"
    log = folder / "mlflow-server.log"
    with server_process(argv, f"{uri}/health", log, {**os.environ, **(env or {})}, timeout):
        yield uri
