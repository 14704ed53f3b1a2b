"""Real servers on 127.0.0.1, started by the tests: S3 (moto in server mode), a REST JSON API and a
plain HTTP file server (http.server), and a PostgreSQL cluster in a temporary folder.

PostgreSQL tests skip with a visible reason when the server binaries are missing — except in CI
(CI=true), where .ci/run installs them and a missing server fails the test instead.
"""

from __future__ import annotations

import base64
import contextlib
import json
import os
import shutil
import socket
import sys
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

import pytest

from components.common.runtime_env import STATE_ENV
from tests.support.manifests import Rendered, expand
from tests.support.mlflow_env import keep_tracking_uri
from tests.support.postgres import Postgres, pg_bin, running_postgres
from tests.support.servers import free_port, server_process

IN_CI = os.environ.get("CI") == "true"


@pytest.fixture(autouse=True)
def _mlflow_uri_restored(monkeypatch):
    """These tests run the pipeline, the registry and the CLI in this process, and
    `mlflow_utils.configure` points MLflow at each run's store (as the CLI wants): put MLflow's
    URI and active experiment back after each test."""
    keep_tracking_uri(monkeypatch)


def closed_port() -> int:
    """A port on 127.0.0.1 nothing listens on (connection refused)."""
    return free_port()


@pytest.fixture
def state_dir(tmp_path, monkeypatch) -> Path:
    """A fresh state store for the test, in the environment as the CLI would set it."""
    folder = tmp_path / "state"
    monkeypatch.setenv(STATE_ENV, str(folder))
    return folder


# ---------------------------------------------------------------- S3 (moto server)


@dataclass
class S3:
    endpoint: str
    client: Any

    def put(self, bucket: str, key: str, body: bytes) -> str:
        existing = {b["Name"] for b in self.client.list_buckets().get("Buckets", [])}
        if bucket not in existing:
            self.client.create_bucket(Bucket=bucket)
        self.client.put_object(Bucket=bucket, Key=key, Body=body)
        return f"s3://{bucket}/{key}"

    def enforce_auth(self, on: bool) -> None:
        """Make moto check credentials (IAM) from now on, or stop checking."""
        import requests

        count = "0" if on else "inf"
        requests.post(f"{self.endpoint}/moto-api/reset-auth", data=count.encode(), timeout=5)


@pytest.fixture(scope="session")
def s3_server() -> Iterator[S3]:
    from moto.server import ThreadedMotoServer

    creds = {
        "AWS_ACCESS_KEY_ID": "testing",
        "AWS_SECRET_ACCESS_KEY": "testing",
        "AWS_DEFAULT_REGION": "us-east-1",
    }
    saved = {k: os.environ.get(k) for k in creds}
    os.environ.update(creds)
    port = free_port()
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=port, verbose=False)
    server.start()
    import boto3

    endpoint = f"http://127.0.0.1:{port}"
    client = boto3.client("s3", endpoint_url=endpoint)
    try:
        yield S3(endpoint, client)
    finally:
        server.stop()
        for key, value in saved.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value


# ---------------------------------------------------------------- a REST JSON API


@dataclass
class Api:
    """A paginated JSON API over `records`; `faults` maps a page number to what goes wrong."""

    records: list[dict[str, Any]] = field(default_factory=list)
    token: str | None = "s3cret"
    # page -> list of faults consumed one per request: "500", "429", "malformed", "kill",
    # "wrong-shape", "slow"; the last one repeats forever if `sticky` holds that page
    faults: dict[int, list[str]] = field(default_factory=dict)
    sticky: set[int] = field(default_factory=set)
    requests: list[dict[str, Any]] = field(default_factory=list)
    url: str = ""

    def page_of(self, query: dict[str, str]) -> tuple[int, list[dict], dict]:
        since = query.get("since")
        rows = [r for r in self.records if since is None or r["year"] > int(since)]
        if "cursor" in query or query.get("mode") == "cursor":
            start = int(query.get("cursor", 0))
            size = int(query.get("limit", 100))
            chunk = rows[start : start + size]
            nxt = start + size if start + size < len(rows) else None
            return start // size + 1, chunk, {"items": chunk, "next": nxt}
        page = int(query.get("page", 1))
        size = int(query.get("per_page", 100))
        chunk = rows[(page - 1) * size : page * size]
        return page, chunk, {"data": chunk, "page": page}


def _api_handler(api: Api) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def log_message(self, *args: Any) -> None:  # quiet
            pass

        def do_GET(self) -> None:
            query = {k: v[0] for k, v in parse_qs(urlsplit(self.path).query).items()}
            api.requests.append({"query": query, "auth": self.headers.get("Authorization")})
            if api.token and self.headers.get("Authorization") != f"Bearer {api.token}":
                return self._send(401, b'{"error": "unauthorized"}')
            page, _, body = api.page_of(query)
            queue = api.faults.get(page, [])
            fault = (queue[0] if page in api.sticky else queue.pop(0)) if queue else None
            if fault in ("500", "429", "503"):
                return self._send(int(fault), b'{"error": "try later"}', {"Retry-After": "0"})
            if fault == "malformed":
                return self._send(200, b"<html>oops, not json</html>")
            if fault == "wrong-shape":
                return self._send(200, json.dumps({"unexpected": 1}).encode())
            data = json.dumps(body).encode()
            if fault == "kill":  # promise the whole body, send half, drop the connection
                self.send_response(200)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data[: len(data) // 2])
                self.wfile.flush()
                self.connection.shutdown(socket.SHUT_RDWR)
                self.close_connection = True
                return None
            return self._send(200, data)

        def _send(self, status: int, body: bytes, headers: dict | None = None) -> None:
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(body)))
            for key, value in (headers or {}).items():
                self.send_header(key, value)
            self.end_headers()
            self.wfile.write(body)

    return Handler


@pytest.fixture
def serve() -> Iterator[Callable[[type[BaseHTTPRequestHandler]], str]]:
    """Start HTTP servers on 127.0.0.1 for the test; returns their base URLs; stops them after."""
    servers: list[ThreadingHTTPServer] = []

    def start(handler: type[BaseHTTPRequestHandler]) -> str:
        server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
        server.daemon_threads = True
        threading.Thread(target=server.serve_forever, daemon=True).start()
        servers.append(server)
        return f"http://127.0.0.1:{server.server_address[1]}"

    yield start
    for server in servers:
        server.shutdown()
        server.server_close()


@pytest.fixture
def api_server(serve) -> Api:
    api = Api()
    api.url = serve(_api_handler(api)) + "/v1/people"
    return api


def file_handler(files: dict[str, bytes], kill: set[str] | None = None):
    """Serve `files` by path; a path in `kill` sends half its body, then drops the connection."""
    kill = kill if kill is not None else set()

    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def log_message(self, *args: Any) -> None:
            pass

        def do_HEAD(self) -> None:
            self._reply(head=True)

        def do_GET(self) -> None:
            self._reply(head=False)

        def _reply(self, head: bool) -> None:
            path = urlsplit(self.path).path
            body = files.get(path)
            if body is None:
                self.send_response(404)
                self.send_header("Content-Length", "0")
                self.end_headers()
                return
            self.send_response(200)
            self.send_header("Content-Type", "application/octet-stream")
            self.send_header("Content-Length", str(len(body)))
            self.send_header("ETag", f'"{hash(body) & 0xFFFFFFFF:x}"')
            self.end_headers()
            if head:
                return
            if path in kill:
                self.wfile.write(body[: len(body) // 2])
                self.wfile.flush()
                self.connection.shutdown(socket.SHUT_RDWR)
                self.close_connection = True
                return
            self.wfile.write(body)

    return Handler


# ---------------------------------------------------------------- PostgreSQL


@pytest.fixture(scope="session")
def postgres() -> Iterator[Postgres]:
    """A PostgreSQL cluster on a free port in a temporary folder (tests/support/postgres.py)."""
    if pg_bin() is None:
        reason = "PostgreSQL server not installed (apt-get install postgresql; .ci/run does)"
        if IN_CI:
            pytest.fail(f"CI=true and {reason}")
        pytest.skip(reason)
    with running_postgres() as server:
        yield server


# ---------------------------------------------------------------- MLflow server (the manifest's)


@pytest.fixture(scope="module")
def mlflow_server(postgres, s3_server, tmp_path_factory):
    """The MLflow server as the kind overlay runs it (command, arguments, environment and Secret
    volumes from the rendered Deployment) on PostgreSQL and moto's S3: (url, port, the
    mlpipe-storage ConfigMap). It runs basic auth: clients log in with `mlflow_login`.
    Service host names are mapped to the local servers; nothing else of the manifest changes."""
    manifests = Rendered.overlay("kind")
    container = manifests.container("Deployment", "mlflow", "mlpipe")
    minio = "http://minio.mlpipe.svc.cluster.local:9000"
    # the Service names mapped to the local servers; nothing else of the manifest changes
    for obj in manifests.objects:
        if obj["kind"] == "ConfigMap" and obj["metadata"]["name"] == "mlpipe-storage":
            obj["data"] = {k: v.replace(minio, s3_server.endpoint) for k, v in obj["data"].items()}
        if obj["kind"] == "Secret" and obj["metadata"]["name"] in ("mlpipe-postgres", "mlpipe-s3"):
            values = {"username": postgres.user, "password": postgres.password}
            values |= {"AWS_ACCESS_KEY_ID": "testing", "AWS_SECRET_ACCESS_KEY": "testing"}
            obj["data"] = {
                k: base64.b64encode(values[k].encode()).decode() for k in obj.get("data", {})
            }
    storage = manifests.config_map("mlpipe-storage", "mlpipe")
    outside = ("AWS_", "MLFLOW_", "PG")
    env = {k: v for k, v in os.environ.items() if not k.startswith(outside)}
    env |= manifests.container_env(container, "mlpipe")
    env["HOME"] = str(tmp_path_factory.mktemp("home"))
    # the Secret volumes (basic auth's ini) as files; the variables naming them point there, and
    # the auth store's database (the backend's) is the local PostgreSQL like the backend store
    postgres_host = f"{postgres.host}:{postgres.port}/{postgres.database}"
    volumes = manifests.secret_volumes(
        "Deployment", "mlflow", "mlpipe", tmp_path_factory.mktemp("volumes")
    )
    for mount_path, folder in volumes.items():
        for file in folder.rglob("*"):
            if file.is_file():
                file.write_text(
                    file.read_text().replace("mlflow-postgres:5432/mlflow", postgres_host)
                )
        for key, value in env.items():
            if value.startswith(mount_path + "/"):
                env[key] = str(folder) + value[len(mount_path) :]

    port = free_port()
    args = []
    for arg in container["args"]:
        arg = expand(arg, env)  # Kubernetes' $(VAR) expansion
        arg = arg.replace("--host=0.0.0.0", "--host=127.0.0.1").replace(
            "--port=5000", f"--port={port}"
        )
        arg = arg.replace("mlflow-postgres:5432/mlflow", postgres_host)
        args.append(arg)
    backend = next(a for a in args if a.startswith("--backend-store-uri="))
    assert postgres.password not in backend and "@" not in backend  # no credentials in the URI

    bucket = storage["MLFLOW_ARTIFACTS_DESTINATION"].split("/")[2]
    if bucket not in {b["Name"] for b in s3_server.client.list_buckets().get("Buckets", [])}:
        s3_server.client.create_bucket(Bucket=bucket)  # S3 lives per session: maybe made already
    command = container["command"]
    binary = shutil.which(command[0], path=str(Path(sys.executable).parent))
    assert binary, f"{command[0]} not in the environment"
    log = tmp_path_factory.mktemp("mlflow") / "server.log"
    url = f"http://127.0.0.1:{port}"
    with contextlib.ExitStack() as stack:
        try:
            stack.enter_context(
                server_process([binary, *command[1:], *args], f"{url}/health", log, env)
            )
        except RuntimeError as exc:  # it did not come up: its log's end
            pytest.fail(str(exc))
        yield url, port, storage


@pytest.fixture
def mlflow_login(monkeypatch) -> tuple[str, str]:
    """The kind overlay's pipeline login (Secret kubeflow/mlpipe-mlflow-auth) as MLflow's client
    variables, as a pipeline pod has them; (user, password) for plain requests."""
    login = Rendered.overlay("kind").secret("mlpipe-mlflow-auth", "kubeflow")
    for key, value in login.items():
        monkeypatch.setenv(key, value)
    return login["MLFLOW_TRACKING_USERNAME"], login["MLFLOW_TRACKING_PASSWORD"]


def wait_until(check: Callable[[], bool], timeout: float = 5.0) -> bool:
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        if check():
            return True
        time.sleep(0.05)
    return False
