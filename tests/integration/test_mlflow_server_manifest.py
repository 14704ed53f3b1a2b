"""The MLflow server exactly as the kind overlay runs it — its command, arguments and environment
taken from the rendered Deployment — against a real PostgreSQL and a real S3 API (moto) on
127.0.0.1: it migrates the database with credentials from PGUSER/PGPASSWORD only, answers the
in-cluster host name and refuses others, and proxies a client's artifacts into the bucket (the
client holds no S3 credentials). Service host names are mapped to the local servers; nothing else
of the manifest is changed. The main environment has the pipeline image's exact package set
(tests/packaging checks the lock against uv.lock), so this is the image's MLflow."""

import base64
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import requests

from tests.integration.conftest import free_port
from tests.support.manifests import Rendered, expand
from tests.support.servers import wait_http

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def mlflow_server(postgres, s3_server, tmp_path_factory):
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

    port = free_port()
    args = []
    for arg in container["args"]:
        arg = expand(arg, env)  # Kubernetes' $(VAR) expansion
        arg = arg.replace("--host=0.0.0.0", "--host=127.0.0.1").replace(
            "--port=5000", f"--port={port}"
        )
        arg = arg.replace(
            "mlflow-postgres:5432/mlflow", f"{postgres.host}:{postgres.port}/{postgres.database}"
        )
        args.append(arg)
    backend = next(a for a in args if a.startswith("--backend-store-uri="))
    assert postgres.password not in backend and "@" not in backend  # no credentials in the URI

    s3_server.client.create_bucket(Bucket=storage["MLFLOW_ARTIFACTS_DESTINATION"].split("/")[2])
    command = container["command"]
    binary = shutil.which(command[0], path=str(Path(sys.executable).parent))
    assert binary, f"{command[0]} not in the environment"
    log = tmp_path_factory.mktemp("mlflow") / "server.log"
    with open(log, "w") as out:
        # its own process group: `mlflow server` runs uvicorn as a child process
        proc = subprocess.Popen(
            [binary, *command[1:], *args],
            env=env,
            stdout=out,
            stderr=out,
            start_new_session=True,
        )
    url = f"http://127.0.0.1:{port}"
    try:
        try:
            wait_http(f"{url}/health", 120, lambda: proc.poll() is None, "the MLflow server")
        except RuntimeError as exc:
            pytest.fail(f"{exc}:\n{log.read_text()[-4000:]}")
        yield url, port, storage
    finally:
        os.killpg(proc.pid, signal.SIGTERM)  # the group we started: the server and its workers
        try:
            proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait(timeout=5)


def test_server_answers_the_service_name_and_refuses_other_hosts(mlflow_server):
    url, _port, _storage = mlflow_server
    api = f"{url}/api/2.0/mlflow/experiments/search?max_results=1"
    for host in ("mlflow.mlpipe.svc.cluster.local:5000", "mlflow.mlpipe:5000", "mlflow:5000"):
        assert requests.get(api, headers={"Host": host}, timeout=10).status_code == 200, host
    refused = requests.get(api, headers={"Host": "attacker.example.com"}, timeout=10)
    assert refused.status_code == 403


def test_a_client_without_s3_credentials_logs_artifacts_into_the_bucket(
    mlflow_server, s3_server, tmp_path, monkeypatch
):
    url, _port, storage = mlflow_server
    import mlflow

    for key in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "MLFLOW_S3_ENDPOINT_URL"):
        monkeypatch.delenv(key, raising=False)
    client = mlflow.MlflowClient(tracking_uri=url)
    experiment = client.create_experiment(f"manifest-{os.getpid()}-{time.time_ns()}")
    run = client.create_run(experiment)
    client.log_metric(run.info.run_id, "roc_auc", 0.9)
    report = tmp_path / "report.txt"
    report.write_text("hello from the pipeline")
    client.log_artifact(run.info.run_id, str(report))
    assert run.info.artifact_uri.startswith("mlflow-artifacts:")  # proxied, not direct S3

    destination = storage["MLFLOW_ARTIFACTS_DESTINATION"]
    bucket, _, prefix = destination.removeprefix("s3://").partition("/")
    keys = [
        o["Key"]
        for o in s3_server.client.list_objects_v2(Bucket=bucket, Prefix=prefix).get("Contents", [])
    ]
    stored = [k for k in keys if k.endswith(f"{run.info.run_id}/artifacts/report.txt")]
    assert stored, keys
    body = s3_server.client.get_object(Bucket=bucket, Key=stored[0])["Body"].read()
    assert body == b"hello from the pipeline"
    assert client.get_run(run.info.run_id).data.metrics["roc_auc"] == 0.9
