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
