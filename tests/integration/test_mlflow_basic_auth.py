"""MLflow's basic auth as the kind overlay configures it, on a real `mlflow server` on 127.0.0.1:
the server's arguments and environment come from the rendered Deployment, its auth ini is the
one of the overlay's Secret `mlpipe-mlflow-server` (only `database_uri` moved to SQLite in the
test's folder instead of the cluster's PostgreSQL), and the client logs in with the overlay's
Secret `kubeflow/mlpipe-mlflow-auth` as MLflow's client variables, the way a pipeline pod does.
Anonymous calls are refused; our registry code (client, lock, promote) works with the login; a
wrong password fails with the server's 401."""

from __future__ import annotations

import configparser

import mlflow
import pytest
import requests
from mlflow.tracking._tracking_service import utils as tracking_utils

from components.common import registry
from tests.support.manifests import Rendered
from tests.support.servers import mlflow_server_process

pytestmark = pytest.mark.integration

SEARCH = "/api/2.0/mlflow/registered-models/search"


@pytest.fixture(scope="module")
def kind():
    return Rendered.overlay("kind")


@pytest.fixture(scope="module")
def auth_server(kind, tmp_path_factory):
    """One server for the module (a start migrates two SQLite databases: the slow part)."""
    tmp_path = tmp_path_factory.mktemp("mlflow-auth")
    container = kind.container("Deployment", "mlflow", "mlpipe")
    env = kind.container_env(container, "mlpipe")
    app = [a for a in container["args"] if a.startswith("--app-name=")]
    assert app == ["--app-name=basic-auth"]
    # the Secret volume as the kubelet projects it; only the auth store moves to SQLite here
    (mount, folder), *_ = kind.secret_volumes("Deployment", "mlflow", "mlpipe", tmp_path).items()
    config = folder / env["MLFLOW_AUTH_CONFIG_PATH"].removeprefix(mount + "/")
    ini = configparser.ConfigParser()
    ini.read_string(config.read_text())
    ini["mlflow"]["database_uri"] = f"sqlite:///{tmp_path / 'auth.db'}"
    with open(config, "w") as out:
        ini.write(out)
    server_env = {
        "MLFLOW_AUTH_CONFIG_PATH": str(config),
        "MLFLOW_FLASK_SERVER_SECRET_KEY": env["MLFLOW_FLASK_SERVER_SECRET_KEY"],
        "MLFLOW_SERVER_ALLOWED_HOSTS": env["MLFLOW_SERVER_ALLOWED_HOSTS"],
    }
    with pytest.MonkeyPatch.context() as patch:
        for name in ("MLFLOW_TRACKING_URI", "MLFLOW_TRACKING_USERNAME", "MLFLOW_TRACKING_PASSWORD"):
            patch.delenv(name, raising=False)
        # the tests' MLflow calls may move the global URI: put it back as it was (not to "",
        # which is ./mlruns in the working directory)
        patch.setattr(tracking_utils, "_tracking_uri", tracking_utils._tracking_uri)
        with mlflow_server_process(tmp_path, app, server_env) as uri:
            yield uri


def login(kind) -> dict[str, str]:
    """What a pipeline pod gets from the compiled spec's secretAsEnv (tests/pipelines)."""
    return kind.secret("mlpipe-mlflow-auth", "kubeflow")


def test_anonymous_calls_are_refused_and_health_stays_open(auth_server):
    assert requests.get(f"{auth_server}{SEARCH}", timeout=10).status_code == 401
    created = requests.post(
        f"{auth_server}/api/2.0/mlflow/registered-models/create", json={"name": "x"}, timeout=10
    )
    assert created.status_code == 401
    assert requests.get(f"{auth_server}/health", timeout=10).status_code == 200  # the probes


def test_the_pipeline_login_registers_locks_and_promotes(auth_server, kind, monkeypatch):
    monkeypatch.setenv("MLFLOW_TRACKING_URI", auth_server)
    for key, value in login(kind).items():
        monkeypatch.setenv(key, value)
    client = registry.client(auth_server)
    client.create_registered_model("acs")
    experiment = client.create_experiment("auth")
    run = client.create_run(experiment)
    version = client.create_model_version(
        "acs", f"{run.info.artifact_uri}/model", run_id=run.info.run_id
    ).version
    with registry.lock(client, "acs", "deploy", mode="lease"):
        # on a server the lock is a registered model: created with the same login
        assert client.get_registered_model(registry.lock_model_name("acs"))
        assert registry.promote(client, "acs", version) is None
    assert registry.alias_version(client, "acs", registry.CHAMPION).version == version
    names = {m.name for m in client.search_registered_models()}
    assert "acs" in names and registry.lock_model_name("acs") not in names  # released


def test_a_wrong_password_is_a_clear_401(auth_server, kind, monkeypatch):
    monkeypatch.setenv("MLFLOW_TRACKING_URI", auth_server)
    credentials = login(kind)
    monkeypatch.setenv("MLFLOW_TRACKING_USERNAME", credentials["MLFLOW_TRACKING_USERNAME"])
    monkeypatch.setenv("MLFLOW_TRACKING_PASSWORD", "not-the-password")
    client = registry.client(auth_server)
    with pytest.raises(mlflow.exceptions.MlflowException, match="401") as failure:
        client.create_registered_model("wrong")
    assert "not authenticated" in str(failure.value)
