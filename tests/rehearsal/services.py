"""The cluster's services, started on this machine as the kind overlay defines them.

- PostgreSQL (MLflow's backend store) with the database, user and password of the overlay's
  Secret `mlpipe-postgres`; Debian's server (the overlay's `postgres` image cannot be pulled);
- an S3 API on the port MinIO's Service exposes (moto in server mode: MinIO's image cannot be
  pulled either), with the overlay's buckets;
- the MLflow tracking server as the overlay's Deployment runs it: the pipeline image, the
  Deployment's command, arguments, environment (resolved from the rendered ConfigMaps and
  Secrets), Secret volumes (basic auth's ini, mounted read-only), user, read-only root file system
  with an emptyDir on /tmp. One change: it binds 127.0.0.1 (tests never listen on other
  interfaces) instead of 0.0.0.0; this process's MLflow clients log in with the pipeline's login;
- the KFP API as the few v2beta1 calls we use (tests/support/kfp_standin.py, every request
  checked against the KFP swagger);
- a webhook receiver for alerts.
Every container runs on the host network; the cluster's Service names resolve to 127.0.0.1
through the containers' /etc/hosts (`HOSTS`), so the values in the manifests stay as they are.
"""

from __future__ import annotations

import contextlib
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from components.common.runtime_env import temporary_environ
from tests.support.manifests import Rendered, expand
from tests.support.postgres import running_postgres
from tests.support.servers import wait_http
from tests.support.webhook import Receiver

# Service names -> this machine (the ports are the Services' own)
HOSTS = {
    "mlflow.mlpipe.svc.cluster.local": "127.0.0.1",
    "minio.mlpipe.svc.cluster.local": "127.0.0.1",
    "mlflow-postgres": "127.0.0.1",
    "ml-pipeline.kubeflow.svc.cluster.local": "127.0.0.1",
}
PORTS = {"postgres": 5432, "s3": 9000, "mlflow": 5000, "kfp": 8888}
MLFLOW_URL = f"http://127.0.0.1:{PORTS['mlflow']}"
S3_URL = f"http://127.0.0.1:{PORTS['s3']}"
KFP_URL = f"http://127.0.0.1:{PORTS['kfp']}"


def _port_free(port: int) -> bool:
    """Nothing listens on it (connections of an earlier run in TIME_WAIT do not count: the
    servers bind with SO_REUSEADDR too)."""
    with socket.socket() as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind(("127.0.0.1", port))
        except OSError:
            return False
    return True


@dataclass
class Services:
    manifests: Rendered
    s3: Any  # a boto3 S3 client on the S3 API
    webhook: Receiver
    kfp_record: Path
    logs: dict[str, Path] = field(default_factory=dict)

    def s3_env(self) -> dict[str, str]:
        """The kind overlay's S3 credentials, for clients on this machine."""
        secret = self.manifests.secret("mlpipe-s3", "mlpipe") or {}
        return {
            "AWS_ENDPOINT_URL": S3_URL,
            "AWS_ACCESS_KEY_ID": secret.get("AWS_ACCESS_KEY_ID", ""),
            "AWS_SECRET_ACCESS_KEY": secret.get("AWS_SECRET_ACCESS_KEY", ""),
            "AWS_DEFAULT_REGION": "us-east-1",
        }

    def kfp_requests(self) -> list[dict[str, Any]]:
        import json

        if not self.kfp_record.is_file():
            return []
        return [json.loads(line) for line in self.kfp_record.read_text().splitlines() if line]


@contextlib.contextmanager
def s3_api() -> Iterator[Any]:
    import logging

    from moto.server import ThreadedMotoServer

    logging.getLogger("werkzeug").setLevel(logging.ERROR)  # no line per request
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=PORTS["s3"], verbose=False)
    server.start()
    try:
        import boto3

        yield boto3.client(
            "s3",
            endpoint_url=S3_URL,
            aws_access_key_id="rehearsal",
            aws_secret_access_key="rehearsal",
            region_name="us-east-1",
        )
    finally:
        server.stop()


@contextlib.contextmanager
def mlflow_server(docker: Any, manifests: Rendered, image: str, log: Path) -> Iterator[None]:
    container = manifests.container("Deployment", "mlflow", "mlpipe")
    env = manifests.container_env(container, "mlpipe")
    args = [expand(a, env).replace("--host=0.0.0.0", "--host=127.0.0.1") for a in container["args"]]
    pod = manifests.find("Deployment", "mlflow", "mlpipe")["spec"]["template"]["spec"]
    user = pod["securityContext"]
    # the Secret volumes (basic auth's ini), read-only at their mount paths as in the pod
    folders = manifests.secret_volumes("Deployment", "mlflow", "mlpipe", log.parent / "volumes")
    for folder in folders.values():
        for path in (folder, *folder.rglob("*")):
            path.chmod(0o755 if path.is_dir() else 0o644)  # readable by the pod's user
    run = docker.containers.run(
        image=image,
        entrypoint=container["command"],
        command=args,
        environment=env,
        user=f"{user['runAsUser']}:{user['runAsGroup']}",
        read_only=container["securityContext"].get("readOnlyRootFilesystem", False),
        tmpfs={"/tmp": ""},  # the Deployment's emptyDir
        volumes={str(folder): {"bind": mount, "mode": "ro"} for mount, folder in folders.items()},
        network_mode="host",
        extra_hosts=HOSTS,
        detach=True,
        name=f"mlpipe-rehearsal-mlflow-{time.time_ns()}",
    )

    def alive() -> bool:
        run.reload()
        return run.status in ("created", "running")

    try:
        wait_http(f"{MLFLOW_URL}/health", 180, alive, "the MLflow server")
        yield
    finally:
        log.write_bytes(run.logs())
        run.remove(force=True)


@contextlib.contextmanager
def kfp_api(record: Path, log: Path) -> Iterator[None]:
    with open(log, "w") as out:
        proc = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "tests.support.kfp_standin",
                "--host",
                "127.0.0.1",
                "--port",
                str(PORTS["kfp"]),
                "--record",
                str(record),
            ],
            stdout=out,
            stderr=subprocess.STDOUT,
            cwd=Path(__file__).resolve().parents[2],
        )
    try:
        wait_http(f"{KFP_URL}/apis/v2beta1/healthz", 60, lambda: proc.poll() is None, "KFP API")
        yield
    finally:
        proc.terminate()
        proc.wait(timeout=20)


@contextlib.contextmanager
def cluster_services(
    docker: Any, manifests: Rendered, pipeline_image: str, work: Path
) -> Iterator[Services]:
    """Every service above, started in order and stopped in reverse."""
    busy = [f"{name} ({port})" for name, port in PORTS.items() if not _port_free(port)]
    if busy:
        raise RuntimeError(f"ports the cluster's Services use are taken on 127.0.0.1: {busy}")
    pg_secret = manifests.secret("mlpipe-postgres", "mlpipe") or {}
    backend = next(
        a
        for a in manifests.container("Deployment", "mlflow", "mlpipe")["args"]
        if a.startswith("--backend-store-uri=")
    )
    database = backend.rsplit("/", 1)[-1]
    logs = {name: work / f"{name}.log" for name in ("mlflow", "kfp")}
    with contextlib.ExitStack() as stack:
        stack.enter_context(
            running_postgres(
                PORTS["postgres"], pg_secret["username"], pg_secret["password"], database
            )
        )
        s3 = stack.enter_context(s3_api())
        for bucket in _overlay_buckets(manifests):
            s3.create_bucket(Bucket=bucket)
        stack.enter_context(mlflow_server(docker, manifests, pipeline_image, logs["mlflow"]))
        # the server runs basic auth: this process's own MLflow clients (the checks) log in as a
        # pipeline pod does, with the overlay's Secret kubeflow/mlpipe-mlflow-auth
        stack.enter_context(
            temporary_environ(manifests.secret("mlpipe-mlflow-auth", "kubeflow") or {})
        )
        record = work / "kfp-requests.jsonl"
        stack.enter_context(kfp_api(record, logs["kfp"]))
        webhook = stack.enter_context(Receiver())
        # the cluster-only step the README asks for: the webhook URL in the alerts Secret
        manifests.objects.append(_secret("mlpipe-alerts", "kubeflow", webhook_url=webhook.url))
        yield Services(manifests, s3, webhook, record, logs)


def _secret(name: str, namespace: str, **data: str) -> dict[str, Any]:
    import base64

    return {
        "apiVersion": "v1",
        "kind": "Secret",
        "metadata": {"name": name, "namespace": namespace},
        "data": {k: base64.b64encode(v.encode()).decode() for k, v in data.items()},
    }


def _overlay_buckets(manifests: Rendered) -> list[str]:
    """The buckets the kind overlay's bucket Job creates (its script names them)."""
    import re

    job = manifests.find("Job", "minio-buckets", "mlpipe")
    text = str(job)
    match = re.search(r"for bucket in \(([^)]*)\)", text)
    if not match:
        raise RuntimeError("cannot find the bucket list in the minio-buckets Job")
    return re.findall(r"[\"']([\w.-]+)[\"']", match.group(1))
