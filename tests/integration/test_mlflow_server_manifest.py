"""The MLflow server exactly as the kind overlay runs it — its command, arguments, environment and
Secret volumes taken from the rendered Deployment — against a real PostgreSQL and a real S3 API
(moto) on 127.0.0.1: it migrates the database with credentials from PGUSER/PGPASSWORD only, keeps
basic auth's users in that same database, refuses anonymous calls, answers the in-cluster host
name and refuses others, and proxies a client's artifacts into the bucket (the client holds no S3
credentials, only the pipeline's MLflow login). Service host names are mapped to the local
servers (also in the auth ini's database URI); nothing else of the manifest is changed. The main
environment has the pipeline image's exact package set (tests/packaging checks the lock against
uv.lock), so this is the image's MLflow. The server is the `mlflow_server` fixture of
tests/integration/conftest.py."""

import os
import time

import pytest
import requests

pytestmark = pytest.mark.integration


def test_server_answers_the_service_name_and_refuses_other_hosts(mlflow_server, mlflow_login):
    url, _port, _storage = mlflow_server
    api = f"{url}/api/2.0/mlflow/experiments/search?max_results=1"
    for host in ("mlflow.mlpipe.svc.cluster.local:5000", "mlflow.mlpipe:5000", "mlflow:5000"):
        answer = requests.get(api, headers={"Host": host}, auth=mlflow_login, timeout=10)
        assert answer.status_code == 200, host
        anonymous = requests.get(api, headers={"Host": host}, timeout=10)
        assert anonymous.status_code == 401, host  # basic auth
    refused = requests.get(api, headers={"Host": "attacker.example.com"}, timeout=10)
    assert refused.status_code == 403


def test_basic_auth_keeps_its_users_in_the_backends_postgresql(mlflow_server, postgres):
    """The auth store is the backend store's database (the manifest's database_uri): its tables
    and version table are there beside MLflow's, and the admin user the ini names exists."""
    import sqlalchemy as sa

    with postgres.engine().connect() as conn:
        tables = set(sa.inspect(conn).get_table_names())
        users = {r[0] for r in conn.execute(sa.text("SELECT username FROM users"))}
    assert {"users", "alembic_version_auth", "alembic_version", "registered_models"} <= tables
    assert "mlpipe-pipeline" in users


def test_a_client_without_s3_credentials_logs_artifacts_into_the_bucket(
    mlflow_server, mlflow_login, s3_server, tmp_path, monkeypatch
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


def test_every_process_of_the_server_fits_the_containers_memory_limit(mlflow_server, mlflow_login):
    """The container's limit (the kind overlay's, the smallest) holds everything `mlflow server`
    starts in it — its workers and any job runners — after real requests: summed PSS (shared
    pages counted once, as the cgroup counts them)."""
    import psutil

    from tests.support.manifests import Rendered, quantity_bytes

    url, port, _storage = mlflow_server
    for _ in range(5):
        requests.get(f"{url}/api/2.0/mlflow/registered-models/search", auth=mlflow_login,
                     timeout=30).raise_for_status()  # fmt: skip
    listener = next(
        c.pid for c in psutil.net_connections("tcp")
        if c.laddr and c.laddr.port == port and c.status == psutil.CONN_LISTEN and c.pid
    )  # fmt: skip
    group = os.getpgid(listener)
    processes = []
    for proc in psutil.process_iter(["pid", "cmdline"]):
        try:
            if os.getpgid(proc.pid) == group:
                processes.append((proc.memory_full_info().pss, " ".join(proc.cmdline()[:4])))
        except (psutil.NoSuchProcess, ProcessLookupError):
            continue
    total = sum(pss for pss, _ in processes)
    container = Rendered.overlay("kind").container("Deployment", "mlflow", "mlpipe")
    limit = quantity_bytes(container["resources"]["limits"]["memory"])
    print(
        f"\nmlflow server: {len(processes)} processes, {total / 2**20:.0f} MiB PSS "
        f"(limit {limit / 2**20:.0f} MiB): "
        + "; ".join(f"{pss / 2**20:.0f} MiB {cmd}" for pss, cmd in processes)
    )
    assert total < 0.8 * limit
