"""Waiting for a server a test started, and starting `mlflow server` (test support)."""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from pathlib import Path

import requests


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
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    binary = Path(sys.executable).parent / "mlflow"
    log_path = folder / "mlflow-server.log"
    with open(log_path, "w") as log:
        # its own process group: `mlflow server` runs uvicorn as a child process
        proc = subprocess.Popen(
            [str(binary), "server", "--host", "127.0.0.1", "--port", str(port), "--workers", "1",
             "--backend-store-uri", f"sqlite:///{folder / 'server.db'}",
             "--artifacts-destination", str(folder / "artifacts"), *extra_args],
            stdout=log, stderr=subprocess.STDOUT, start_new_session=True,
            env={**os.environ, **(env or {})},
        )  # fmt: skip
    uri = f"http://127.0.0.1:{port}"
    try:
        try:
            wait_http(f"{uri}/health", timeout, lambda: proc.poll() is None, "mlflow server")
        except RuntimeError as exc:
            raise RuntimeError(f"{exc}: {log_path.read_text()[-3000:]}") from None
        yield uri
    finally:
        os.killpg(proc.pid, signal.SIGTERM)
        try:
            proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait(timeout=5)
