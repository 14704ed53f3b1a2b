"""Start the model server in a subprocess and wait until it is ready (deploy stage, tests, CLI).

    with start_server("outputs/models/m", "acs-employment") as server:
        requests.post(f"{server.url}/v1/models/acs-employment:predict", json={...})

The child binds 127.0.0.1 on a free port itself (no pick-then-bind race) and reports it through a
port file; readiness is KServe's `GET /v2/models/<name>/ready`. No KServe import here.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from pathlib import Path

from components.common.config import REPO_ROOT


class ServerStartError(RuntimeError):
    """The server exited or did not become ready in time; the message holds its log's tail."""


class RunningServer:
    def __init__(
        self, process: subprocess.Popen, url: str, name: str, log_path: Path, workdir: Path
    ) -> None:
        self.process = process
        self.url = url
        self.name = name
        self.log_path = log_path
        self._workdir = workdir
        self._final_log: str | None = None

    @property
    def pid(self) -> int:
        return self.process.pid

    @property
    def v1_url(self) -> str:
        return f"{self.url}/v1/models/{self.name}:predict"

    @property
    def v2_url(self) -> str:
        return f"{self.url}/v2/models/{self.name}/infer"

    def alive(self) -> bool:
        return self.process.poll() is None

    def log(self) -> str:
        """The server's output so far (kept after stop())."""
        if self._final_log is not None:
            return self._final_log
        return self.log_path.read_text(errors="replace") if self.log_path.exists() else ""

    def stop(self, timeout: float = 10.0) -> int | None:
        """SIGTERM (uvicorn drains and the request log flushes), SIGKILL after `timeout`; then
        the temporary folder (port file, log) is removed."""
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(timeout)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(5)
        if self._final_log is None:
            self._final_log = self.log()
            shutil.rmtree(self._workdir, ignore_errors=True)
        return self.process.returncode

    def __enter__(self) -> RunningServer:
        return self

    def __exit__(self, *exc) -> None:
        self.stop()

    def __repr__(self) -> str:
        return f"RunningServer({self.name!r}, url={self.url!r}, pid={self.pid})"


def start_server(
    model_dir: str | Path,
    name: str,
    port: int | None = None,
    *,
    fault: str | list[str] | None = None,
    request_log: str | Path | None = None,
    timeout: float = 60,
    kserve_routes: bool = False,
    max_batch: int | None = None,
    env: dict[str, str] | None = None,
    model_sha256: str | None = None,
    extra_args: list[str] | None = None,
) -> RunningServer:
    """Start `python -m components.serve` for `model_dir` (a model dir or a models:/ URI) on
    127.0.0.1 (`port` None or 0 = a free port); return once it answers ready. `extra_args`: more
    command-line options (e.g. the request log's rotation size)."""
    workdir = Path(tempfile.mkdtemp(prefix="mlpipe-serve-"))
    port_file, log_path = workdir / "port", workdir / "server.log"
    source = str(model_dir)
    cmd = [
        sys.executable,
        "-m",
        "components.serve",
        "--model-uri" if source.startswith("models:/") else "--model-dir",
        source,
        "--model-name",
        name,
        "--host",
        "127.0.0.1",
        "--port",
        str(port or 0),
        "--port-file",
        str(port_file),
    ]
    if model_sha256:
        cmd += ["--model-sha256", model_sha256]
    faults = [fault] if isinstance(fault, str) else list(fault or [])
    for item in faults:
        cmd += ["--fault", item]
    if faults:
        cmd.append("--allow-faults")  # the explicit switch (the production images never set it)
    if request_log:
        cmd += ["--request-log", str(request_log)]
    if kserve_routes:
        cmd.append("--kserve-routes")
    if max_batch:
        cmd += ["--max-batch", str(max_batch)]
    cmd += extra_args or []
    child_env = {**os.environ, **(env or {})}
    child_env.setdefault("PYTHONPATH", str(REPO_ROOT))
    if not faults:
        child_env.pop("MLPIPE_SERVE_FAULT", None)  # faults only when asked for
    with log_path.open("wb") as log_file:
        process = subprocess.Popen(
            cmd, stdout=log_file, stderr=subprocess.STDOUT, env=child_env, cwd=str(REPO_ROOT)
        )
    deadline = time.monotonic() + timeout
    try:
        while not port_file.exists():
            _check_alive(process, log_path, deadline, timeout)
            time.sleep(0.05)
        url = f"http://127.0.0.1:{int(port_file.read_text())}"
        server = RunningServer(process, url, name, log_path, workdir)
        while not _ready(f"{url}/v2/models/{name}/ready"):
            _check_alive(process, log_path, deadline, timeout)
            time.sleep(0.05)
        return server
    except BaseException:
        if process.poll() is None:
            process.kill()
            process.wait(5)
        shutil.rmtree(workdir, ignore_errors=True)
        raise


def _check_alive(process: subprocess.Popen, log_path: Path, deadline: float, timeout: float):
    if process.poll() is not None:
        raise ServerStartError(
            f"model server exited with code {process.returncode}:\n{_tail(log_path)}"
        )
    if time.monotonic() > deadline:
        raise ServerStartError(f"model server not ready after {timeout:g} s:\n{_tail(log_path)}")


def _ready(url: str) -> bool:
    try:
        with urllib.request.urlopen(url, timeout=2) as response:
            return response.status == 200 and json.loads(response.read()).get("ready") is True
    except (urllib.error.URLError, OSError, ValueError):
        return False


def _tail(path: Path, lines: int = 30) -> str:
    with contextlib.suppress(OSError):
        return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])
    return ""
