"""Cluster mode: a task in a pod never falls back to a local store or a repository path; a
missing variable is an error that names it. On a laptop the outputs/ defaults stay."""

import pytest

from components.common import runtime_env
from components.common.runtime_env import RuntimeEnvError

CLUSTER_VARS = ("MLPIPE_CLUSTER", "KUBERNETES_SERVICE_HOST", "MLFLOW_TRACKING_URI")


@pytest.fixture(autouse=True)
def _clean(monkeypatch):
    for name in (*CLUSTER_VARS, "MLPIPE_STATE_DIR", "MLPIPE_LOGS_DIR", "MLPIPE_RUN_ID"):
        monkeypatch.delenv(name, raising=False)


def test_cluster_mode_from_the_config_map_or_the_pod(monkeypatch):
    assert not runtime_env.in_cluster()
    monkeypatch.setenv("KUBERNETES_SERVICE_HOST", "10.96.0.1")  # every pod has it
    assert runtime_env.in_cluster()
    monkeypatch.setenv("MLPIPE_CLUSTER", "0")  # an explicit no wins
    assert not runtime_env.in_cluster()
    monkeypatch.setenv("MLPIPE_CLUSTER", "1")
    monkeypatch.delenv("KUBERNETES_SERVICE_HOST")
    assert runtime_env.in_cluster()


def test_on_a_laptop_the_tracking_uri_falls_back_to_the_local_store(monkeypatch):
    assert runtime_env.tracking_uri().endswith("outputs/mlflow/mlflow.db")
    monkeypatch.setenv("MLFLOW_TRACKING_URI", "http://mlflow:5000")
    assert runtime_env.tracking_uri() == "http://mlflow:5000"
    assert runtime_env.tracking_uri(given="http://other:5000") == "http://other:5000"


def test_in_cluster_mode_a_missing_tracking_uri_is_named(monkeypatch):
    monkeypatch.setenv("MLPIPE_CLUSTER", "1")
    with pytest.raises(RuntimeEnvError, match="MLFLOW_TRACKING_URI is not set: gate needs"):
        runtime_env.tracking_uri("gate")
    for local in ("sqlite:////tmp/mlflow.db", "file:///tmp/mlruns", "/tmp/mlruns"):
        monkeypatch.setenv("MLFLOW_TRACKING_URI", local)
        with pytest.raises(RuntimeEnvError, match="must be an MLflow server"):
            runtime_env.tracking_uri("gate")
    monkeypatch.setenv("MLFLOW_TRACKING_URI", "http://mlflow.mlpipe.svc.cluster.local:5000")
    assert runtime_env.export_tracking_uri("gate").startswith("http://mlflow.mlpipe")


def test_in_cluster_mode_the_state_store_is_required_and_shared(monkeypatch):
    monkeypatch.setenv("MLPIPE_CLUSTER", "1")
    with pytest.raises(RuntimeEnvError, match="MLPIPE_STATE_DIR is not set"):
        runtime_env.state_dir("act")
    monkeypatch.setenv("MLPIPE_STATE_DIR", "/tmp/state")
    with pytest.raises(RuntimeEnvError, match="must be shared storage"):
        runtime_env.state_dir("act")
    monkeypatch.setenv("MLPIPE_STATE_DIR", "s3://mlpipe-data/state")
    assert runtime_env.state_dir("act") == "s3://mlpipe-data/state"
    assert runtime_env.logs_dir() == "s3://mlpipe-data/state/logs"


def test_on_a_laptop_the_state_store_is_optional_unless_needed(monkeypatch):
    assert runtime_env.state_dir() is None
    with pytest.raises(RuntimeEnvError, match="an incremental load needs a state store"):
        runtime_env.state_dir("ingest", required_for="an incremental load")
    assert runtime_env.logs_dir().endswith("outputs/logs")


def test_temporary_environ_sets_unsets_and_restores(monkeypatch):
    import os

    from components.common.runtime_env import temporary_environ

    monkeypatch.setenv("MLPIPE_T_KEPT", "before")
    monkeypatch.setenv("MLPIPE_T_UNSET", "before")
    monkeypatch.delenv("MLPIPE_T_NEW", raising=False)
    values = {"MLPIPE_T_KEPT": "during", "MLPIPE_T_UNSET": None, "MLPIPE_T_NEW": "during"}
    with pytest.raises(RuntimeError), temporary_environ(values):  # restored on failure too
        assert os.environ["MLPIPE_T_KEPT"] == os.environ["MLPIPE_T_NEW"] == "during"
        assert "MLPIPE_T_UNSET" not in os.environ
        raise RuntimeError("a failed run")
    assert os.environ["MLPIPE_T_KEPT"] == os.environ["MLPIPE_T_UNSET"] == "before"
    assert "MLPIPE_T_NEW" not in os.environ
